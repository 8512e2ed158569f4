/* drain_epoll_writer — a non-blocking writer driven by level-triggered epoll:
 * connects to 127.0.0.1:PORT, writes CHUNK-byte pieces whenever epoll says
 * writable, for MS milliseconds, then prints the bytes the kernel took, the
 * EAGAINs and the wakeups. A writer that is told "writable" when it is not
 * spins; one told honestly sleeps. Usage: drain_epoll_writer PORT CHUNK MS */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    int s = peer_connect(atoi(argv[1]));
    if (s < 0) {
        perror("connect");
        return 1;
    }
    fcntl(s, F_SETFL, O_NONBLOCK);
    size_t chunk = (size_t) atol(argv[2]);
    char *buf = calloc(1, chunk);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLOUT, .data.fd = s };
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    long long end = now_ms() + atoll(argv[3]), taken = 0, eagains = 0, wakeups = 0;
    for (;;) {
        long long left = end - now_ms();
        if (left <= 0)
            break;
        int n = epoll_wait(ep, &ev, 1, (int) left);
        if (n <= 0)
            continue;
        wakeups++;
        for (;;) {
            ssize_t r = send(s, buf, chunk, MSG_NOSIGNAL);
            if (r > 0) {
                taken += r;
                continue;
            }
            if (r < 0 && errno == EAGAIN)
                eagains++;
            break;
        }
    }
    printf("taken %lld eagains %lld wakeups %lld\n", taken, eagains, wakeups);
    return 0;
}
