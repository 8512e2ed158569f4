/* fs_fclose.c DIR — fclose whose filesystem token is refused (SLUICE_FS_MAX=1,
 * SLUICE_FS_TIMEOUT short, the token held by a thread whose sendfile into a
 * full pipe keeps it) still closes, and a close that succeeds leaves errno as
 * the program set it. Prints "fclose R errno E". */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

static int file_fd, pipe_fds[2];

static void *token_holder(void *arg)
{
    (void) arg;
    while (sendfile(pipe_fds[1], file_fd, NULL, 1 << 20) > 0)
        ;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    alarm(20);
    char path[512];
    snprintf(path, sizeof path, "%s/fclose-%d", argv[1], (int) getpid());
    FILE *f = fopen(path, "w+");
    if (f == NULL)
        return 3;
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 16; i++)
        fwrite(chunk, 1, sizeof chunk, f);
    fflush(f);
    file_fd = open(path, O_RDONLY);
    unlink(path);
    if (file_fd < 0 || pipe(pipe_fds) != 0)
        return 3;
    fputs("unflushed", f);
    pthread_t holder;
    pthread_create(&holder, NULL, token_holder, NULL);
    usleep(200000);
    errno = 0;
    int r = fclose(f);
    printf("fclose %d errno %d\n", r, errno);
    fflush(stdout);
    _exit(0);   /* the holder stays asleep in its sendfile */
}
