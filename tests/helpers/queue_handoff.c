/* queue_handoff.c MODE ROUNDS — the hand-off of a queued connection, timed
 * inside one process preloaded with SLUICE_CONN_MAX=1 and a queue timeout:
 * the main thread holds the only slot's connection with clients queued behind
 * it, closes it, and a waiting thread's accept returns the next one. MODE
 * blocking: that thread is blocked in accept; epoll: it waits in epoll_wait on
 * the (non-blocking) listener, then accepts. Prints "handoff MODE median_us
 * p99_us". Then, with the slot held and 1,000 clients queued, the process's
 * CPU over 5 s: "paused_cpu_percent P queued N". */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int lsock, epoll_mode;
static int ready_pipe[2];   /* the acceptor says "accepted" here: the main thread sleeps, not spins */
static _Atomic int accepted_fd = -1;
static _Atomic uint64_t accepted_at;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000000u + (uint64_t) t.tv_nsec;
}

static void *acceptor(void *arg)
{
    (void) arg;
    int ep = -1;
    if (epoll_mode) {
        ep = epoll_create1(0);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = lsock };
        epoll_ctl(ep, EPOLL_CTL_ADD, lsock, &ev);
    }
    for (;;) {
        if (epoll_mode) {
            struct epoll_event ev;
            if (epoll_wait(ep, &ev, 1, -1) != 1)
                continue;
        }
        int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        uint64_t t = now_ns();
        atomic_store(&accepted_at, t);
        atomic_store(&accepted_fd, c);
        char one = 1;
        if (write(ready_pipe[1], &one, 1) != 1)
            abort();
    }
    return NULL;
}

static int take_accepted(void)
{
    char one;
    if (read(ready_pipe[0], &one, 1) != 1)
        abort();
    return atomic_exchange(&accepted_fd, -1);
}

static int client(struct sockaddr_in *a)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *) a, sizeof *a) != 0) {
        perror("connect");
        exit(1);
    }
    return s;
}

static int cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *) x, b = *(const uint64_t *) y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    epoll_mode = strcmp(argv[1], "epoll") == 0;
    int rounds = atoi(argv[2]);
    struct rlimit rl = { 4096, 4096 };
    setrlimit(RLIMIT_NOFILE, &rl);
    lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (epoll_mode ? SOCK_NONBLOCK : 0), 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(lsock, (struct sockaddr *) &a, sizeof a) != 0 || listen(lsock, 4096) != 0
        || getsockname(lsock, (struct sockaddr *) &a, &alen) != 0) {
        perror("listen");
        return 1;
    }
    if (pipe(ready_pipe) != 0)
        return 1;
    pthread_t t;
    pthread_create(&t, NULL, acceptor, NULL);
    int first = client(&a);
    int held = take_accepted();
    enum { DEPTH = 32 };
    int clients[DEPTH + 1];
    for (int i = 0; i < DEPTH; i++)
        clients[i] = client(&a);
    uint64_t *lat = calloc((size_t) rounds, sizeof *lat);
    int oldest = 0;
    close(first);
    for (int r = 0; r < rounds; r++) {
        usleep(2000);   /* the acceptor is waiting again, the listener hidden */
        uint64_t t0 = now_ns();
        close(held);
        held = take_accepted();
        lat[r] = atomic_load(&accepted_at) - t0;
        close(clients[oldest]);
        clients[oldest] = client(&a);   /* keep the queue DEPTH deep */
        oldest = (oldest + 1) % DEPTH;
    }
    qsort(lat, (size_t) rounds, sizeof *lat, cmp);
    printf("handoff %s %.1f %.1f\n", argv[1], lat[rounds / 2] / 1000.0, lat[rounds * 99 / 100] / 1000.0);
    fflush(stdout);
    enum { WAITING = 1000 };
    for (int i = 0; i < WAITING; i++)
        (void) client(&a);   /* kept open until the process ends */
    usleep(300000);
    struct rusage u0, u1;
    getrusage(RUSAGE_SELF, &u0);
    uint64_t w0 = now_ns();
    sleep(5);
    getrusage(RUSAGE_SELF, &u1);
    uint64_t w1 = now_ns();
    double cpu = (double) (u1.ru_utime.tv_sec - u0.ru_utime.tv_sec + u1.ru_stime.tv_sec - u0.ru_stime.tv_sec)
                 + (double) (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec + u1.ru_stime.tv_usec - u0.ru_stime.tv_usec) / 1e6;
    printf("paused_cpu_percent %.3f queued %d\n", cpu / ((double) (w1 - w0) / 1e9) * 100.0, WAITING + DEPTH);
    return 0;
}
