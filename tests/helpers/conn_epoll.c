/* conn_epoll.c PORT lt|et|oneshot|paced|exclusive [pwait2] — a non-blocking
 * epoll server registering its listener level-triggered, edge-triggered
 * (accepting until EAGAIN), EPOLLONESHOT (re-armed after each accept) or
 * EPOLLEXCLUSIVE. `paced` is EPOLLONESHOT re-armed only while the program holds
 * fewer than 4 connections, else after a close and one more look at its events:
 * an event on the listener while the program has not re-armed it is printed as
 * "unexpected". Each connection is greeted ("hi\n") and held until the client
 * closes. Prints "accepted N" for every connection it sees. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[2];
    int pwait2 = argc > 3 && strcmp(argv[3], "pwait2") == 0;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1, seen = 0;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 128) != 0)
        return 1;
    int ep = epoll_create1(0);
    uint32_t lev = EPOLLIN;
    if (strcmp(mode, "et") == 0)
        lev |= EPOLLET;
    else if (strcmp(mode, "oneshot") == 0 || strcmp(mode, "paced") == 0)
        lev |= EPOLLONESHOT;
    else if (strcmp(mode, "exclusive") == 0)
        lev |= EPOLLEXCLUSIVE;
    int paced = strcmp(mode, "paced") == 0, open_conns = 0, armed = 1, rearm_due = 0;
    struct epoll_event ev = { .events = lev, .data.fd = l };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) != 0)
        return 1;
    for (;;) {
        struct epoll_event evs[64];
        int n;
        if (pwait2) {
            n = epoll_pwait2(ep, evs, 64, NULL, NULL);
        } else {
            n = epoll_wait(ep, evs, 64, rearm_due ? 0 : -1);
        }
        if (n == 0 && rearm_due) {
            rearm_due = 0;
            armed = 1;
            epoll_ctl(ep, EPOLL_CTL_MOD, l, &ev);
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                if (paced && !armed) {
                    printf("unexpected listener event\n");
                    fflush(stdout);
                }
                armed = 0;
                for (;;) {
                    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0)
                        break;
                    printf("accepted %d\n", ++seen);
                    fflush(stdout);
                    if (write(c, "hi\n", 3) < 0)
                        perror("write");
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    open_conns++;
                    if (!(lev & EPOLLET))
                        break;
                }
                if ((lev & EPOLLONESHOT) && (!paced || open_conns < 4)) {
                    armed = 1;
                    epoll_ctl(ep, EPOLL_CTL_MOD, l, &ev);
                }
            } else {
                char buf[4096];
                ssize_t r = read(fd, buf, sizeof buf);
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    close(fd);
                    open_conns--;
                    if (paced && !armed)
                        rearm_due = 1;   /* after one more look: nothing may come first */
                }
            }
        }
    }
}
