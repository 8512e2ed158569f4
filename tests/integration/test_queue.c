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
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Connects n clients at once, then closes each as soon as its greeting comes
 * (which frees the slot for the next): returns how many were greeted. */
static int greet_and_close(int port, int n, int ms)
{
    int *fd = calloc((size_t) n, sizeof *fd);
    for (int i = 0; i < n; i++)
        fd[i] = t_connect(port);
    int greeted = 0;
    uint64_t end = t_now_ms() + (uint64_t) ms;
    struct pollfd *p = calloc((size_t) n, sizeof *p);
    while (greeted < n && t_now_ms() < end) {
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd) { .fd = fd[i], .events = POLLIN };
        if (poll(p, (nfds_t) n, 200) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (fd[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[64];
            if (read(fd[i], buf, sizeof buf) > 0)
                greeted++;
            close(fd[i]);
            fd[i] = -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    free(p);
    free(fd);
    return greeted;
}

/* Eight threads blocked in accept, four slots, 80 connections: a thread that
 * closes its connection and comes back to accept queues behind the threads
 * already waiting, so every thread serves its tenth, give or take two. */
Test(queue, thread_pool_takes_turns)
{
    int port = t_free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { t_helper("conn_threaded"), ports, "8", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", NULL };
    struct t_proc srv = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "server did not listen");
    t_sleep_ms(200);   /* every pool thread is in accept */
    int greeted = greet_and_close(port, 80, 20000);
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
static void burst(int port, int slow_ms, const char *what)
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

Test(queue, burst_uvicorn_asyncio, .timeout = 60)
{
    int port = t_free_port();
    struct t_proc p = start_uvicorn(port, "asyncio", queue_env, true);
    burst(port, 1000, "uvicorn asyncio");
    t_stop(&p, 2000);
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
