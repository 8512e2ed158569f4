/* conn_pollwait.c PORT — with SLUICE_CONN_MAX=1: accepts one connection, then
 * (a second client waiting in the backlog) asks poll, ppoll, select and pselect
 * with timeouts whether the listener is readable. Paused, each must time out
 * with nothing ready (select also leaving no time in its timeval); then a
 * thread closes the first connection and an endless poll must see the listener
 * at once. Prints one line per call: "NAME r=R ms=T [extra]". */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int first;

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *free_slot(void *arg)
{
    (void) arg;
    usleep(200000);
    close(first);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 16) != 0)
        return 1;
    struct pollfd pf = { .fd = l, .events = POLLIN };
    while ((first = accept(l, NULL, NULL)) < 0)
        poll(&pf, 1, -1);
    /* Wait until the second client is in the backlog (bare: poll sees it). */
    usleep(300000);
    long t0 = now_ms();
    int r = poll(&pf, 1, 300);
    printf("poll r=%d ms=%ld revents=%d\n", r, now_ms() - t0, pf.revents);
    struct timespec ts = { 0, 300000000 };
    sigset_t mask;
    sigemptyset(&mask);
    t0 = now_ms();
    r = ppoll(&pf, 1, &ts, &mask);
    printf("ppoll r=%d ms=%ld revents=%d\n", r, now_ms() - t0, pf.revents);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(l, &rs);
    struct timeval tv = { 0, 300000 };
    t0 = now_ms();
    r = select(l + 1, &rs, NULL, NULL, &tv);
    printf("select r=%d ms=%ld isset=%d left_us=%ld\n", r, now_ms() - t0, FD_ISSET(l, &rs),
           (long) (tv.tv_sec * 1000000 + tv.tv_usec));
    FD_ZERO(&rs);
    FD_SET(l, &rs);
    t0 = now_ms();
    r = pselect(l + 1, &rs, NULL, NULL, &ts, &mask);
    printf("pselect r=%d ms=%ld isset=%d\n", r, now_ms() - t0, FD_ISSET(l, &rs));
    pthread_t t;
    pthread_create(&t, NULL, free_slot, NULL);
    t0 = now_ms();
    r = poll(&pf, 1, -1);
    printf("wake r=%d ms=%ld revents=%d\n", r, now_ms() - t0, pf.revents);
    int c = accept(l, NULL, NULL);
    printf("accept %s\n", c >= 0 ? "ok" : "failed");
    fflush(stdout);
    pthread_join(t, NULL);
    return 0;
}
