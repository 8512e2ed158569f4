/* latency_server.c PORT IO_MS CPU_MS [WORKERS] — a latency-bound HTTP
 * service: one thread per connection; each request waits IO_MS (as on a
 * database), burns CPU_MS of its thread's CPU time, answers 200 and closes.
 * With no limit, an overload means more threads sharing the CPU: every
 * request slows down. SIGUSR1 doubles both costs (the "the code got slower"
 * event). Prints "listening" once ready. With WORKERS, a master that never
 * accepts forks that many workers on the one listener (as nginx does) and
 * waits; a worker ends with its master. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

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
    size_t got = peer_read_request(c, buf, sizeof buf);
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
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: latency_server PORT IO_MS CPU_MS [WORKERS]\n");
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
    int l = peer_listen(atoi(argv[1]), 4096);
    if (l < 0)
        return 1;
    int workers = argc == 5 ? atoi(argv[4]) : 0;
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1)
                _exit(0);
            peer_thread_per_connection(l, serve);
        }
    }
    if (workers > 0)
        for (;;)
            pause();   /* a killed worker stays a zombie: gone, to the budget */
    peer_thread_per_connection(l, serve);
}
