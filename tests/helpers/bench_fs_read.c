/* bench_fs_read.c — N one-byte read()s of a regular file (from its start; the
 * file must hold at least N bytes), for counting with callgrind and strace
 * what the filesystem gate adds to an uncontended read:
 *   bench_fs_read FILE N */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_fs_read FILE N\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0)
        return 1;
    char byte;
    for (long i = 0; i < n; i++)
        if (read(fd, &byte, 1) != 1)
            return 1;
    close(fd);
    return 0;
}
