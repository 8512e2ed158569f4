/* testlib.c — see testlib.h. Every wait here is bounded; every process stopped
 * is one the test started, by PID. */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SLUICE_BUILD_DIR
#define SLUICE_BUILD_DIR "build"
#endif
#ifndef SLUICE_SOURCE_DIR
#define SLUICE_SOURCE_DIR "."
#endif

const char *t_lib(void)
{
    return SLUICE_BUILD_DIR "/libsluice.so";
}

const char *t_helper(const char *name)
{
    static __thread char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/helpers/%s", SLUICE_BUILD_DIR, name);
    return path;
}

const char *t_source(const char *relpath)
{
    static __thread char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", SLUICE_SOURCE_DIR, relpath);
    return path;
}

/* Under a sanitized build the runtime must come first in LD_PRELOAD. */
const char *t_preload(void)
{
    static char value[PATH_MAX * 2];
    const char *runtime = getenv("SANITIZER_RUNTIME_FOR_TESTS");
    if (runtime != NULL && *runtime != '\0')
        snprintf(value, sizeof value, "%s:%s", runtime, t_lib());
    else
        snprintf(value, sizeof value, "%s", t_lib());
    return value;
}

uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void t_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct t_proc t_spawn(const char *const *argv, const char *const *env, bool preload)
{
    int out[2], err[2];
    struct t_proc p = { -1, -1, -1 };
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        return p;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(err[1], 2);
        /* A clean slate: settings only from this test. */
        for (char **e = __environ; *e != NULL;) {
            if (strncmp(*e, "SLUICE_", 7) == 0 && strncmp(*e, "SLUICE_TEST_", 12) != 0) {
                char name[128];
                size_t n = strcspn(*e, "=");
                snprintf(name, sizeof name, "%.*s", (int) n, *e);
                unsetenv(name);
            } else {
                e++;
            }
        }
        unsetenv("LD_PRELOAD");
        if (preload)
            setenv("LD_PRELOAD", t_preload(), 1);
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *) env[i]);
        setpgid(0, 0);
        execvp(argv[0], (char *const *) argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    p.pid = pid;
    p.out_fd = out[0];
    p.err_fd = err[0];
    return p;
}

int t_wait(struct t_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = -1;
            return status;
        }
        if (t_now_ms() >= end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            p->pid = -1;
            return -1;
        }
        t_sleep_ms(10);
    }
}

void t_stop(struct t_proc *p, int grace_ms)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        if (t_wait(p, grace_ms) == -1 && p->pid > 0)
            t_wait(p, 1000);
    }
    if (p->out_fd >= 0)
        close(p->out_fd);
    if (p->err_fd >= 0)
        close(p->err_fd);
    p->out_fd = p->err_fd = -1;
}

char *t_slurp(int fd, int timeout_ms)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (fd >= 0) {
        int left = (int) (end - t_now_ms());
        if (left <= 0)
            break;
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, left) <= 0)
            break;
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    buf[len] = '\0';
    return buf;
}

char *t_slurp_some(int fd, int timeout_ms)
{
    char *buf = malloc(65536);
    size_t len = 0;
    struct pollfd pfd = { fd, POLLIN, 0 };
    if (fd >= 0 && poll(&pfd, 1, timeout_ms) > 0) {
        ssize_t n = read(fd, buf, 65535);
        if (n > 0)
            len = (size_t) n;
    }
    buf[len] = '\0';
    return buf;
}

int t_run(const char *const *argv, const char *const *env, bool preload, int timeout_ms,
          char **out, char **err)
{
    struct t_proc p = t_spawn(argv, env, preload);
    char *o = t_slurp(p.out_fd, timeout_ms);
    char *e = t_slurp(p.err_fd, 1000);
    int status = t_wait(&p, timeout_ms);
    t_stop(&p, 100);
    if (out != NULL) *out = o; else free(o);
    if (err != NULL) *err = e; else free(e);
    if (status == -1)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int t_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *) &a, sizeof a) != 0
        || getsockname(s, (struct sockaddr *) &a, &len) != 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

int t_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (s >= 0 && connect(s, (struct sockaddr *) &a, sizeof a) == 0)
        return s;
    if (s >= 0)
        close(s);
    return -1;
}

bool t_wait_listening(int port, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (t_now_ms() < end) {
        if (t_accept_queue(port) >= 0)
            return true;
        t_sleep_ms(20);
    }
    return false;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = malloc(65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

long t_cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    char *s = read_file(path);
    if (s == NULL)
        return -1;
    /* Fields after the command name (which may hold spaces): state is field 3. */
    char *p = strrchr(s, ')');
    long utime = -1, stime = -1;
    if (p != NULL)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime);
    free(s);
    return (utime < 0 || stime < 0) ? -1 : utime + stime;
}

long t_rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    char *s = read_file(path);
    if (s == NULL)
        return -1;
    long kib = -1;
    char *p = strstr(s, "VmRSS:");
    if (p != NULL)
        sscanf(p + 6, "%ld", &kib);
    free(s);
    return kib;
}

/* Reads the kernel's table directly (what `ss -ltn` shows): for a LISTEN
 * socket, /proc/net/tcp's rx_queue column is the accept-queue length. */
int t_accept_queue(int port)
{
    char *s = read_file("/proc/net/tcp");
    if (s == NULL)
        return -1;
    int result = -1;
    char *line = strchr(s, '\n');
    while (line != NULL && result < 0) {
        line++;
        unsigned lport, st;
        unsigned long txq, rxq;
        if (sscanf(line, "%*d: %*8x:%4x %*8x:%*4x %2x %8lx:%8lx", &lport, &st, &txq, &rxq) == 4
            && (int) lport == port && st == 0x0A)
            result = (int) rxq;
        line = strchr(line, '\n');
    }
    free(s);
    return result;
}
