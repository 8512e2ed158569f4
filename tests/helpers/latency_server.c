/* latency_server.c PORT IO_MS CPU_MS — a latency-bound HTTP service: one
 * thread per connection; each request waits IO_MS (as on a database), burns
 * CPU_MS of its thread's CPU time, answers 200 and closes. With no limit, an
 * overload means more threads sharing the CPU: every request slows down.
 * SIGUSR1 doubles both costs (the "the code got slower" event). Prints
 * "listening" once ready. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static _Atomic unsigned io_us, cpu_us;

static void doubled(int sig)
{
    (void) sig;
    atomic_store(&io_us, atomic_load(&io_us) * 2);
    atomic_store(&cpu_us, atomic_load(&cpu_us) * 2);
}

static uint64_t thread_cpu_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t) t.tv_sec * 1000000u + (uint64_t) t.tv_nsec / 1000u;
}

static void *serve(void *arg)
{
    int c = (int) (intptr_t) arg;
    char buf[2048];
    size_t got = 0;
    /* The request: up to the blank line. */
    while (got < sizeof buf - 1) {
        ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t) n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    if (got > 0) {
        usleep(atomic_load(&io_us));
        uint64_t until = thread_cpu_us() + atomic_load(&cpu_us);
        volatile unsigned spin = 0;
        while (thread_cpu_us() < until)
            for (int i = 0; i < 1000; i++)
                spin++;
        static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        if (write(c, answer, sizeof answer - 1) < 0)
            perror("write");
    }
    close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: latency_server PORT IO_MS CPU_MS\n");
        return 2;
    }
    atomic_store(&io_us, (unsigned) (atof(argv[2]) * 1000));
    atomic_store(&cpu_us, (unsigned) (atof(argv[3]) * 1000));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = doubled;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 4096) != 0) {
        perror("bind/listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
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
