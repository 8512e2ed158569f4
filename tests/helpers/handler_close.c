/* handler_close.c ROUNDS — a SIGUSR1 handler closes a governed connection
 * while the thread it interrupts is changing that connection's (or the paused
 * listener's) epoll registration, which takes sluice's per-descriptor lock.
 * Run with SLUICE_CONN_MAX=1: each accept pauses the listener (hidden in
 * epoll), each close in the handler unpauses it. Another thread sends SIGUSR1
 * in a tight loop. Each round then checks that the listener is shown again
 * (epoll_wait reports the next client). Prints "rounds N handler_closes M";
 * "hidden" if the listener stayed hidden. A deadlock or spin ends by alarm. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t victim = -1;
static volatile sig_atomic_t handler_closes;
static volatile int stop;
static pthread_t main_thread;

static void on_usr1(int sig)
{
    (void) sig;
    int saved = errno;
    int fd = victim;
    if (fd >= 0) {
        victim = -1;
        close(fd);
        handler_closes++;
    }
    errno = saved;
}

static void *signaller(void *arg)
{
    (void) arg;
    struct timespec gap = { 0, 20000 };
    while (!stop) {
        pthread_kill(main_thread, SIGUSR1);
        nanosleep(&gap, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    alarm(30);
    main_thread = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *) &a, sizeof a) != 0 || listen(lfd, 64) != 0
        || getsockname(lfd, (struct sockaddr *) &a, &len) != 0)
        return 3;
    int epfd = epoll_create1(0);
    struct epoll_event lev = { .events = EPOLLIN, .data.fd = lfd };
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);

    pthread_t t;
    pthread_create(&t, NULL, signaller, NULL);
    int done = 0;
    for (; done < rounds; done++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *) &a, sizeof a) != 0)
            return 3;
        /* The listener must be shown: the slot of the last round was freed. */
        struct epoll_event got;
        int n;
        do
            n = epoll_wait(epfd, &got, 1, 2000);
        while (n < 0 && errno == EINTR);
        if (n != 1) {
            printf("hidden after %d rounds\n", done);
            return 1;
        }
        int conn;
        do
            conn = accept(lfd, NULL, NULL);
        while (conn < 0 && errno == EINTR);
        if (conn < 0)
            return 3;
        struct epoll_event cev = { .events = EPOLLIN, .data.fd = conn };
        epoll_ctl(epfd, EPOLL_CTL_ADD, conn, &cev);
        victim = conn;
        /* Until the handler has closed it: registrations change under the lock. */
        for (int i = 0; victim >= 0 && i < 200000; i++) {
            epoll_ctl(epfd, EPOLL_CTL_MOD, conn, &cev);
            epoll_ctl(epfd, EPOLL_CTL_MOD, lfd, &lev);
        }
        sigset_t usr1, old;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &usr1, &old);
        if (victim >= 0) {
            victim = -1;
            close(conn);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(c);
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("rounds %d handler_closes %d\n", done, (int) handler_closes);
    return 0;
}
