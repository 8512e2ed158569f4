/* peer.h — what the small socket peers among the helpers share: a TCP
 * connection to 127.0.0.1:PORT, and waiting for readiness the way the test
 * asks (epoll in one of its modes, poll or select) with no timeout. Header
 * only, as each helper is built from its one file. */
#ifndef SLUICE_TEST_PEER_H
#define SLUICE_TEST_PEER_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

/* A blocking TCP socket connected to 127.0.0.1:port, or -1 (errno of the
 * failed call, nothing left open). */
static inline int peer_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (s < 0 || connect(s, (struct sockaddr *) &a, sizeof a) != 0) {
        int saved = errno;
        if (s >= 0)
            close(s);
        errno = saved;
        return -1;
    }
    return s;
}

/* WAITER: level | edge | oneshot | exclusive | exclusive_edge (epoll), poll,
 * select; waiting for `events` (EPOLLIN or EPOLLOUT) on fd. */
struct peer_waiter {
    const char *name;
    int fd, ep;
    uint32_t events, mode;
};

/* Registers fd with the waiter named `name`; -1 if epoll refuses it. */
static inline int peer_waiter_open(struct peer_waiter *w, const char *name, int fd,
                                   uint32_t events)
{
    w->name = name;
    w->fd = fd;
    w->events = events;
    w->ep = -1;
    w->mode = strcmp(name, "edge") == 0             ? EPOLLET
              : strcmp(name, "oneshot") == 0        ? EPOLLONESHOT
              : strcmp(name, "exclusive") == 0      ? EPOLLEXCLUSIVE
              : strcmp(name, "exclusive_edge") == 0 ? EPOLLEXCLUSIVE | EPOLLET
                                                    : 0;
    if (strcmp(name, "poll") == 0 || strcmp(name, "select") == 0)
        return 0;
    w->ep = epoll_create1(0);
    struct epoll_event ev = { .events = events | w->mode, .data.fd = fd };
    return epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Sleeps until the readiness call reports fd ready (no timeout); -1 if it
 * answers anything but one ready descriptor. */
static inline int peer_wait(const struct peer_waiter *w)
{
    if (w->ep >= 0) {
        struct epoll_event ev;
        return epoll_wait(w->ep, &ev, 1, -1) == 1 ? 0 : -1;
    }
    if (strcmp(w->name, "poll") == 0) {
        struct pollfd p = { w->fd, (short) (w->events == EPOLLIN ? POLLIN : POLLOUT), 0 };
        return poll(&p, 1, -1) == 1 ? 0 : -1;
    }
    fd_set set;
    FD_ZERO(&set);
    FD_SET(w->fd, &set);
    int n = w->events == EPOLLIN ? select(w->fd + 1, &set, NULL, NULL, NULL)
                                 : select(w->fd + 1, NULL, &set, NULL, NULL);
    return n == 1 ? 0 : -1;
}

/* An EPOLLONESHOT registration fired once: arm it again. */
static inline void peer_rearm(const struct peer_waiter *w)
{
    if (w->mode == EPOLLONESHOT) {
        struct epoll_event ev = { .events = w->events | EPOLLONESHOT, .data.fd = w->fd };
        epoll_ctl(w->ep, EPOLL_CTL_MOD, w->fd, &ev);
    }
}

/* Reads an HTTP request's head (up to the blank line) into buf (NUL-ended);
 * the bytes read, 0 if the peer sent nothing. */
static inline size_t peer_read_request(int c, char *buf, size_t cap)
{
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t n = read(c, buf + got, cap - 1 - got);
        if (n <= 0)
            break;
        got += (size_t) n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    return got;
}

/* A listener on 127.0.0.1:port with the given backlog, "listening" printed on
 * stdout once it listens (what the tests wait for); -1 after perror. */
static inline int peer_listen(int port, int backlog)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l < 0 || bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, backlog) != 0) {
        perror("bind/listen");
        return -1;
    }
    printf("listening\n");
    fflush(stdout);
    return l;
}

/* Serves every connection of listener l on a detached thread of its own
 * (small stacks: thread-per-connection servers under load); never returns. */
static inline void peer_thread_per_connection(int l, void *(*serve)(void *fd_as_pointer))
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *) (intptr_t) c) != 0)
            close(c);
    }
}

#endif
