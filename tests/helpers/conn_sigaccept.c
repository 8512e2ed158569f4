/* conn_sigaccept.c PORT restart|norestart — accepts one connection and keeps
 * it, then blocks in a second accept (the gate is at SLUICE_CONN_MAX=1) while a
 * thread sends it SIGALRM (after 300 ms, handler with or without SA_RESTART)
 * and closes the first connection (after 600 ms). Prints how the second accept
 * ended: "accept=OK|EINTR handler=N ms=T". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;
static pthread_t main_thread;
static int first;

static void on_alarm(int sig)
{
    (void) sig;
    handled++;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *poke(void *arg)
{
    (void) arg;
    usleep(300000);
    pthread_kill(main_thread, SIGALRM);
    usleep(300000);
    close(first);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 16) != 0)
        return 1;
    first = accept(l, NULL, NULL);
    if (first < 0)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = strcmp(argv[2], "restart") == 0 ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, poke, NULL);
    long t0 = now_ms();
    int c = accept(l, NULL, NULL);
    int err = errno;
    printf("accept=%s handler=%d ms=%ld\n", c >= 0 ? "OK" : err == EINTR ? "EINTR" : strerror(err),
           (int) handled, now_ms() - t0);
    fflush(stdout);
    pthread_join(t, NULL);
    return 0;
}
