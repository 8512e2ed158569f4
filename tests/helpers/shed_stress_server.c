/* shed_stress_server.c PORT THREADS blocking|epoll — many threads accepting on
 * one listener, as thread-pool and multi-threaded event-loop servers do.
 *   blocking: a blocking listener; every thread loops on accept(), serves the
 *             connection itself (greets "hi\n", discards input until the client
 *             closes, closes) and accepts again.
 *   epoll:    a non-blocking listener in each thread's own epoll instance
 *             (level-triggered, as haproxy's threads have it); each thread
 *             serves the connections it accepted from its own loop.
 * The server keeps its own count of accepted connections open at once (from
 * accept's return to just before close) and its highest value. On SIGTERM it
 * prints "max M accepted A" and exits; on SIGUSR1 it prints "open K" (the
 * count now) — what a test samples from outside. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int lsock;
static _Atomic int open_now, open_max, accepted;

static void opened(void)
{
    atomic_fetch_add(&accepted, 1);
    int now = atomic_fetch_add(&open_now, 1) + 1;
    int max = atomic_load(&open_max);
    while (now > max && !atomic_compare_exchange_weak(&open_max, &max, now))
        ;
}

static void closing(int c)
{
    atomic_fetch_sub(&open_now, 1);
    close(c);
}

static void *blocking_thread(void *arg)
{
    (void) arg;
    for (;;) {
        int c = accept(lsock, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");
            exit(3);
        }
        opened();
        char buf[4096];
        if (write(c, "hi\n", 3) == 3)
            while (read(c, buf, sizeof buf) > 0)
                ;
        closing(c);
    }
    return NULL;
}

static void *epoll_thread(void *arg)
{
    (void) arg;
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = lsock };
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lsock, &ev) != 0) {
        perror("epoll");
        exit(3);
    }
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lsock) {
                int c = accept4(lsock, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0) {
                    if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                        perror("accept4");
                        exit(3);
                    }
                    continue;
                }
                opened();
                struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                if (write(c, "hi\n", 3) != 3 || epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0)
                    closing(c);
                continue;
            }
            char buf[4096];
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                closing(fd);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int port = atoi(argv[1]), threads = atoi(argv[2]);
    bool blocking = strcmp(argv[3], "blocking") == 0;
    /* Signals go to main alone, which waits for them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    lsock = socket(AF_INET, SOCK_STREAM | (blocking ? 0 : SOCK_NONBLOCK), 0);
    int one = 1;
    setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lsock, (struct sockaddr *) &a, sizeof a) != 0 || listen(lsock, 1024) != 0) {
        perror("listen");
        return 1;
    }
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, blocking ? blocking_thread : epoll_thread, NULL);
    }
    for (;;) {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (sig == SIGUSR1) {
            printf("open %d\n", atomic_load(&open_now));
            fflush(stdout);
            continue;
        }
        printf("max %d accepted %d\n", atomic_load(&open_max), atomic_load(&accepted));
        fflush(stdout);
        _exit(0);
    }
}
