/* edge_server — a one-thread event-loop line server whose listener and
 * connections are all registered the same way (WAITER): it listens on
 * 127.0.0.1:PORT, accepts until EAGAIN, reads each ready connection until
 * EAGAIN (as an edge-triggered loop must) and answers every line "L" with
 * "ok L\n". It waits with no timeout and never retries on its own, so an event
 * it is owed and never gets leaves a client unanswered: the test's deadline is
 * the only bound. Runs until SIGTERM.
 *
 * Two lines do more, for a server that writes to a connection on its own (a
 * stream of events): "stream" makes its connection the stream; "push" writes
 * 64 KiB pieces of 'p' to the stream until EAGAIN and answers "ok push N\n"
 * (N: the bytes the stream took).
 *
 * Usage: edge_server PORT WAITER [BACKLOG]
 *   WAITER: level | edge | oneshot | exclusive | exclusive_edge (epoll), poll, select
 *   BACKLOG: listen's backlog (16) */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 64

static const char *waiter;
static bool use_epoll;
static uint32_t mode;
static int ep = -1, listener = -1;
static bool open_fd[MAXFD];
static char line[MAXFD][256];
static int stream_fd = -1;
static size_t line_len[MAXFD];

static void watch(int fd, int op)
{
    if (!use_epoll)
        return;
    struct epoll_event ev = { .events = EPOLLIN | mode, .data.fd = fd };
    if (epoll_ctl(ep, op, fd, &ev) != 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

static void on_listener(void)
{
    for (;;) {
        int c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
                break;
            perror("accept");
            exit(1);
        }
        if (c >= MAXFD) {
            close(c);
            continue;
        }
        open_fd[c] = true;
        line_len[c] = 0;
        watch(c, EPOLL_CTL_ADD);
    }
    if (mode == EPOLLONESHOT)
        watch(listener, EPOLL_CTL_MOD);
}

static long push(int fd)
{
    static char piece[64 * 1024];
    memset(piece, 'p', sizeof piece);
    long n = 0;
    for (;;) {
        ssize_t w = send(fd, piece, sizeof piece, MSG_NOSIGNAL);
        if (w <= 0)
            return n;   /* EAGAIN: full */
        n += w;
    }
}

static void on_conn(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] != '\n') {
                    if (line_len[fd] < sizeof line[fd] - 1)
                        line[fd][line_len[fd]++] = buf[i];
                    continue;
                }
                char reply[300];
                int len = snprintf(reply, sizeof reply, "ok %.*s\n", (int) line_len[fd], line[fd]);
                if (line_len[fd] == 6 && memcmp(line[fd], "stream", 6) == 0)
                    stream_fd = fd;
                if (line_len[fd] == 4 && memcmp(line[fd], "push", 4) == 0 && stream_fd >= 0)
                    len = snprintf(reply, sizeof reply, "ok push %ld\n", push(stream_fd));
                (void) !send(fd, reply, (size_t) len, MSG_NOSIGNAL);
                line_len[fd] = 0;
            }
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (use_epoll)
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            open_fd[fd] = false;
            if (fd == stream_fd)
                stream_fd = -1;
            close(fd);
            return;
        }
        break;
    }
    if (mode == EPOLLONESHOT)
        watch(fd, EPOLL_CTL_MOD);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        return 2;
    waiter = argv[2];
    use_epoll = strcmp(waiter, "poll") != 0 && strcmp(waiter, "select") != 0;
    mode = strcmp(waiter, "edge") == 0             ? EPOLLET
           : strcmp(waiter, "oneshot") == 0        ? EPOLLONESHOT
           : strcmp(waiter, "exclusive") == 0      ? EPOLLEXCLUSIVE
           : strcmp(waiter, "exclusive_edge") == 0 ? EPOLLEXCLUSIVE | EPOLLET
                                                   : 0;
    listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(listener, (struct sockaddr *) &a, sizeof a) != 0 || listen(listener, argc == 4 ? atoi(argv[3]) : 16) != 0) {
        perror("listen");
        return 1;
    }
    if (use_epoll) {
        ep = epoll_create1(EPOLL_CLOEXEC);
        watch(listener, EPOLL_CTL_ADD);
    }
    for (;;) {
        if (use_epoll) {
            struct epoll_event evs[16];
            int n = epoll_wait(ep, evs, 16, -1);
            if (n < 0 && errno != EINTR)
                return 1;
            for (int i = 0; i < n; i++) {
                if (evs[i].data.fd == listener)
                    on_listener();
                else if (open_fd[evs[i].data.fd])
                    on_conn(evs[i].data.fd);
            }
        } else if (strcmp(waiter, "poll") == 0) {
            struct pollfd p[MAXFD];
            nfds_t n = 0;
            p[n++] = (struct pollfd) { listener, POLLIN, 0 };
            for (int fd = 0; fd < MAXFD; fd++)
                if (open_fd[fd])
                    p[n++] = (struct pollfd) { fd, POLLIN, 0 };
            if (poll(p, n, -1) < 0 && errno != EINTR)
                return 1;
            for (nfds_t i = 0; i < n; i++) {
                if (p[i].revents == 0)
                    continue;
                if (p[i].fd == listener)
                    on_listener();
                else if (open_fd[p[i].fd])
                    on_conn(p[i].fd);
            }
        } else {
            fd_set r;
            FD_ZERO(&r);
            FD_SET(listener, &r);
            int top = listener;
            for (int fd = 0; fd < MAXFD; fd++)
                if (open_fd[fd]) {
                    FD_SET(fd, &r);
                    top = fd > top ? fd : top;
                }
            if (select(top + 1, &r, NULL, NULL, NULL) < 0 && errno != EINTR)
                return 1;
            if (FD_ISSET(listener, &r))
                on_listener();
            for (int fd = 0; fd < MAXFD; fd++)
                if (fd != listener && open_fd[fd] && FD_ISSET(fd, &r))
                    on_conn(fd);
        }
    }
}
