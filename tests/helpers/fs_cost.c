/* fs_cost.c — COUNT one-byte preads and pwrites on a regular file, for
 * measuring (callgrind) what the filesystem gate adds to an uncontended call.
 * Usage: fs_cost FILE COUNT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int fd = open(argv[1], O_RDWR | O_CREAT, 0600);
    if (fd < 0)
        return 3;
    long count = atol(argv[2]);
    char c = 'x';
    for (long i = 0; i < count; i++) {
        if (pwrite(fd, &c, 1, 0) != 1 || pread(fd, &c, 1, 0) != 1)
            return 4;
    }
    close(fd);
    return 0;
}
