/* fwd_bench_io.c — N one-byte reads of /dev/zero or writes to /dev/null, for
 * counting with callgrind what a wrapped call adds:  fwd_bench_io read|write N */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "read") != 0 && strcmp(argv[1], "write") != 0)) {
        fprintf(stderr, "usage: fwd_bench_io read|write N\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    int reading = argv[1][0] == 'r';
    int fd = open(reading ? "/dev/zero" : "/dev/null", reading ? O_RDONLY : O_WRONLY);
    char byte = 0;
    for (long i = 0; i < n; i++) {
        ssize_t r = reading ? read(fd, &byte, 1) : write(fd, &byte, 1);
        if (r != 1)
            return 1;
    }
    close(fd);
    return 0;
}
