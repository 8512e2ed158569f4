/* conn_workers.c — a multi-process server, as worker pools and
 * fork-per-connection servers are built, for the host-scope connection budget.
 *
 *   conn_workers PORT MODE N [BACKLOG]
 *
 * MODE, with N worker processes forked after listen on 127.0.0.1:PORT:
 *   level   epoll, level-triggered, one non-blocking accept per event
 *   edge    epoll, edge-triggered, accept until EAGAIN
 *   block   blocking accept, a thread per connection
 *   reuseport  as level, but each worker listens on its own SO_REUSEPORT
 *           socket (the kernel spreads connections over separate backlogs)
 * or a single process that forks per connection (N unused):
 *   fork      the child handles it and closes it; the parent closes its copy
 *   fork-exit the child exits without closing it (the kernel does)
 *   fork-exec the child runs /bin/sh with the connection on stdin and stdout
 *
 * Each connection gets "pid PID\n" once its first line is read, then is held
 * until the client closes it. In the epoll modes every line is answered so,
 * except a line "hold" (a request in service: answered at the next line). On SIGTERM the parent ends the workers and prints
 * one line per worker: "worker PID accepted A calls C" (C: accept calls,
 * including those answered EAGAIN). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXW 16

struct counts {
    int pid;
    long accepted, calls;
};
static struct counts *shared;   /* one per worker, shared with the parent */

/* Reads the first line, answers, then holds the connection until EOF. */
static void serve(int c)
{
    char buf[512];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = read(c, buf + got, sizeof buf - got);
        if (n <= 0)
            return;
        got += (size_t) n;
        if (memchr(buf, '\n', got) != NULL)
            break;
    }
    char answer[64];
    int len = snprintf(answer, sizeof answer, "pid %d\n", (int) getpid());
    if (write(c, answer, (size_t) len) != len)
        return;
    while (read(c, buf, sizeof buf) > 0)
        ;
}

static void *serve_thread(void *arg)
{
    int c = (int) (long) arg;
    serve(c);
    close(c);
    return NULL;
}

static void run_block(int l, struct counts *me)
{
    for (;;) {
        me->calls++;
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        me->accepted++;
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, serve_thread, (void *) (long) c) != 0)
            close(c);
    }
}

/* Event loop: connections are read by their first line, answered, then held. */
static void run_epoll(int l, struct counts *me, bool edge)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN | (edge ? EPOLLET : 0), .data.fd = l };
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                for (;;) {
                    me->calls++;
                    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0)
                        break;
                    me->accepted++;
                    struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    if (!edge)
                        break;
                }
                continue;
            }
            char buf[512];
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
            } else if (r > 0 && memmem(buf, (size_t) r, "hold", 4) != NULL) {
                continue;   /* a request in service: no answer until "done" */
            } else if (r > 0 && memchr(buf, '\n', (size_t) r) != NULL) {
                char answer[64];
                int len = snprintf(answer, sizeof answer, "pid %d\n", (int) getpid());
                if (write(fd, answer, (size_t) len) < 0)
                    continue;
            }
        }
    }
}

static void run_fork(int l, struct counts *me, const char *how)
{
    signal(SIGCHLD, SIG_IGN);
    for (;;) {
        me->calls++;
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        me->accepted++;
        pid_t p = fork();
        if (p == 0) {
            close(l);
            if (strcmp(how, "fork-exec") == 0) {
                dup2(c, 0);
                dup2(c, 1);
                close(c);
                execl("/bin/sh", "sh", "-c", "read l; echo pid $$; cat > /dev/null", (char *) NULL);
                _exit(127);
            }
            serve(c);
            if (strcmp(how, "fork") == 0)
                close(c);
            _exit(0);
        }
        close(c);
    }
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void) sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: conn_workers PORT MODE N\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *mode = argv[2];
    int n = atoi(argv[3]);
    int backlog = argc > 4 ? atoi(argv[4]) : 128;
    bool forking = strncmp(mode, "fork", 4) == 0;
    if (forking)
        n = 1;
    if (n < 1 || n > MAXW)
        return 2;
    shared = mmap(NULL, sizeof(struct counts) * MAXW, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    bool reuseport = strcmp(mode, "reuseport") == 0;
    int one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int l = -1;
    if (!reuseport) {
        /* One listener, shared by the workers. */
        l = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, backlog) != 0) {
            perror("listen");
            return 1;
        }
        if ((strcmp(mode, "level") == 0 || strcmp(mode, "edge") == 0)
            && fcntl(l, F_SETFL, O_NONBLOCK) != 0)
            return 1;
    }
    pid_t kids[MAXW];
    for (int i = 0; i < n; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            struct counts *me = &shared[i];
            me->pid = getpid();
            if (reuseport) {
                l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                setsockopt(l, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
                if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, backlog) != 0)
                    _exit(1);
            }
            if (strcmp(mode, "block") == 0)
                run_block(l, me);
            else if (forking)
                run_fork(l, me, mode);
            else
                run_epoll(l, me, strcmp(mode, "edge") == 0);
            _exit(0);
        }
    }
    if (l >= 0)
        close(l);
    signal(SIGTERM, on_term);
    printf("ready\n");
    fflush(stdout);
    while (!stop)
        pause();
    for (int i = 0; i < n; i++)
        kill(kids[i], SIGKILL);
    for (int i = 0; i < n; i++)
        waitpid(kids[i], NULL, 0);
    for (int i = 0; i < n; i++)
        printf("worker %d accepted %ld calls %ld\n", shared[i].pid, shared[i].accepted, shared[i].calls);
    return 0;
}
