/* test_conn_host.c — the connection limit in host scope: one budget for a
 * service's processes. Multi-process servers (4 workers sharing a listener:
 * epoll level- and edge-triggered, blocking accept; fork-per-connection
 * servers, C and Python's ForkingTCPServer) serve exactly SLUICE_CONN_MAX
 * clients in total, leave the rest in the accept queue with the workers idle,
 * admit exactly one per close; shed mode sheds only at the service's limit; a
 * worker killed with SIGKILL gives its slots back within ~100 ms; two keys do
 * not share; another user cannot use or damage the budget; a damaged state
 * file is one line and the limit off. Observed from outside: the clients'
 * answers, ss's accept queue (/proc/net/tcp), /proc CPU ticks, the shared
 * file's count. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "connhost.h"
#include "fshost.h"
#include "leftovers.h"
#include "testlib.h"

#define NCLIENTS 10

static char key[64], key_assign[96], state[160];

static void setup(void)
{
    static int serial;
    snprintf(key, sizeof key, "test-%d-%d", (int) getpid(), serial++);
    snprintf(key_assign, sizeof key_assign, "SLUICE_CONN_KEY=%s", key);
    snprintf(state, sizeof state, FSHOST_DIR_FMT "/" CONNHOST_FILE_FMT, (unsigned) getuid(), key);
    unlink(state);
}

/* The services a test started: a failed assertion ends the test before its
 * stop, and a worker pool must not outlive it. */
static struct leftovers left = { .term_polls = 40 };

static void teardown(void)
{
    leftovers_clear(&left);
    char planted[192];
    snprintf(planted, sizeof planted, "%s.elsewhere", state);
    unlink(planted);
    unlink(state);
}

TestSuite(conn_host, .init = setup, .fini = teardown);

/* --- the service and its clients ------------------------------------------------- */

struct service {
    struct t_proc p;
    int port;
};

static struct service start(const char *const *argv, const char *const *extra_env)
{
    const char *env[12] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_SCOPE=host", key_assign };
    int n = 3;
    for (int i = 0; extra_env != NULL && extra_env[i] != NULL && n < 11; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    struct service s;
    s.p = leftovers_spawn(&left, argv, env, true);
    return s;
}

static struct service start_workers(const char *mode, int n, const char *const *extra_env)
{
    static char portstr[16], nstr[16];
    int port = t_free_port();
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(nstr, sizeof nstr, "%d", n);
    const char *argv[] = { t_helper("conn_workers"), portstr, mode, nstr, NULL };
    struct service s = start(argv, extra_env);
    s.port = port;
    cr_assert(t_wait_listening(port, 5000), "%s: not listening", mode);
    return s;
}

static struct service start_python_forking(void)
{
    static char portstr[16];
    int port = t_free_port();
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[] = { "/usr/bin/python3", t_source("tests/helpers/conn_server.py"), "fork",
                           portstr, NULL };
    struct service s = start(argv, NULL);
    s.port = port;
    cr_assert(t_wait_listening(port, 10000), "ForkingTCPServer: not listening");
    return s;
}

/* Per client: its socket (-1: closed) and whether it got an answer. */
struct clients {
    int n;
    int fd[40];
    bool served[40];
    char answer[40][32];
};

static void connect_clients(struct clients *c, int port, int n)
{
    c->n = n;
    for (int i = 0; i < n; i++) {
        c->fd[i] = t_connect(port);
        cr_assert_geq(c->fd[i], 0, "connect");
        c->served[i] = false;
        c->answer[i][0] = '\0';
        cr_assert_eq(write(c->fd[i], "hi\n", 3), 3);
    }
}

/* Reads the answers that have come within wait_ms; the number served so far. */
static int served(struct clients *c, int wait_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) wait_ms;
    int total;
    do {
        total = 0;
        for (int i = 0; i < c->n; i++) {
            if (c->fd[i] >= 0 && !c->served[i]) {
                struct pollfd pfd = { c->fd[i], POLLIN, 0 };
                if (poll(&pfd, 1, 0) == 1) {
                    ssize_t r = read(c->fd[i], c->answer[i], sizeof c->answer[i] - 1);
                    c->answer[i][r > 0 ? r : 0] = '\0';
                    c->served[i] = true;
                }
            }
            total += c->served[i];
        }
        if (t_now_ms() >= end)
            break;
        t_sleep_ms(2);
    } while (true);
    return total;
}

/* Waits (bounded) until `want` are served; the time it took, or -1. */
static long wait_served(struct clients *c, int want, int timeout_ms)
{
    uint64_t t0 = t_now_ms();
    while (t_now_ms() - t0 < (uint64_t) timeout_ms) {
        if (served(c, 0) >= want)
            return (long) (t_now_ms() - t0);
        t_sleep_ms(2);
    }
    return served(c, 0) >= want ? (long) (t_now_ms() - t0) : -1;
}

/* Waits (up to 5 s: slow builds start workers late) until `want` are
 * served, then 300 ms more for any beyond it: the number served. */
static int served_settled(struct clients *c, int want)
{
    wait_served(c, want, 5000);
    return served(c, 300);
}

static int first_served_open(struct clients *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->fd[i] >= 0 && c->served[i])
            return i;
    return -1;
}

static void close_client(struct clients *c, int i)
{
    close(c->fd[i]);
    c->fd[i] = -1;
}

static void close_all(struct clients *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->fd[i] >= 0)
            close_client(c, i);
}

/* The worker processes (children of pid), from /proc. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int) pid, (int) pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    int n = 0;
    for (char *p = strtok(buf, " \n"); p != NULL && n < max; p = strtok(NULL, " \n"))
        out[n++] = (pid_t) atoi(p);
    return n;
}

/* True once every thread of pid is traced by tracer (TracerPid in each
 * task's status): strace -p attaches thread by thread, after it starts. */
static bool traced_by(pid_t pid, pid_t tracer)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    int threads = 0, traced = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char status[320], line[128];
        snprintf(status, sizeof status, "/proc/%d/task/%s/status", (int) pid, e->d_name);
        FILE *f = fopen(status, "r");
        if (f == NULL)
            continue;
        threads++;
        while (fgets(line, sizeof line, f) != NULL)
            if (strncmp(line, "TracerPid:", 10) == 0) {
                if (atoi(line + 10) == (int) tracer)
                    traced++;
                break;
            }
        fclose(f);
    }
    closedir(d);
    return threads > 0 && traced == threads;
}

static long cpu_of(pid_t parent)
{
    pid_t kids[32];
    int n = children_of(parent, kids, 32);
    long ticks = t_cpu_ticks(parent);
    for (int i = 0; i < n; i++)
        ticks += t_cpu_ticks(kids[i]);
    return ticks;
}

/* The shared count's halves, read from outside; -1 if no state. */
static long shared_in_use(void)
{
    int fd = open(state, O_RDONLY);
    if (fd < 0)
        return -1;
    uint64_t count;
    ssize_t r = pread(fd, &count, sizeof count, offsetof(struct connhost_state, count));
    close(fd);
    return r == (ssize_t) sizeof count ? (long) CONNHOST_LOW(count) : -1;
}

/* Connections the budget's slots hold (bound or watched), read from outside:
 * a thread blocked in accept holds a reserved slot, not a connection. */
static long shared_connections(void)
{
    int fd = open(state, O_RDONLY);
    if (fd < 0)
        return -1;
    struct connhost_state head;
    long n = -1;
    if (pread(fd, &head, sizeof head, 0) == (ssize_t) sizeof head && head.limit <= 64) {
        struct connhost_slot slots[64];
        size_t len = head.limit * sizeof slots[0];
        if (pread(fd, slots, len, sizeof head) == (ssize_t) len) {
            n = 0;
            for (uint32_t i = 0; i < head.limit; i++)
                n += (slots[i].own & (CONNHOST_BOUND | CONNHOST_WATCHED)) != 0;
        }
    }
    close(fd);
    return n;
}

/* Waits (bounded) until read() (shared_in_use, shared_connections) gives
 * `want`: true if it did within timeout_ms. */
static bool wait_budget(long (*reader)(void), long want, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (reader() != want && t_now_ms() < end)
        t_sleep_ms(2);
    return reader() == want;
}

/* The accept queues of every listener on port (SO_REUSEPORT: one per worker). */
static int accept_queues(int port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return -1;
    char line[512];
    int total = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned lport, st;
        unsigned long txq, rxq;
        if (sscanf(line, "%*d: %*8x:%4x %*8x:%*4x %2x %8lx:%8lx", &lport, &st, &txq, &rxq) == 4
            && (int) lport == port && st == 0x0A)
            total += (int) rxq;
    }
    fclose(f);
    return total;
}

/* Stops the service; its stdout (the workers' lines) in *out. */
static void stop(struct service *s, char **out, char **err)
{
    kill(s->p.pid, SIGTERM);
    int rc = t_wait(&s->p, 5000);
    char *o = t_slurp(s->p.out_fd, 1000), *e = t_slurp(s->p.err_fd, 1000);
    close(s->p.out_fd);
    close(s->p.err_fd);
    cr_assert_neq(rc, -1, "the service did not stop");
    if (out != NULL)
        *out = o;
    else
        free(o);
    if (err != NULL)
        *err = e;
    else
        free(e);
}

/* Reads the service's standard error until `needle` appears or `timeout_ms`
 * passes: what it read. A member says what went wrong at its next gate
 * operation, which a busy sanitizer build reaches late. */
static char *err_until(struct service *s, const char *needle, int timeout_ms)
{
    static char seen[4096];
    size_t len = 0;
    seen[0] = '\0';
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (strstr(seen, needle) == NULL && t_now_ms() < end && len < sizeof seen - 1) {
        struct pollfd pfd = { s->p.err_fd, POLLIN, 0 };
        if (poll(&pfd, 1, 50) != 1)
            continue;
        ssize_t r = read(s->p.err_fd, seen + len, sizeof seen - 1 - len);
        if (r <= 0)
            break;
        len += (size_t) r;
        seen[len] = '\0';
    }
    return seen;
}

/* Sums the workers' "accepted A calls C" lines. */
static void worker_totals(const char *out, long *accepted, long *calls, int *workers)
{
    *accepted = *calls = 0;
    *workers = 0;
    for (const char *p = strstr(out, "worker "); p != NULL; p = strstr(p + 1, "worker ")) {
        int pid;
        long a, c;
        if (sscanf(p, "worker %d accepted %ld calls %ld", &pid, &a, &c) == 3) {
            *accepted += a;
            *calls += c;
            (*workers)++;
        }
    }
}

/* --- one budget for the whole service --------------------------------------------- */

/* 10 clients, 4 processes, a budget of 4: exactly 4 served, 6 in the accept
 * queue, the processes idle; each close admits exactly one; all served. */
static void four_served_in_total(struct service *s, const char *what, bool worker_pool)
{
    struct clients c;
    connect_clients(&c, s->port, NCLIENTS);
    int first = served_settled(&c, 4);
    cr_assert_eq(first, 4, "%s: %d of %d served at once with a shared budget of 4", what, first,
                 NCLIENTS);
    cr_assert_eq(accept_queues(s->port), NCLIENTS - 4, "%s: accept queue %d", what,
                 accept_queues(s->port));
    cr_assert_eq(shared_in_use(), 4);
    cr_assert_eq(shared_connections(), 4);
    long cpu0 = cpu_of(s->p.pid);
    t_sleep_ms(1000);
    long paused_cpu = cpu_of(s->p.pid) - cpu0;
    cr_assert_leq(paused_cpu, 3, "%s: %ld ticks of CPU in 1 s while paused", what, paused_cpu);
    int total = 4;
    long worst_ms = 0, took[NCLIENTS];
    int admissions = 0;
    while (total < NCLIENTS) {
        int i = first_served_open(&c);
        cr_assert_geq(i, 0);
        uint64_t t0 = t_now_ms();
        close_client(&c, i);
        long ms = wait_served(&c, total + 1, 2000);
        cr_assert_geq(ms, 0, "%s: a close admitted nobody (%d served)", what, total);
        took[admissions++] = (long) (t_now_ms() - t0);
        if (took[admissions - 1] > worst_ms)
            worst_ms = took[admissions - 1];
        total++;
        int now = served(&c, 60);
        cr_assert_eq(now, total, "%s: one close admitted %d", what, now - total + 1);
    }
    cr_assert_eq(accept_queues(s->port), 0);
    /* At once, not at the next periodic check (50 ms): the median admission. */
    for (int i = 1; i < admissions; i++)
        for (int j = i; j > 0 && took[j - 1] > took[j]; j--) {
            long t = took[j];
            took[j] = took[j - 1];
            took[j - 1] = t;
        }
    long median = took[admissions / 2];
    if (worker_pool)
        cr_assert_leq(median, 15, "%s: a close admitted the next after %ld ms (median)", what, median);
    close_all(&c);
    /* Nothing leaks: the budget empties (watched slots too) while the
     * service runs on, not at the limit. */
    uint64_t t_empty = t_now_ms();
    while (shared_connections() != 0 && t_now_ms() - t_empty < 1000)
        t_sleep_ms(5);
    cr_assert_eq(shared_connections(), 0, "%s: %ld slots still hold connections 1 s after every "
                 "client closed", what, shared_connections());
    long empty_ms = (long) (t_now_ms() - t_empty);
    char *out = NULL;
    stop(s, &out, NULL);
    if (worker_pool) {
        long accepted, calls;
        int workers;
        worker_totals(out, &accepted, &calls, &workers);
        cr_assert_eq(workers, 4, "[%s]", out);
        cr_assert_eq(accepted, NCLIENTS, "%s: [%s]", what, out);
        /* A refused accept pauses its process, and a freed slot wakes one:
         * about one call answered EAGAIN per admission (edge-triggered loops
         * accept until EAGAIN), never a spin nor a herd. */
        cr_assert_leq(calls - accepted, 2 * NCLIENTS + 4, "%s: %ld accept calls for %ld "
                      "connections: paused processes kept trying [%s]", what, calls, accepted, out);
        fprintf(stderr, "conn_host: %s: paused CPU %ld ticks/s, admission median %ld ms, slowest "
                "%ld ms, %ld accept calls for %ld connections\n", what, paused_cpu, median, worst_ms,
                calls, accepted);
    } else {
        fprintf(stderr, "conn_host: %s: paused CPU %ld ticks/s, admission median %ld ms, slowest "
                "%ld ms, empty %ld ms after the last close\n", what, paused_cpu, median, worst_ms, empty_ms);
    }
    free(out);
}

Test(conn_host, four_epoll_level_workers_serve_four_in_total, .timeout = 30)
{
    struct service s = start_workers("level", 4, NULL);
    four_served_in_total(&s, "epoll level-triggered", true);
}

Test(conn_host, four_epoll_edge_workers_serve_four_in_total, .timeout = 30)
{
    struct service s = start_workers("edge", 4, NULL);
    four_served_in_total(&s, "epoll edge-triggered", true);
}

Test(conn_host, four_blocking_accept_workers_serve_four_in_total, .timeout = 30)
{
    struct service s = start_workers("block", 4, NULL);
    four_served_in_total(&s, "blocking accept", true);
}

/* Separate backlogs: the process woken for a freed slot may have nothing
 * queued; it passes the wake on, and the one with a client admits it. */
Test(conn_host, four_reuseport_workers_serve_four_in_total, .timeout = 30)
{
    struct service s = start_workers("reuseport", 4, NULL);
    four_served_in_total(&s, "SO_REUSEPORT listeners", true);
}

/* idle=free: an answered connection waiting for its next request gives its
 * slot back to the whole service, and requests waiting on idle connections
 * are served by slots freed in any worker. */
static void request(struct clients *c, int i, const char *line)
{
    c->served[i] = false;
    cr_assert_eq(write(c->fd[i], line, strlen(line)), (ssize_t) strlen(line));
}

Test(conn_host, idle_free_counts_requests_in_service_across_the_service, .timeout = 30)
{
    const char *extra[] = { "SLUICE_CONN_IDLE=free", NULL };
    struct service s = start_workers("reuseport", 4, extra);
    struct clients c;
    connect_clients(&c, s.port, NCLIENTS);
    int n = served_settled(&c, NCLIENTS);
    cr_assert_eq(n, NCLIENTS, "idle=free: %d of %d served", n, NCLIENTS);
    /* Each answered connection goes idle and gives its slot back. */
    cr_assert(wait_budget(shared_in_use, 0, 5000), "%ld slots held by idle connections", shared_in_use());
    /* Four requests in service fill the service's budget... */
    for (int i = 0; i < 4; i++)
        request(&c, i, "hold\n");
    cr_assert(wait_budget(shared_in_use, 4, 5000), "%ld slots held by 4 requests in service",
              shared_in_use());
    /* ...so the others' requests wait, whichever worker has them. */
    for (int i = 4; i < NCLIENTS; i++)
        request(&c, i, "again\n");
    n = served(&c, 300);
    cr_assert_eq(n, 0, "%d requests served beyond the service's 4 in service", n);
    /* One finishes: its slot serves the waiting requests (each is answered
     * at once and gives the slot on). */
    request(&c, 0, "done\n");
    n = served_settled(&c, 1 + NCLIENTS - 4);
    cr_assert_eq(n, 1 + NCLIENTS - 4, "%d served after one request finished", n);
    close_all(&c);
    stop(&s, NULL, NULL);
}

Test(conn_host, fork_per_connection_server_is_bounded, .timeout = 30)
{
    struct service s = start_workers("fork", 1, NULL);
    four_served_in_total(&s, "fork per connection", false);
}

Test(conn_host, fork_per_connection_child_exiting_without_close_frees_its_slot, .timeout = 30)
{
    struct service s = start_workers("fork-exit", 1, NULL);
    four_served_in_total(&s, "fork, child exits without closing", false);
}

Test(conn_host, fork_per_connection_child_exec_with_socket_on_stdin_is_bounded, .timeout = 30)
{
    struct service s = start_workers("fork-exec", 1, NULL);
    four_served_in_total(&s, "fork and exec a handler", false);
}

Test(conn_host, python_forking_tcp_server_is_bounded, .timeout = 30)
{
    struct service s = start_python_forking();
    four_served_in_total(&s, "ForkingTCPServer", false);
}

/* No thundering herd: with every worker asleep for a slot, each freed slot
 * wakes one sleeper. Watched from outside with strace on the workers: every
 * FUTEX_WAKE on the budget's shared word (the process-shared kind; glibc's
 * own are private) woke at most one thread. */
Test(conn_host, a_freed_slot_wakes_one_sleeper_not_all, .timeout = 30)
{
    struct service s = start_workers("level", 4, NULL);
    struct clients c;
    connect_clients(&c, s.port, NCLIENTS);
    cr_assert_eq(served_settled(&c, 4), 4);
    t_sleep_ms(100);
    pid_t kids[8];
    int n = children_of(s.p.pid, kids, 8);
    cr_assert_eq(n, 4);
    char trace[64], p[4][16];
    snprintf(trace, sizeof trace, "/tmp/sluice-chs-futex-%d", (int) getpid());
    const char *argv[16] = { "strace", "-f", "-qq", "-e", "trace=futex", "-o", trace };
    int a = 7;
    for (int i = 0; i < n; i++) {
        snprintf(p[i], sizeof p[i], "%d", (int) kids[i]);
        argv[a++] = "-p";
        argv[a++] = p[i];
    }
    argv[a] = NULL;
    struct t_proc st = leftovers_spawn(&left, argv, NULL, false);
    /* Closes begin only once strace holds every worker thread: a fixed pause
     * here once ended before strace had even opened its file (CI). */
    int attached = 0;
    for (int tries = 0; tries < 500 && attached < n; tries++) {
        attached = 0;
        for (int i = 0; i < n; i++)
            attached += traced_by(kids[i], st.pid);
        if (attached < n)
            t_sleep_ms(10);
    }
    cr_assert_eq(attached, n, "strace attached to %d of %d workers in 5 s", attached, n);
    int total = 4;
    while (total < NCLIENTS) {
        close_client(&c, first_served_open(&c));
        cr_assert_geq(wait_served(&c, total + 1, 3000), 0, "a close admitted nobody");
        total++;
    }
    t_sleep_ms(100);
    kill(st.pid, SIGINT);
    t_wait(&st, 5000);
    close(st.out_fd);
    close(st.err_fd);
    close_all(&c);
    stop(&s, NULL, NULL);
    FILE *f = fopen(trace, "r");
    cr_assert_not_null(f);
    char line[512];
    int wakes = 0, most = 0;
    /* A call another thread's line interrupts ends on a "resumed" line of its
     * own thread: remember which threads are inside a shared wake. */
    int waking[64], nwaking = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        int tid = atoi(line), woken = -1;
        const char *eq = strrchr(line, '=');
        if (strstr(line, "FUTEX_WAKE,") != NULL) {     /* not FUTEX_WAKE_PRIVATE */
            wakes++;
            if (strstr(line, "<unfinished") != NULL && nwaking < 64)
                waking[nwaking++] = tid;
            else if (eq != NULL)
                woken = atoi(eq + 1);
        } else if (strstr(line, "resumed>") != NULL && eq != NULL) {
            for (int i = 0; i < nwaking; i++)
                if (waking[i] == tid) {
                    woken = atoi(eq + 1);
                    waking[i] = waking[--nwaking];
                    break;
                }
        }
        if (woken > most)
            most = woken;
    }
    fclose(f);
    if (getenv("SLUICE_TEST_KEEP_TRACE") == NULL)
        unlink(trace);
    cr_assert_gt(wakes, 0, "no shared wake seen: the trace shows nothing");
    cr_assert_leq(most, 1, "one FUTEX_WAKE woke %d sleepers: a herd", most);
    fprintf(stderr, "conn_host: %d shared wakes for %d admissions, at most %d woken by one\n",
            wakes, NCLIENTS - 4, most);
}

/* In flight and the limit are the budget's in every worker's stats file. */
Test(conn_host, stats_show_the_shared_budget_in_every_process, .timeout = 30)
{
    char dir[] = "/tmp/sluice-chs-XXXXXX", stats_env[96];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(stats_env, sizeof stats_env, "SLUICE_STATS=%s/s-%%p.prom", dir);
    const char *extra[] = { stats_env, "SLUICE_STATS_INTERVAL=100ms", NULL };
    struct service s = start_workers("block", 4, extra);
    struct clients c;
    connect_clients(&c, s.port, 6);
    int first = served_settled(&c, 4);
    cr_assert_eq(first, 4, "%d of 6 served with a shared budget of 4", first);
    pid_t kids[8];
    int n = children_of(s.p.pid, kids, 8);
    cr_assert_eq(n, 4);
    /* Each writer rewrites its file every 100 ms: wait (bounded) for all. */
    int showing = 0;
    for (uint64_t end = t_now_ms() + 5000; showing < n && t_now_ms() < end;) {
        t_sleep_ms(100);
        showing = 0;
        for (int i = 0; i < n; i++) {
            char path[128], cmd[512];
            snprintf(path, sizeof path, "%s/s-%d.prom", dir, (int) kids[i]);
            snprintf(cmd, sizeof cmd, "grep -qx 'sluice_connections_in_flight 4' %s && "
                     "grep -qx 'sluice_connections_limit 4' %s && "
                     "grep -qx 'sluice_connections_shared 1' %s", path, path, path);
            showing += system(cmd) == 0;
        }
    }
    cr_assert_eq(showing, n, "%d of %d workers' stats show the shared 4 of 4", showing, n);
    /* sluice stat counts the shared budget once in its total, not 16/16. */
    char pattern[128], *out = NULL;
    snprintf(pattern, sizeof pattern, "%s/s-*.prom", dir);
    char launcher[4096];
    snprintf(launcher, sizeof launcher, "%s/sluice", SLUICE_BUILD_DIR);
    const char *stat_argv[] = { launcher, "stat", pattern, NULL };
    cr_assert_eq(t_run(stat_argv, NULL, false, 10000, &out, NULL), 0);
    const char *total = strstr(out, "TOTAL (");
    cr_assert_not_null(total, "[%s]", out);
    cr_assert(strstr(total, " 4/4 ") != NULL, "the total counts the shared budget more than once: [%s]", out);
    free(out);
    close_all(&c);
    stop(&s, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* --- shed ----------------------------------------------------------------------------- */

static bool got_503(struct clients *c, int i)
{
    return strstr(c->answer[i], " 503 ") != NULL;
}

Test(conn_host, shed_only_at_the_service_limit, .timeout = 30)
{
    const char *extra[] = { "SLUICE_CONN_MODE=shed", NULL };
    struct service s = start_workers("block", 4, extra);
    struct clients c;
    c.n = 0;
    /* One at a time: each of the first four is served, whichever worker takes it. */
    for (int i = 0; i < 6; i++) {
        struct clients one;
        connect_clients(&one, s.port, 1);
        cr_assert_eq(wait_served(&one, 1, 2000) >= 0, true, "client %d got no answer", i);
        c.fd[c.n] = one.fd[0];
        c.served[c.n] = true;
        memcpy(c.answer[c.n], one.answer[0], sizeof one.answer[0]);
        c.n++;
        if (i < 4)
            cr_assert(!got_503(&c, i), "client %d shed while the service held %d: [%s]", i, i,
                      c.answer[i]);
        else
            cr_assert(got_503(&c, i), "client %d served beyond the service's 4: [%s]", i, c.answer[i]);
    }
    /* A close frees one: the next is served. */
    close_client(&c, 0);
    cr_assert(wait_budget(shared_connections, 3, 5000), "a close freed no slot (%ld held)",
              shared_connections());
    struct clients next;
    connect_clients(&next, s.port, 1);
    cr_assert_geq(wait_served(&next, 1, 2000), 0);
    cr_assert(!got_503(&next, 0), "shed with a slot free: [%s]", next.answer[0]);
    close_all(&next);
    close_all(&c);
    stop(&s, NULL, NULL);
}

/* --- crash recovery ------------------------------------------------------------------- */

Test(conn_host, a_worker_killed_holding_two_slots_gives_them_back_within_100ms, .timeout = 30)
{
    struct service s = start_workers("level", 4, NULL);
    struct clients c;
    connect_clients(&c, s.port, NCLIENTS);
    cr_assert_eq(served_settled(&c, 4), 4);
    /* The worker that holds two (or more). */
    pid_t victim = 0;
    int held = 0;
    for (int i = 0; i < c.n && victim == 0; i++) {
        int pid = 0, count = 0;
        if (sscanf(c.answer[i], "pid %d", &pid) != 1)
            continue;
        for (int j = 0; j < c.n; j++) {
            int other = 0;
            count += sscanf(c.answer[j], "pid %d", &other) == 1 && other == pid;
        }
        if (count >= 2) {
            victim = pid;
            held = count;
        }
    }
    cr_assert_neq(victim, 0, "no worker holds two slots");
    uint64_t t0 = t_now_ms();
    kill(victim, SIGKILL);
    long ms = wait_served(&c, 4 + held, 2000);
    long recovery = (long) (t_now_ms() - t0);
    cr_assert_geq(ms, 0, "the killed worker's %d slots never came back", held);
    cr_assert_leq(recovery, 150, "the killed worker's %d slots came back after %ld ms", held, recovery);
    fprintf(stderr, "conn_host: kill -9 of a worker holding %d slots: served again after %ld ms\n",
            held, recovery);
    close_all(&c);
    stop(&s, NULL, NULL);
}

/* A stopped worker (^Z, a debugger) is alive: it keeps its slots until it
 * continues, and nobody else is served meanwhile. */
Test(conn_host, a_stopped_worker_keeps_its_slots, .timeout = 30)
{
    struct service s = start_workers("level", 4, NULL);
    struct clients c;
    connect_clients(&c, s.port, NCLIENTS);
    cr_assert_eq(served_settled(&c, 4), 4);
    int pid = 0;
    sscanf(c.answer[first_served_open(&c)], "pid %d", &pid);
    cr_assert_gt(pid, 0);
    kill(pid, SIGSTOP);
    int n = served(&c, 300);
    long held = shared_in_use();
    kill(pid, SIGCONT);
    cr_assert_eq(n, 4, "%d served while a holder was stopped: its slots were taken", n);
    cr_assert_eq(held, 4);
    close_client(&c, first_served_open(&c));
    cr_assert_geq(wait_served(&c, 5, 2000), 0, "a close after SIGCONT admitted nobody");
    close_all(&c);
    stop(&s, NULL, NULL);
}

/* --- keys, users, damage ----------------------------------------------------------- */

Test(conn_host, two_keys_do_not_share, .timeout = 30)
{
    char other_key[96];
    snprintf(other_key, sizeof other_key, "SLUICE_CONN_KEY=%s-other", key);
    const char *two[] = { "SLUICE_CONN_MAX=2", NULL };
    const char *two_other[] = { "SLUICE_CONN_MAX=2", other_key, NULL };
    /* The later SLUICE_CONN_MAX/KEY entries override the defaults start() gives. */
    struct service a = start_workers("block", 2, two);
    struct service b = start_workers("block", 2, two_other);
    struct clients ca, cb;
    connect_clients(&ca, a.port, 4);
    connect_clients(&cb, b.port, 4);
    /* Each key serves its 2 (workers may start late on a slow build)... */
    cr_assert_geq(wait_served(&ca, 2, 5000), 0, "key A served %d", served(&ca, 0));
    cr_assert_geq(wait_served(&cb, 2, 5000), 0, "key B served %d", served(&cb, 0));
    /* ...and no more: neither took the other's. */
    int na = served(&ca, 300), nb = served(&cb, 0);
    cr_assert_eq(na, 2, "key A served %d", na);
    cr_assert_eq(nb, 2, "key B served %d", nb);
    close_all(&ca);
    close_all(&cb);
    stop(&a, NULL, NULL);
    stop(&b, NULL, NULL);
    char path[192];
    snprintf(path, sizeof path, "%s-other", state);
    unlink(path);
}

Test(conn_host, another_user_can_neither_read_nor_damage_the_budget, .timeout = 30)
{
    if (getuid() != 0)
        cr_skip_test("needs root to run a process as nobody");
    struct service s = start_workers("block", 2, NULL);
    struct clients c;
    connect_clients(&c, s.port, 6);
    cr_assert_eq(served_settled(&c, 4), 4);
    char cmd[1024];
    /* nobody: neither read, nor write, nor replace the file. */
    snprintf(cmd, sizeof cmd, "setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "
             "'cat %s >/dev/null 2>&1 || dd if=/dev/zero of=%s bs=64 count=1 conv=notrunc 2>/dev/null "
             "|| rm -f %s 2>/dev/null || exit 0; exit 1'", state, state, state);
    cr_assert_eq(system(cmd), 0, "nobody could read, write or remove %s", state);
    /* nobody's own members with the same key get a budget of nobody's own. */
    snprintf(cmd, sizeof cmd, "setpriv --reuid=65534 --regid=65534 --clear-groups env LD_PRELOAD=%s "
             "SLUICE_CONN_MAX=1 SLUICE_CONN_SCOPE=host %s /bin/true", t_preload(), key_assign);
    cr_assert_eq(system(cmd), 0);
    char theirs[160];
    snprintf(theirs, sizeof theirs, "/dev/shm/sluice-65534/" CONNHOST_FILE_FMT, key);
    struct stat sb;
    cr_assert_eq(stat(theirs, &sb), 0, "nobody's process made no budget of its own");
    cr_assert_eq(shared_in_use(), 4);
    /* Still one budget: a close admits exactly one. */
    close_client(&c, first_served_open(&c));
    cr_assert_geq(wait_served(&c, 5, 2000), 0);
    cr_assert_eq(served(&c, 60), 5);
    close_all(&c);
    stop(&s, NULL, NULL);
    snprintf(cmd, sizeof cmd, "rm -f /dev/shm/sluice-65534/" CONNHOST_FILE_FMT, key);
    cr_assert_eq(system(cmd), 0);
}

static int count_lines(const char *s)
{
    int lines = 0;
    for (; *s; s++)
        lines += *s == '\n';
    return lines;
}

/* Each damaged or foreign state: one line naming it, the limit off (all
 * clients served), quickly. */
static void expect_refused(const char *setup_cmd, const char *reason)
{
    unlink(state);
    cr_assert_eq(system(setup_cmd), 0, "%s", setup_cmd);
    uint64_t t0 = t_now_ms();
    struct service s = start_workers("level", 1, NULL);
    struct clients c;
    connect_clients(&c, s.port, 6);
    int n = served_settled(&c, 6);
    cr_assert_lt(t_now_ms() - t0, 3000, "%s: slow", reason);
    close_all(&c);
    char *err = NULL;
    stop(&s, NULL, &err);
    cr_assert_eq(n, 6, "%s: %d of 6 served: the limit should be off", reason, n);
    /* Said once, by the parent, before it forks its worker. */
    cr_assert_eq(count_lines(err), 1, "%s: [%s]", reason, err);
    cr_assert(strstr(err, "SLUICE_CONN_SCOPE=host") != NULL && strstr(err, reason) != NULL,
              "want '%s' in [%s]", reason, err);
    free(err);
}

Test(conn_host, damaged_or_foreign_state_files_turn_the_limit_off_with_one_line, .timeout = 60)
{
    char cmd[600];
    size_t size = connhost_size(4);
    snprintf(cmd, sizeof cmd, "touch %s.elsewhere && ln -s %s.elsewhere %s", state, state, state);
    expect_refused(cmd, "symbolic link");
    snprintf(cmd, sizeof cmd, "rm -f %s.elsewhere", state);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero > %s && chmod 0644 %s", size, state, state);
    expect_refused(cmd, "mode");
    snprintf(cmd, sizeof cmd, "head -c 100 /dev/urandom > %s && chmod 0600 %s", state, state);
    expect_refused(cmd, "wrong size");
    snprintf(cmd, sizeof cmd, "head -c %zu /dev/urandom > %s && chmod 0600 %s", size, state, state);
    expect_refused(cmd, "bad header");
    if (getuid() == 0) {
        snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero > %s && chmod 0600 %s && chown 65534 %s",
                 size, state, state, state);
        expect_refused(cmd, "another user");
    }
    unlink(state);
}

/* A same-user process truncates the state under running members: they keep
 * running, without the limit, and say so. */
Test(conn_host, members_survive_the_state_file_being_truncated, .timeout = 30)
{
    struct service s = start_workers("level", 2, NULL);
    struct clients c;
    connect_clients(&c, s.port, 6);
    cr_assert_eq(served_settled(&c, 4), 4);
    cr_assert_eq(truncate(state, 0), 0);
    /* The next operations fault on the vanished pages: the limit goes off. */
    close_client(&c, first_served_open(&c));
    int n = served_settled(&c, 6);
    cr_assert_eq(n, 6, "%d of 6 served after the truncation", n);
    const char *said = err_until(&s, "shrank", 5000);
    cr_assert(strstr(said, "shrank") != NULL, "[%s]", said);
    pid_t kids[4];
    cr_assert_eq(children_of(s.p.pid, kids, 4), 2, "a worker died (SIGBUS?)");
    close_all(&c);
    stop(&s, NULL, NULL);
}

Test(conn_host, a_bad_key_with_host_scope_turns_the_limit_off_with_one_line, .timeout = 30)
{
    const char *argv[] = { "/bin/true", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_SCOPE=host", "SLUICE_CONN_KEY=../x", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 10000, &out, &err);
    cr_assert_eq(rc, 0);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, "SLUICE_CONN_KEY") != NULL && strstr(err, "stays off") != NULL, "[%s]", err);
    free(out);
    free(err);
}
