/* fwd_syscalls.c — a small program whose system calls, between two marker
 * calls (access() of paths that do not exist), are compared under strace bare
 * and with libsluice.so preloaded and no settings: they must be the same. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    char buf[4096];
    memset(buf, 'a', sizeof buf);
    /* Not mkstemp: its name generator calls getrandom a random number of times. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/sluice-syscalls-%d", (int) getpid());
    access("/sluice-strace-marker-start", F_OK);

    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (write(fd, buf, sizeof buf) != (ssize_t) sizeof buf || fsync(fd) != 0)
        return 1;
    close(fd);
    fd = open(path, O_RDONLY);
    if (pread(fd, buf, 100, 10) != 100 || read(fd, buf, sizeof buf) != (ssize_t) sizeof buf)
        return 1;
    int copy = dup(fd);
    dup2(copy, 20);
    fcntl(20, F_SETFD, FD_CLOEXEC);
    close(20);
    close(copy);
    close(fd);

    FILE *f = fopen(path, "r+");
    if (f == NULL || fread(buf, 1, 10, f) != 10)
        return 1;
    fseek(f, 0, SEEK_SET);
    fputs("stdio line\n", f);
    fclose(f);
    unlink(path);

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    send(sv[0], "hello", 5, 0);
    struct pollfd pfd = { sv[1], POLLIN, 0 };
    poll(&pfd, 1, 1000);
    recv(sv[1], buf, sizeof buf, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = sv[0] };
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
    epoll_wait(ep, &ev, 1, 0);
    fd_set rfds;
    FD_ZERO(&rfds);
    FD_SET(sv[1], &rfds);
    struct timeval tv = { 0, 0 };
    select(sv[1] + 1, &rfds, NULL, NULL, &tv);
    close(ep);
    close(sv[0]);
    close(sv[1]);

    int p[2];
    int bad = pipe(p) != 0;
    bad |= write(p[1], "x", 1) != 1;
    bad |= read(p[0], buf, 1) != 1;
    close(p[0]);
    close(p[1]);
    bad |= read(-1, buf, 1) != -1;   /* an error path too */

    access("/sluice-strace-marker-end", F_OK);
    return bad;
}
