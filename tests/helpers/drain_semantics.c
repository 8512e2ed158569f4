/* drain_semantics — what a writer sees at a full socket, for comparing a run
 * under sluice with a bare one: MSG_DONTWAIT on a blocking socket, a signal
 * during a blocking write with and without SA_RESTART, MSG_NOSIGNAL and
 * SIGPIPE once the peer is gone. Each case makes its own loopback pair and
 * fills it (MSG_DONTWAIT until EAGAIN), then prints one line. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char big[1 << 20];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connected pair over loopback: *w writes, *r is the peer. */
static void pair(int *w, int *r)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    bind(ls, (struct sockaddr *) &a, sizeof a);
    getsockname(ls, (struct sockaddr *) &a, &len);
    listen(ls, 1);
    *w = socket(AF_INET, SOCK_STREAM, 0);
    connect(*w, (struct sockaddr *) &a, sizeof a);
    *r = accept(ls, NULL, NULL);
    close(ls);
}

/* Until EAGAIN twice, a moment apart: the peer's window settles in between. */
static int fill(int w)
{
    int err = 0;
    for (int round = 0; round < 2; round++) {
        if (round > 0)
            usleep(200 * 1000);
        for (;;) {
            ssize_t n = send(w, big, 1000, MSG_DONTWAIT);
            if (n < 0) {
                err = errno;
                break;
            }
        }
    }
    return err;
}

static void on_signal(int sig)
{
    (void) sig;
}

static void *drain_later(void *arg)
{
    int r = *(int *) arg;
    usleep(600 * 1000);
    static char sink[1 << 16];
    while (read(r, sink, sizeof sink) > 0)
        ;
    return NULL;
}

static void interrupted_write(int restart)
{
    int w, r;
    pair(&w, &r);
    fill(w);
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = restart ? SA_RESTART : 0 };
    sigaction(SIGALRM, &sa, NULL);
    pthread_t t;
    if (restart)
        pthread_create(&t, NULL, drain_later, &r);
    struct itimerval it = { { 0, 0 }, { 0, 300 * 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
    long long t0 = now_ms();
    ssize_t n = write(w, big, sizeof big);
    int err = n < 0 ? errno : 0;
    long long ms = now_ms() - t0;
    printf("%s: %zd %s %s\n", restart ? "restart" : "eintr", n, err ? strerrorname_np(err) : "0",
           restart ? (ms >= 550 ? "late" : "early") : (ms >= 250 && ms < 2000 ? "on-time" : "off"));
    fflush(stdout);
    if (restart) {
        close(w);
        pthread_join(t, NULL);
    }
    close(r);
    if (!restart)
        close(w);
}

int main(void)
{
    int w, r;
    pair(&w, &r);
    int e = fill(w);
    printf("dontwait: %s\n", strerrorname_np(e));
    fflush(stdout);
    close(w);
    close(r);

    interrupted_write(0);
    interrupted_write(1);

    /* The peer goes away: MSG_NOSIGNAL says EPIPE, a plain write kills. */
    pair(&w, &r);
    close(r);
    send(w, "x", 1, MSG_NOSIGNAL);   /* draws the RST */
    usleep(50 * 1000);
    ssize_t n;
    do
        n = send(w, big, 1000, MSG_NOSIGNAL);
    while (n > 0);
    printf("nosignal: %s\n", strerrorname_np(errno));
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        signal(SIGPIPE, SIG_DFL);
        for (int i = 0; i < 1000; i++)
            if (write(w, big, 1000) < 0)
                break;
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("sigpipe: %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE ? "killed" : "lived");
    return 0;
}
