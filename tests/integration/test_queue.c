/* test_queue.c — waiting for a slot, observed from outside: threads blocked in
 * accept take turns in the order they began to wait (a freed slot is handed to
 * the longest waiting thread, none barges in); with SLUICE_QUEUE_TIMEOUT a
 * burst on real servers (uvicorn on asyncio and on uvloop, nginx proxying to a
 * slow upstream) is served in arrival order or answered 503 by the deadline,
 * never reset; a sustained overload is answered without listen overflows;
 * SLUICE_QUEUE_MAX answers at once; SLUICE_RETRY_AFTER=auto tells a client
 * about when its retry will be served; 200 clients on a process limited to 64
 * descriptors cost no spinning and no EMFILE. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clients.h"
#include "leftovers.h"
#include "nginx_fixture.h"
#include "testlib.h"

#define PY "/usr/bin/python3"

static struct leftovers leftovers = { .term_polls = 20 };

static void clear_leftovers(void)
{
    leftovers_clear(&leftovers);
}

TestSuite(queue, .fini = clear_leftovers);

/* Connects n clients at once, then closes each hold_ms after its greeting
 * came (which frees the slot for the next): returns how many were greeted. */
static int greet_and_close(int port, int n, int hold_ms, int ms)
{
    int *fd = calloc((size_t) n, sizeof *fd);
    uint64_t *greeted_at = calloc((size_t) n, sizeof *greeted_at);
    for (int i = 0; i < n; i++)
        fd[i] = t_connect(port);
    int greeted = 0, open = n;
    uint64_t end = t_now_ms() + (uint64_t) ms;
    struct pollfd *p = calloc((size_t) n, sizeof *p);
    while (open > 0 && t_now_ms() < end) {
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd) { .fd = greeted_at[i] == 0 ? fd[i] : -1, .events = POLLIN };
        (void) poll(p, (nfds_t) n, 2);
        uint64_t now = t_now_ms();
        for (int i = 0; i < n; i++) {
            if (fd[i] < 0)
                continue;
            if (greeted_at[i] == 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buf[64];
                greeted += read(fd[i], buf, sizeof buf) > 0;
                greeted_at[i] = now;
            }
            if (greeted_at[i] != 0 && now - greeted_at[i] >= (uint64_t) hold_ms) {
                close(fd[i]);
                fd[i] = -1;
                open--;
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    free(p);
    free(greeted_at);
    free(fd);
    return greeted;
}

/* Syscall numbers of process pid's tasks other than its main thread. */
static int task_syscalls(pid_t pid, long *nr, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int) pid);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL && n < max;) {
        int tid = atoi(de->d_name);
        if (tid <= 0 || tid == pid)
            continue;
        char sc[96], line[256] = "";
        snprintf(sc, sizeof sc, "/proc/%d/task/%d/syscall", (int) pid, tid);
        FILE *f = fopen(sc, "r");
        if (f != NULL) {
            if (fgets(line, sizeof line, f) == NULL)
                line[0] = '\0';
            fclose(f);
        }
        nr[n++] = line[0] >= '0' && line[0] <= '9' ? atol(line) : -1;   /* -1: running */
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* Waits until `in_accept` threads of pid sleep in the real accept (they hold
 * the slots) and `in_line` more sleep on a futex (the line for a slot), the
 * same in two looks 20 ms apart. */
static bool pool_waits(pid_t pid, int in_accept, int in_line, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    int steady = 0;
    while (t_now_ms() < end) {
        long nr[64];
        int n = task_syscalls(pid, nr, 64), accepting = 0, futex = 0;
        for (int i = 0; i < n; i++) {
            accepting += nr[i] == SYS_accept || nr[i] == SYS_accept4;
            futex += nr[i] == SYS_futex;
        }
        steady = accepting == in_accept && futex == in_line ? steady + 1 : 0;
        if (steady == 2)
            return true;
        t_sleep_ms(20);
    }
    return false;
}

/* Eight threads blocked in accept, four slots, 80 connections: a thread that
 * closes its connection and comes back to accept queues behind the threads
 * already waiting, so every thread serves its tenth, give or take two. Each
 * client stays 20 ms after its greeting: a turn then lasts far longer than a
 * busy machine keeps a runnable thread off the CPU (a thread descheduled for
 * 3 ms between its close and its next accept, while the others turned over a
 * connection every 60 us, missed 40 turns and served 5 of 80). */
Test(queue, thread_pool_takes_turns)
{
    int port = t_free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { t_helper("conn_threaded"), ports, "8", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", NULL };
    struct t_proc srv = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "server did not listen");
    cr_assert(pool_waits(srv.pid, 4, 4, 5000), "the pool never settled: 4 threads in accept, 4 in line");
    int greeted = greet_and_close(port, 80, 20, 20000);
    t_sleep_ms(200);
    kill(srv.pid, SIGTERM);
    char *out = t_slurp(srv.out_fd, 3000);
    t_stop(&srv, 1000);
    cr_assert_eq(greeted, 80, "only %d of 80 greeted", greeted);
    int per[8] = { 0 };
    for (const char *p = out; (p = strstr(p, " by ")) != NULL; p += 4) {
        int t = atoi(p + 4);
        if (t >= 0 && t < 8)
            per[t]++;
    }
    cr_log_info("per pool thread: %d %d %d %d %d %d %d %d", per[0], per[1], per[2], per[3],
                per[4], per[5], per[6], per[7]);
    for (int t = 0; t < 8; t++)
        cr_expect(per[t] >= 8 && per[t] <= 12, "pool thread %d served %d of 80: %d %d %d %d %d %d %d %d",
                  t, per[t], per[0], per[1], per[2], per[3], per[4], per[5], per[6], per[7]);
    free(out);
}

/* --- HTTP clients that time what they get -------------------------------------- */

#define MAXC 256

struct hc {
    int fd;
    uint64_t t_conn, t_first, t_end;   /* ms */
    char buf[2048];
    size_t len;
    bool reset;
};

static void http_connect(struct hc *h, int port, int i)
{
    memset(h, 0, sizeof *h);
    h->t_conn = t_now_ms();
    h->fd = t_connect(port);
    cr_assert_geq(h->fd, 0, "client %d could not connect", i);
    char req[128];
    int n = snprintf(req, sizeof req, "GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", i);
    cr_assert_eq(write(h->fd, req, (size_t) n), n);
}

/* Reads every client to its end (or ms), noting first byte and resets. */
static void http_collect(struct hc *h, int n, int ms)
{
    struct pollfd p[MAXC];
    uint64_t end = t_now_ms() + (uint64_t) ms;
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd) { .fd = h[i].fd, .events = POLLIN };
            open += h[i].fd >= 0;
        }
        if (open == 0 || t_now_ms() >= end)
            break;
        if (poll(p, (nfds_t) n, 100) <= 0)
            continue;
        uint64_t now = t_now_ms();
        for (int i = 0; i < n; i++) {
            if (h[i].fd < 0 || p[i].revents == 0)
                continue;
            char tmp[2048];
            ssize_t got = read(h[i].fd, tmp, sizeof tmp);
            if (got > 0 && h[i].t_first == 0)
                h[i].t_first = now;
            if (got > 0) {
                size_t room = sizeof h[i].buf - 1 - h[i].len;
                size_t take = (size_t) got < room ? (size_t) got : room;
                memcpy(h[i].buf + h[i].len, tmp, take);
                h[i].len += take;
                continue;
            }
            if (got < 0 && errno == EAGAIN)
                continue;
            h[i].reset = got < 0;
            h[i].t_end = now;
            close(h[i].fd);
            h[i].fd = -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (h[i].fd >= 0) {
            close(h[i].fd);
            h[i].fd = -1;
        }
}

/* 200 with the client's own path as body, 503 with Retry-After, or 0 (bad). */
static int answer_of(struct hc *h, int i, int *retry_after)
{
    h->buf[h->len] = '\0';
    const char *body = strstr(h->buf, "\r\n\r\n");
    const char *cl = strcasestr(h->buf, "content-length:");
    if (h->reset || body == NULL || cl == NULL)
        return 0;
    body += 4;
    if ((size_t) atol(cl + 15) != h->len - (size_t) (body - h->buf))
        return 0;   /* incomplete */
    if (strncmp(h->buf, "HTTP/1.1 200", 12) == 0) {
        char want[32];
        snprintf(want, sizeof want, "/%d\n", i);
        return strcmp(body, want) == 0 ? 200 : 0;
    }
    const char *ra = strcasestr(h->buf, "retry-after:");
    if (strncmp(h->buf, "HTTP/1.1 503", 12) == 0 && ra != NULL && ra < body) {
        if (retry_after != NULL)
            *retry_after = atoi(ra + 12);
        return 503;
    }
    return 0;
}

/* The burst: 40 clients at once (in order, 3 ms apart) on a server taking
 * slow_ms per request with 2 slots and a 2 s queue timeout. Every client gets
 * a complete 200 or 503, none is reset, none waits in the queue longer than the
 * timeout + 150 ms, and the served are served in arrival order. */
static int burst(int port, int slow_ms, const char *what)
{
    enum { N = 40, TIMEOUT_MS = 2000 };
    static struct hc h[N];
    for (int i = 0; i < N; i++) {
        http_connect(&h[i], port, i);
        t_sleep_ms(3);
    }
    http_collect(h, N, 15000);
    int served = 0, shed = 0;
    uint64_t last_start = 0;
    int last_i = -1;
    for (int i = 0; i < N; i++) {
        int a = answer_of(&h[i], i, NULL);
        cr_assert(a != 0, "%s: client %d got no complete answer (reset %d): [%.200s]", what, i,
                  h[i].reset, h[i].buf);
        uint64_t waited = h[i].t_first - h[i].t_conn - (a == 200 ? (uint64_t) slow_ms : 0);
        cr_assert(h[i].t_first != 0 && (int64_t) waited <= TIMEOUT_MS + 150,
                  "%s: client %d (%d) waited %llu ms in the queue", what, i, a,
                  (unsigned long long) waited);
        if (a == 200) {
            served++;
            /* Its service began at t_first - slow_ms: later than any earlier
             * arrival's (give or take the two slots of one round). */
            uint64_t start = h[i].t_first - (uint64_t) slow_ms;
            cr_assert(start + 100 >= last_start, "%s: client %d served %llu ms before client %d",
                      what, i, (unsigned long long) (last_start - start), last_i);
            if (start > last_start) {
                last_start = start;
                last_i = i;
            }
        } else {
            shed++;
        }
    }
    cr_log_info("%s: %d served, %d answered 503", what, served, shed);
    cr_assert_geq(served, 4, "%s: only %d served", what, served);
    cr_assert_geq(shed, 20, "%s: only %d answered 503", what, shed);
    return served;
}

static struct t_proc start_uvicorn(int port, const char *loop, const char *const *env, bool governed)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { PY, "-m", "uvicorn", "--loop", loop, "--app-dir", t_source("tests/helpers"),
                           "queue_slow_asgi:app", "--host", "127.0.0.1", "--port", ports,
                           "--timeout-keep-alive", "5", "--log-level", "warning", NULL };
    struct t_proc p = leftovers_spawn(&leftovers, argv, env, governed);
    cr_assert(t_wait_listening(port, 10000), "uvicorn (%s) did not listen", loop);
    return p;
}

static const char *const queue_env[] = { "SLUICE_CONN_MAX=2", "SLUICE_QUEUE_TIMEOUT=2s", NULL };

static long stat_of(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    return p != NULL ? atol(p + strlen(key)) : -1;
}

/* Also the figures: every 503 counted as timed out, every 200 in the wait
 * histogram, all of them within 2.5 s. */
Test(queue, burst_uvicorn_asyncio, .timeout = 60)
{
    int port = t_free_port();
    char stats[128], stats_env[160];
    snprintf(stats, sizeof stats, "/tmp/sluice-queue-stats-%d.prom", (int) getpid());
    snprintf(stats_env, sizeof stats_env, "SLUICE_STATS=%s", stats);
    leftovers_path(&leftovers, stats);
    const char *env[] = { queue_env[0], queue_env[1], stats_env, "SLUICE_STATS_INTERVAL=100ms", NULL };
    struct t_proc p = start_uvicorn(port, "asyncio", env, true);
    int served = burst(port, 1000, "uvicorn asyncio");
    t_sleep_ms(300);
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(stats, "r");
    cr_assert_not_null(f, "no stats file %s", stats);
    cr_assert_geq(getdelim(&text, &len, '\0', f), 0);
    fclose(f);
    t_stop(&p, 2000);
    cr_assert_eq(stat_of(text, "sluice_queue_timed_out_total"), 40 - served, "[%s]", text);
    cr_assert_eq(stat_of(text, "sluice_queue_wait_seconds_count"), served, "[%s]", text);
    cr_assert_eq(stat_of(text, "sluice_queue_wait_seconds_bucket{le=\"2.500\"}"), served, "[%s]", text);
    cr_assert_eq(stat_of(text, "sluice_queue_wait_seconds_bucket{le=\"+Inf\"}"), served, "[%s]", text);
    cr_assert_eq(stat_of(text, "sluice_queue_length"), 0, "[%s]", text);
    cr_assert_geq(stat_of(text, "sluice_listen_overflows_start"), 0, "[%s]", text);
    free(text);
}

/* A pool of threads blocked in accept on a blocking listener: sluice's
 * thread answers the late without ever blocking in that listener's accept,
 * and a freed slot still goes to the next one waiting (the newest with lifo,
 * whose stack must not starve a thread blocked in the kernel's accept). */
static void blocking_pool_case(bool lifo)
{
    int port = t_free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { t_helper("conn_threaded"), ports, "8", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_QUEUE_TIMEOUT=1s",
                          lifo ? "SLUICE_QUEUE_ORDER=lifo" : NULL, NULL };
    struct t_proc srv = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "server did not listen");
    long ticks0 = tree_ticks(srv.pid);
    int fd[12];
    for (int i = 0; i < 12; i++)
        cr_assert_geq(fd[i] = t_connect(port), 0);
    for (int i = 0; i < 4; i++) {
        char *got = t_slurp_some(fd[i], 2000);
        cr_assert_str_eq(got, "hi\n", "held client %d got [%s]", i, got);
        free(got);
    }
    uint64_t t0 = t_now_ms();
    for (int i = 4; i < 8; i++) {
        char *got = t_slurp_some(fd[i], 3000);
        cr_assert(strncmp(got, "HTTP/1.1 503", 12) == 0, "waiting client %d got [%s]", i, got);
        free(got);
    }
    uint64_t took = t_now_ms() - t0;
    cr_assert_leq(took, 1400, "the late were answered after %llu ms", (unsigned long long) took);
    /* Four more now; one slot comes free: the first of them is served (the
     * last with lifo). */
    for (int i = 8; i < 12; i++)
        cr_assert_geq(fd[i] = t_connect(port), 0);
    t_sleep_ms(100);
    close(fd[0]);
    char *got = t_slurp_some(fd[lifo ? 11 : 8], 2000);
    cr_assert_str_eq(got, "hi\n", "the next client got [%s]", got);
    free(got);
    t_sleep_ms(500);   /* paused again, clients waiting: nothing may spin */
    long ticks = tree_ticks(srv.pid) - ticks0;
    cr_assert_leq(ticks, 25, "the server used %ld ticks: spinning", ticks);
    for (int i = 1; i < 12; i++)
        if (i < 4 || i >= 8)
            close(fd[i]);
    t_stop(&srv, 1000);
}

Test(queue, blocking_pool_answers_the_late, .timeout = 30)
{
    blocking_pool_case(false);
}

Test(queue, lifo_blocking_pool_answers_the_late_and_serves_the_newest, .timeout = 30)
{
    blocking_pool_case(true);
}

Test(queue, burst_uvicorn_uvloop, .timeout = 60)
{
    int port = t_free_port();
    struct t_proc p = start_uvicorn(port, "uvloop", queue_env, true);
    burst(port, 1000, "uvicorn uvloop");
    t_stop(&p, 2000);
}

/* nginx (governed, one worker) proxies to a bare uvicorn that takes 1 s. */
Test(queue, burst_nginx_proxy_to_slow_upstream, .timeout = 60)
{
    int up = t_free_port(), port = t_free_port();
    struct t_proc u = start_uvicorn(up, "asyncio", NULL, false);
    char dir[64];
    nginx_make_site(dir, sizeof dir, "/tmp/sluice-queue-nginx-XXXXXX", 1, &leftovers);
    char servers[512];
    snprintf(servers, sizeof servers,
             "  server { listen 127.0.0.1:%d;\n"
             "    location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1; } }",
             port, up);
    const int ports[] = { port, 0 };
    struct t_proc n = nginx_start(dir, "", servers, queue_env, true, ports, &leftovers);
    burst(port, 1000, "nginx proxy_pass");
    t_stop(&n, 2000);
    t_stop(&u, 2000);
}

/* --- SLUICE_QUEUE_MAX and SLUICE_RETRY_AFTER=auto ------------------------------- */

/* One slot, 1 s requests, at most 3 waiting. After three requests the rate is
 * known (about one a second). Then c1 is served and c2..c5 arrive 200 ms
 * apart: c5 makes four waiting, so c2, the oldest, is answered at once, with
 * Retry-After for the three ahead of a newcomer plus one: 4 s. c2 comes back
 * after that and is served at once: the wait it was told lies within 50% of
 * the time it really waited for a slot (from the 503 to its service). With a
 * fixed Retry-After: 1 it would come back into a queue of two and wait 3.2 s. */
Test(queue, retry_after_auto_tells_the_real_wait, .timeout = 60)
{
    int port = t_free_port();
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_QUEUE_MAX=3", "SLUICE_RETRY_AFTER=auto", NULL };
    struct t_proc p = start_uvicorn(port, "asyncio", env, true);
    static struct hc h[8];
    for (int i = 0; i < 3; i++) {
        http_connect(&h[0], port, 100 + i);
        http_collect(h, 1, 5000);
        cr_assert_eq(answer_of(&h[0], 100 + i, NULL), 200, "warm-up %d: [%s]", i, h[0].buf);
    }
    for (int i = 1; i <= 5; i++) {
        http_connect(&h[i], port, i);
        if (i < 5)
            t_sleep_ms(200);
    }
    uint64_t c5_at = h[5].t_conn;
    /* c2's answer comes first, at once. */
    http_collect(&h[2], 1, 3000);
    int ra = 0;
    cr_assert_eq(answer_of(&h[2], 2, &ra), 503, "c2, the oldest of four, got [%s]", h[2].buf);
    cr_assert_leq(h[2].t_first - c5_at, 300, "c2 answered %llu ms after the fourth arrived",
                  (unsigned long long) (h[2].t_first - c5_at));
    uint64_t told_at = h[2].t_first;
    t_sleep_ms(ra * 1000);
    http_connect(&h[6], port, 6);
    http_collect(&h[6], 1, 15000);
    cr_assert_eq(answer_of(&h[6], 6, NULL), 200, "the retry got [%s]", h[6].buf);
    double real = (double) (h[6].t_first - 1000 - told_at) / 1000.0;
    cr_log_info("Retry-After %d s, real wait for a slot %.2f s", ra, real);
    cr_assert(ra >= 0.5 * real && ra <= 1.5 * real, "Retry-After %d s, but the real wait was %.2f s",
              ra, real);
    http_collect(&h[1], 5, 8000);
    for (int i = 1; i <= 5; i++)
        cr_assert(i == 2 || answer_of(&h[i], i, NULL) == 200, "c%d: [%s]", i, h[i].buf);
    t_stop(&p, 2000);
}

/* --- sustained overload: open-loop arrivals ------------------------------------- */

struct olc {
    int fd;
    uint64_t t_start, t_connected, t_first;
    char buf[1024];
    size_t len;
    bool reset, done;
};

/* Arrivals every gap_ms for run_ms (non-blocking connects: a dropped SYN does
 * not hold up the schedule), each sending GET /i; reads until every client is
 * done or wait_ms after the last arrival. Returns how many started. */
static int open_loop(int port, int gap_ms, int run_ms, int wait_ms, struct olc *c, int max)
{
    int n = 0;
    uint64_t t0 = t_now_ms(), last = t0 + (uint64_t) run_ms;
    static struct pollfd p[MAXC];
    for (;;) {
        uint64_t now = t_now_ms();
        while (n < max && now < last && now >= t0 + (uint64_t) (n * gap_ms)) {
            memset(&c[n], 0, sizeof c[n]);
            c[n].fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
            c[n].t_start = now;
            int r = connect(c[n].fd, (struct sockaddr *) &a, sizeof a);
            cr_assert(r == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
            n++;
        }
        int open = 0;
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd) { .fd = c[i].done ? -1 : c[i].fd,
                                     .events = c[i].t_connected ? POLLIN : POLLOUT };
            open += !c[i].done;
        }
        if ((now >= last && open == 0) || now >= last + (uint64_t) wait_ms)
            break;
        if (poll(p, (nfds_t) n, 10) <= 0)
            continue;
        now = t_now_ms();
        for (int i = 0; i < n; i++) {
            if (c[i].done || p[i].revents == 0)
                continue;
            if (c[i].t_connected == 0) {
                int err = 0;
                socklen_t el = sizeof err;
                getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    c[i].reset = true;
                    c[i].done = true;
                    continue;
                }
                c[i].t_connected = now;
                char req[96];
                int len = snprintf(req, sizeof req, "GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", i);
                cr_assert_eq(write(c[i].fd, req, (size_t) len), len);
                continue;
            }
            char tmp[1024];
            ssize_t got = read(c[i].fd, tmp, sizeof tmp);
            if (got > 0) {
                if (c[i].t_first == 0)
                    c[i].t_first = now;
                size_t take = sizeof c[i].buf - 1 - c[i].len;
                take = (size_t) got < take ? (size_t) got : take;
                memcpy(c[i].buf + c[i].len, tmp, take);
                c[i].len += take;
            } else if (got == 0 || errno != EAGAIN) {
                c[i].reset = got < 0;
                c[i].done = true;
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(c[i].fd);
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* Two slots, 500 ms requests (4 a second), arrivals 12 a second for 4 s, a
 * backlog of 16. With a 1 s queue timeout every request is answered (200 or
 * 503), none is reset, the served waited at most the timeout (p99), and no
 * SYN is dropped for a full accept queue (no connect takes a retransmission's
 * second). Bare pause, the same load: the accept queue overflows (connects
 * wait for SYN retransmissions). */
Test(queue, sustained_overload_is_answered_without_listen_overflows, .timeout = 90)
{
    enum { GAP = 83, RUN = 4000 };
    static struct olc c[MAXC];
    int port = t_free_port();
    const char *env[] = { "SLUICE_CONN_MAX=2", "SLUICE_QUEUE_TIMEOUT=1s", "SLUICE_BACKLOG=16",
                          "QUEUE_SLOW_MS=500", NULL };
    struct t_proc p = start_uvicorn(port, "asyncio", env, true);
    int n = open_loop(port, GAP, RUN, 3000, c, MAXC);
    t_stop(&p, 2000);
    int served = 0, shed = 0, slow_connects = 0;
    static uint64_t waits[MAXC];
    for (int i = 0; i < n; i++) {
        struct hc h = { .reset = c[i].reset, .len = c[i].len };
        memcpy(h.buf, c[i].buf, c[i].len);
        int a = answer_of(&h, i, NULL);
        cr_assert(a != 0, "client %d: no complete answer (reset %d): [%.120s]", i, c[i].reset, c[i].buf);
        slow_connects += c[i].t_connected - c[i].t_start >= 900;
        if (a == 200)
            waits[served++] = c[i].t_first - 500 - c[i].t_start;
        else
            shed++;
    }
    qsort(waits, (size_t) served, sizeof waits[0], cmp_u64);
    uint64_t p99 = served > 0 ? waits[(served * 99) / 100 - (served * 99 % 100 == 0)] : 0;
    cr_log_info("queue: %d arrivals, %d served, %d answered 503, p99 wait %llu ms, %d slow connects",
                n, served, shed, (unsigned long long) p99, slow_connects);
    cr_assert_geq(served, 12, "only %d served", served);
    cr_assert_leq(p99, 1000 + 150, "p99 wait of the served %llu ms", (unsigned long long) p99);
    cr_assert_eq(slow_connects, 0, "%d connects waited for a SYN retransmission", slow_connects);

    /* Bare pause under the same load. */
    port = t_free_port();
    const char *bare[] = { "SLUICE_CONN_MAX=2", "SLUICE_BACKLOG=16", "QUEUE_SLOW_MS=500", NULL };
    p = start_uvicorn(port, "asyncio", bare, true);
    n = open_loop(port, GAP, RUN, 0, c, MAXC);
    t_stop(&p, 2000);
    int bare_slow = 0;
    for (int i = 0; i < n; i++)
        bare_slow += c[i].t_connected == 0 || c[i].t_connected - c[i].t_start >= 900;
    cr_log_info("bare pause: %d of %d connects waited a second or more", bare_slow, n);
    cr_assert_gt(bare_slow, 0, "bare pause had no listen overflow: the load is too light to compare");
}

/* --- descriptors: 200 clients on a process limited to 64 ------------------------- */

/* 200 clients on a uvicorn limited to 64 descriptors, 2 slots, 1 s timeout:
 * every client gets a whole answer, at least half are shed, the program never
 * runs out of descriptors and nothing spins. order: the SLUICE_QUEUE_ORDER
 * setting, or NULL for the default. */
static void many_clients_under_ulimit_64(const char *order)
{
    enum { N = 200 };
    int port = t_free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { "/bin/sh", "-c",
                           "ulimit -n 64 && exec " PY " -m uvicorn --loop asyncio --app-dir \"$1\" "
                           "queue_slow_asgi:app --host 127.0.0.1 --port \"$2\" --log-level warning",
                           "sh", t_source("tests/helpers"), ports, NULL };
    const char *env[] = { "SLUICE_CONN_MAX=2", "SLUICE_QUEUE_TIMEOUT=1s", "QUEUE_SLOW_MS=300", order, NULL };
    struct t_proc p = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(port, 10000), "uvicorn did not listen");
    static struct hc h[N];
    long t0 = tree_ticks(p.pid);
    uint64_t m0 = t_now_ms();
    for (int i = 0; i < N; i++)
        http_connect(&h[i], port, i);
    http_collect(h, N, 20000);
    long ticks = tree_ticks(p.pid) - t0;
    uint64_t ms = t_now_ms() - m0;
    kill(p.pid, SIGTERM);
    char *err = t_slurp(p.err_fd, 2000);
    t_stop(&p, 2000);
    int served = 0, shed = 0;
    for (int i = 0; i < N; i++) {
        int a = answer_of(&h[i], i, NULL);
        cr_assert(a != 0, "client %d: no complete answer (reset %d): [%.120s]", i, h[i].reset, h[i].buf);
        served += a == 200;
        shed += a == 503;
    }
    cr_log_info("%s: %d served, %d answered 503 in %llu ms; server CPU %ld ticks",
                order != NULL ? order : "fifo", served, shed, (unsigned long long) ms, ticks);
    cr_assert(err == NULL || (strstr(err, "Too many open files") == NULL && strstr(err, "EMFILE") == NULL),
              "the program ran out of descriptors: %s", err);
    cr_assert_geq(shed, N / 2, "only %d of %d shed", shed, N);
    /* 100 ticks a second: a spinning core would use about ms / 10. */
    cr_assert_leq(ticks, (long) (ms / 10) * 2 / 5, "server used %ld ticks in %llu ms", ticks,
                  (unsigned long long) ms);
    free(err);
}

Test(queue, low_nofile_many_clients_no_spin_no_emfile, .timeout = 90)
{
    many_clients_under_ulimit_64(NULL);
}

/* --- SLUICE_QUEUE_ORDER=lifo ------------------------------------------------------ */

/* The burst again, newest first: after the first two (served on arrival),
 * every served client came later than every client answered 503. */
static void burst_lifo(int port, const char *what)
{
    enum { N = 40 };
    static struct hc h[N];
    for (int i = 0; i < N; i++) {
        http_connect(&h[i], port, i);
        t_sleep_ms(3);
    }
    http_collect(h, N, 15000);
    int served = 0, newest_shed = -1, oldest_served = N;
    for (int i = 0; i < N; i++) {
        int a = answer_of(&h[i], i, NULL);
        cr_assert(a != 0, "%s: client %d got no complete answer (reset %d): [%.200s]", what, i,
                  h[i].reset, h[i].buf);
        uint64_t waited = h[i].t_first - h[i].t_conn - (a == 200 ? 1000u : 0u);
        cr_assert((int64_t) waited <= 2000 + 150, "%s: client %d waited %llu ms", what, i,
                  (unsigned long long) waited);
        if (a == 200 && i >= 2) {
            served++;
            if (i < oldest_served)
                oldest_served = i;
        } else if (a == 503) {
            newest_shed = i;
        }
    }
    cr_log_info("%s: served 0, 1 and %d from client %d on; newest answered 503: %d", what, served,
                oldest_served, newest_shed);
    cr_assert_geq(served, 2, "%s: only %d served after the first two", what, served);
    cr_assert_gt(oldest_served, newest_shed, "%s: client %d served, yet %d (newer) answered 503",
                 what, oldest_served, newest_shed);
}

static const char *const lifo_env[] = { "SLUICE_CONN_MAX=2", "SLUICE_QUEUE_TIMEOUT=2s",
                                        "SLUICE_QUEUE_ORDER=lifo", NULL };

Test(queue, lifo_burst_uvicorn_uvloop_serves_newest_first, .timeout = 60)
{
    int port = t_free_port();
    struct t_proc p = start_uvicorn(port, "uvloop", lifo_env, true);
    burst_lifo(port, "uvicorn uvloop lifo");
    t_stop(&p, 2000);
}

Test(queue, lifo_burst_nginx_proxy_serves_newest_first, .timeout = 60)
{
    int up = t_free_port(), port = t_free_port();
    struct t_proc u = start_uvicorn(up, "asyncio", NULL, false);
    char dir[64];
    nginx_make_site(dir, sizeof dir, "/tmp/sluice-queue-nginx-XXXXXX", 1, &leftovers);
    char servers[512];
    snprintf(servers, sizeof servers,
             "  server { listen 127.0.0.1:%d;\n"
             "    location / { proxy_pass http://127.0.0.1:%d; proxy_http_version 1.1; } }",
             port, up);
    const int ports[] = { port, 0 };
    struct t_proc n = nginx_start(dir, "", servers, lifo_env, true, ports, &leftovers);
    burst_lifo(port, "nginx proxy_pass lifo");
    t_stop(&n, 2000);
    t_stop(&u, 2000);
}

/* lifo holds the waiting connections itself: under ulimit -n 64 it keeps a
 * quarter of the free numbers to the program, answers the rest at once, and
 * the program never runs out of descriptors. */
Test(queue, lifo_low_nofile_many_clients_no_spin_no_emfile, .timeout = 90)
{
    many_clients_under_ulimit_64("SLUICE_QUEUE_ORDER=lifo");
}

static int local_port(int s)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(s, (struct sockaddr *) &a, &len), 0);
    return ntohs(a.sin_port);
}

/* lifo hands the program a connection sluice accepted: accept must still give
 * the peer's address and the program's own flags (blocking, close-on-exec),
 * and the newest first. A one-at-a-time server: A is served, B then C wait;
 * A closes: C comes, then B. */
Test(queue, lifo_accept_gives_the_peer_and_the_programs_flags, .timeout = 30)
{
    int port = t_free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { PY, t_source("tests/helpers/queue_peer.py"), ports, NULL };
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_QUEUE_ORDER=lifo", "SLUICE_QUEUE_TIMEOUT=10s", NULL };
    struct t_proc p = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(port, 10000), "server did not listen");
    int a = t_connect(port);
    t_sleep_ms(300);
    int b = t_connect(port);
    t_sleep_ms(100);
    int c = t_connect(port);
    t_sleep_ms(300);
    cr_assert(a >= 0 && b >= 0 && c >= 0);
    int pa = local_port(a), pb = local_port(b), pc = local_port(c);
    close(a);
    t_sleep_ms(300);
    close(c);
    t_sleep_ms(300);
    close(b);
    t_sleep_ms(300);
    kill(p.pid, SIGTERM);
    char *out = t_slurp(p.out_fd, 2000);
    t_stop(&p, 1000);
    char want[128];
    snprintf(want, sizeof want, "%d 0 1\n%d 0 1\n%d 0 1\n", pa, pc, pb);
    cr_assert_str_eq(out, want, "accepted [%s], expected [%s] (A, then C, then B)", out, want);
    free(out);
}
