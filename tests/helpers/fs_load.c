/* fs_load.c — file I/O shapes for the filesystem-gate tests, each bounded in
 * count and time. Usage: fs_load MODE DIR [N...]
 *   threads T ITERS BYTES  T threads, each pwrite+pread BYTES of its own file ITERS times
 *   signal ITERS           big preads while a 300 us timer's handler preads too
 *   fork FORKS             a thread writes big blocks while the main thread forks
 *                          children that do file I/O and must finish
 *   timeout ITERS          a thread writes big blocks; the main thread's small
 *                          reads count EAGAIN
 *   hold MS [MIB]          pwrites of MIB (8) MiB to its own file for MS milliseconds
 *   ops COUNT [DELAY_MS]   opens its file, waits DELAY_MS, then COUNT small
 *                          pwrite+pread pairs; prints "eagain K"
 *   pipes OPS              threads blocked reading a pipe, a socket and opening
 *                          a FIFO while the main thread does OPS file operations
 *   exec OPS               execs "ops OPS" of itself while a thread writes big blocks
 *   stdio ITERS            two threads write one stdio stream, one of them in
 *                          flockfile sections (lock order: stream, then token)
 * Prints one result line on stdout; exits 0 when the shape completed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static size_t bytes;
static long iters;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static int open_own(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = -1;
    /* Under SLUICE_FS_TIMEOUT the open itself may be refused: try again. */
    for (int tries = 0; tries < 2000; tries++) {
        fd = open(path, O_RDWR | O_CREAT, 0600);
        if (fd >= 0 || errno != EAGAIN)
            break;
        usleep(1000);
    }
    if (fd < 0) {
        perror(path);
        exit(3);
    }
    return fd;
}

static char *buffer(size_t n)
{
    char *b = malloc(n);
    if (b == NULL)
        exit(3);
    memset(b, 'x', n);
    return b;
}

static pthread_barrier_t all_ready;

static void *thread_rw(void *arg)
{
    char name[32];
    snprintf(name, sizeof name, "t%ld", (long) (intptr_t) arg);
    int fd = open_own(name);
    char *b = buffer(bytes);
    pthread_barrier_wait(&all_ready);   /* every thread in the race from the start */
    for (long i = 0; i < iters; i++) {
        if (pwrite(fd, b, bytes, 0) != (ssize_t) bytes || pread(fd, b, bytes, 0) != (ssize_t) bytes)
            exit(4);
    }
    close(fd);
    free(b);
    return NULL;
}

static int run_threads(int n)
{
    pthread_t t[64];
    if (n > 64)
        n = 64;
    pthread_barrier_init(&all_ready, NULL, (unsigned) n);
    for (long i = 0; i < n && i < 64; i++)
        pthread_create(&t[i], NULL, thread_rw, (void *) (intptr_t) i);
    for (int i = 0; i < n && i < 64; i++)
        pthread_join(t[i], NULL);
    printf("threads done\n");
    return 0;
}

/* --- signal: a handler that does file I/O while its thread may hold a token */
static int sig_fd;
static volatile sig_atomic_t handler_reads;

static void on_alarm(int sig)
{
    int saved = errno;
    char b[4096];
    if (pread(sig_fd, b, sizeof b, 0) == (ssize_t) sizeof b)
        handler_reads++;
    errno = saved;
}

static int run_signal(void)
{
    int fd = open_own("big");
    sig_fd = open_own("small");
    char *b = buffer(1 << 20);
    if (pwrite(fd, b, 1 << 20, 0) != 1 << 20 || pwrite(sig_fd, b, 4096, 0) != 4096)
        return 4;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = { { 0, 300 }, { 0, 300 } };
    setitimer(ITIMER_REAL, &it, NULL);
    uint64_t end = now_ms() + 3000;
    for (long i = 0; i < iters && now_ms() < end; i++)
        if (pread(fd, b, 1 << 20, 0) < 0 && errno != EINTR)
            return 4;
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    printf("handler_reads %d\n", (int) handler_reads);
    return 0;
}

/* --- a thread that keeps a token busy with big writes, for a bounded time */
static atomic_int stop_writer;

static void *big_writer(void *arg)
{
    int fd = open_own(arg != NULL ? (const char *) arg : "busy");
    size_t n = 64 << 20;
    char *b = buffer(n);
    uint64_t end = now_ms() + 5000;
    while (!atomic_load(&stop_writer) && now_ms() < end)
        if (pwrite(fd, b, n, 0) < 0 && errno != EAGAIN)
            break;
    free(b);
    close(fd);
    return NULL;
}

static int run_fork(int forks)
{
    pthread_t w;
    pthread_create(&w, NULL, big_writer, NULL);
    usleep(20000);
    int stuck = 0, ok = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char name[32];
            snprintf(name, sizeof name, "child%d", i);
            int fd = open_own(name);
            char b[4096];
            memset(b, 'c', sizeof b);
            for (int k = 0; k < 20; k++)
                if (pwrite(fd, b, sizeof b, 0) != (ssize_t) sizeof b || pread(fd, b, sizeof b, 0) < 0)
                    _exit(4);
            close(fd);
            _exit(0);
        }
        uint64_t end = now_ms() + 3000;
        int status = -1;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (now_ms() > end) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                stuck++;
                break;
            }
            usleep(1000);
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        usleep(3000);
    }
    atomic_store(&stop_writer, 1);
    pthread_join(w, NULL);
    printf("forks_ok %d stuck %d\n", ok, stuck);
    return 0;
}

static int run_timeout(void)
{
    int fd = open_own("small");
    char b[4096];
    memset(b, 's', sizeof b);
    if (pwrite(fd, b, sizeof b, 0) != (ssize_t) sizeof b)
        return 4;
    pthread_t w;
    pthread_create(&w, NULL, big_writer, NULL);
    usleep(20000);
    int eagain = 0, ok = 0;
    for (long i = 0; i < iters; i++) {
        ssize_t r = pread(fd, b, sizeof b, 0);
        if (r < 0 && errno == EAGAIN)
            eagain++;
        else if (r == (ssize_t) sizeof b)
            ok++;
        usleep(1000);
    }
    atomic_store(&stop_writer, 1);
    pthread_join(w, NULL);
    printf("eagain %d ok %d\n", eagain, ok);
    return 0;
}

static int run_hold(long ms, long mib)
{
    char name[32];
    snprintf(name, sizeof name, "hold%d", (int) getpid());
    int fd = open_own(name);
    size_t n = (size_t) mib << 20;
    char *b = buffer(n);
    uint64_t end = now_ms() + (uint64_t) ms;
    while (now_ms() < end)
        if (pwrite(fd, b, n, 0) < 0 && errno != EAGAIN)
            return 4;
    printf("held\n");
    return 0;
}

static int run_ops(long count, long delay_ms)
{
    char name[32];
    snprintf(name, sizeof name, "ops%d", (int) getpid());
    int fd = open_own(name);
    usleep((useconds_t) delay_ms * 1000);
    char b[4096];
    memset(b, 'o', sizeof b);
    int eagain = 0;
    for (long i = 0; i < count; i++) {
        if (pwrite(fd, b, sizeof b, 0) < 0 && errno == EAGAIN)
            eagain++;
        if (pread(fd, b, sizeof b, 0) < 0 && errno == EAGAIN)
            eagain++;
    }
    printf("eagain %d\n", eagain);
    return 0;
}

/* --- pipes, sockets and FIFOs are not filesystem I/O */
static int pipe_fds[2], sock_fds[2];
static char fifo_path[4096];

static void *pipe_reader(void *arg)
{
    char c;
    return (void *) (intptr_t) read(pipe_fds[0], &c, 1);
}

static void *sock_reader(void *arg)
{
    char c;
    return (void *) (intptr_t) recv(sock_fds[0], &c, 1, 0);
}

static void *fifo_opener(void *arg)
{
    int fd = open(fifo_path, O_RDONLY);   /* waits for a writer */
    char c;
    ssize_t r = fd >= 0 ? read(fd, &c, 1) : -1;
    if (fd >= 0)
        close(fd);
    return (void *) (intptr_t) r;
}

static int run_pipes(long ops)
{
    if (pipe(pipe_fds) != 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sock_fds) != 0)
        return 3;
    snprintf(fifo_path, sizeof fifo_path, "%s/fifo", dir);
    unlink(fifo_path);
    if (mkfifo(fifo_path, 0600) != 0)
        return 3;
    pthread_t a, b, c;
    pthread_create(&a, NULL, pipe_reader, NULL);
    pthread_create(&b, NULL, sock_reader, NULL);
    pthread_create(&c, NULL, fifo_opener, NULL);
    usleep(100000);                        /* let all three block */
    int fd = open_own("plain");
    char buf[4096];
    memset(buf, 'p', sizeof buf);
    for (long i = 0; i < ops; i++)
        if (pwrite(fd, buf, sizeof buf, 0) != (ssize_t) sizeof buf || pread(fd, buf, sizeof buf, 0) < 0)
            return 4;
    close(fd);
    if (write(pipe_fds[1], "x", 1) != 1 || send(sock_fds[1], "x", 1, 0) != 1)
        return 4;
    int ffd = open(fifo_path, O_WRONLY);
    if (ffd < 0 || write(ffd, "x", 1) != 1)
        return 4;
    close(ffd);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_join(c, NULL);
    printf("file_ops %ld\n", ops);
    return 0;
}

static int run_exec(char **argv)
{
    pthread_t w;
    pthread_create(&w, NULL, big_writer, NULL);
    usleep(100000);
    char *args[] = { argv[0], "ops", argv[2], argv[3], NULL };
    execv("/proc/self/exe", args);
    return 5;
}

/* --- one stream, two threads, one of them holding the stream across calls */
static FILE *shared_stream;

static void *stdio_plain(void *arg)
{
    for (long i = 0; i < iters; i++) {
        fputs("plain line\n", shared_stream);
        if (i % 8 == 0)
            fflush(shared_stream);
    }
    return NULL;
}

static int run_stdio(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/stream", dir);
    shared_stream = fopen(path, "w");
    if (shared_stream == NULL)
        return 3;
    pthread_t t;
    pthread_create(&t, NULL, stdio_plain, NULL);
    for (long i = 0; i < iters; i++) {
        flockfile(shared_stream);
        fputs("locked line\n", shared_stream);
        fflush(shared_stream);
        funlockfile(shared_stream);
    }
    pthread_join(t, NULL);
    fclose(shared_stream);
    printf("stdio done\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: fs_load MODE DIR N...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argv[1];
    dir = argv[2];
    long n = atol(argv[3]);
    if (strcmp(mode, "threads") == 0 && argc >= 6) {
        iters = atol(argv[4]);
        bytes = (size_t) atol(argv[5]);
        return run_threads((int) n);
    }
    iters = n;
    if (strcmp(mode, "signal") == 0)
        return run_signal();
    if (strcmp(mode, "fork") == 0)
        return run_fork((int) n);
    if (strcmp(mode, "timeout") == 0)
        return run_timeout();
    if (strcmp(mode, "hold") == 0)
        return run_hold(n, argc > 4 ? atol(argv[4]) : 8);
    if (strcmp(mode, "ops") == 0)
        return run_ops(n, argc > 4 ? atol(argv[4]) : 0);
    if (strcmp(mode, "exec") == 0)
        return run_exec(argv);
    if (strcmp(mode, "stdio") == 0)
        return run_stdio();
    if (strcmp(mode, "pipes") == 0)
        return run_pipes(n);
    fprintf(stderr, "fs_load: unknown mode %s\n", mode);
    return 2;
}
