/* test_idle.c — SLUICE_CONN_IDLE=free on real servers, observed from outside:
 * keep-alive and idle connections give their slot back, so SLUICE_CONN_MAX
 * bounds requests in service rather than open connections. Each scenario runs
 * with `free` and with `hold`, and the two must differ. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"

#define PY "/usr/bin/python3"

static const char *const env_free[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_IDLE=free", NULL };
static const char *const env_hold[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_IDLE=hold", NULL };
static const char *const env_free1[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_IDLE=free", NULL };

static char *num(int v)
{
    static char bufs[8][16];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 16, "%d", v);
    return b;
}

/* Runs a client script (bare, not preloaded) and returns its one line. */
static char *client(const char *const *argv, int timeout_ms)
{
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, NULL, false, timeout_ms, &out, &err);
    cr_assert_eq(rc, 0, "%s failed (%d): %s", argv[1], rc, err ? err : "");
    if (err != NULL && err[0] != '\0')
        cr_log_warn("%s: %s", argv[1], err);
    free(err);
    return out;
}

/* --- FastAPI under uvicorn: the classic scenario, keep-alive clients ---------- */

static struct t_proc start_uvicorn(int port, const char *const *env)
{
    const char *argv[] = { PY, "-m", "uvicorn", "--app-dir", t_source("tests/helpers"),
                           "idle_app:app", "--host", "127.0.0.1", "--port", num(port),
                           "--log-level", "warning", NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 10000), "uvicorn did not listen");
    return srv;
}

/* 12 keep-alive clients, one 2 s request each; returns how many were served
 * within limit_s and the wall time to the last answer. */
static int uvicorn_round(const char *const *env, int limit_s, double *wall)
{
    int port = t_free_port();
    struct t_proc srv = start_uvicorn(port, env);
    const char *argv[] = { PY, t_source("tests/helpers/idle_http_clients.py"), num(port), "12",
                           "/work", num(limit_s), NULL };
    char *out = client(argv, (limit_s + 5) * 1000);
    int served = -1, n = 0;
    cr_assert_eq(sscanf(out, "served %d of %d wall %lf", &served, &n, wall), 3, "[%s]", out);
    cr_assert_eq(kill(srv.pid, 0), 0, "uvicorn died");
    t_stop(&srv, 2000);
    free(out);
    return served;
}

Test(idle, uvicorn_keepalive_clients_are_served_in_waves_of_four, .timeout = 60)
{
    double wall_free = 0, wall_hold = 0;
    int served = uvicorn_round(env_free, 12, &wall_free);
    cr_assert_eq(served, 12, "free: %d of 12 served", served);
    /* ceil(12/4) x 2 s = 6 s, within one request's duration; and never more
     * than 4 at once, or it would take less than 3 waves. */
    cr_assert_leq(wall_free, 8.0, "free: %.2f s", wall_free);
    cr_assert_geq(wall_free, 5.8, "free: %.2f s: more than 4 requests at once", wall_free);
    /* hold: idle keep-alive connections keep their slots for uvicorn's 5 s
     * keep-alive timeout (measured: 16 s for all 12); within 5 s only the
     * first wave is served. */
    served = uvicorn_round(env_hold, 5, &wall_hold);
    cr_assert_eq(served, 4, "hold: %d served within 5 s", served);
    cr_log_info("uvicorn, 12 keep-alive clients, N=4: free %.2f s; hold %d served in 5 s",
                wall_free, served);
}

/* A client sends part of a request, then goes silent: uvicorn is reading it,
 * so it stays busy and keeps the only slot; once it closes, the next client
 * gets in. */
Test(idle, a_half_sent_request_keeps_its_slot_until_closed, .timeout = 30)
{
    int port = t_free_port();
    struct t_proc srv = start_uvicorn(port, env_free1);
    int a = t_connect(port);
    cr_assert_geq(a, 0);
    const char *part = "GET /work HTTP/1.1\r\nHost: t\r\n";   /* no blank line */
    cr_assert_eq(send(a, part, strlen(part), MSG_NOSIGNAL), (ssize_t) strlen(part));
    t_sleep_ms(300);
    int b = t_connect(port);
    cr_assert_geq(b, 0);
    const char *req = "GET /work HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert_eq(send(b, req, strlen(req), MSG_NOSIGNAL), (ssize_t) strlen(req));
    struct timeval tv = { 2, 500000 };   /* more than the 2 s request */
    setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t got = recv(b, buf, sizeof buf, 0);
    cr_assert_lt(got, 1, "the second client was served while the first held the only slot");
    close(a);
    uint64_t t0 = t_now_ms();
    tv = (struct timeval) { 5, 0 };
    setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    got = recv(b, buf, sizeof buf - 1, 0);
    cr_assert_gt(got, 0, "the second client was not served after the first closed");
    buf[got] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "[%s]", buf);
    uint64_t took = t_now_ms() - t0;
    cr_assert_leq(took, 3500, "served %llu ms after the close", (unsigned long long) took);
    close(b);
    t_stop(&srv, 2000);
}

/* --- redis-server: 50 idle clients ------------------------------------------- */

static void redis_round(const char *const *env, int limit_s, int *connected, int *answered,
                        int *refused, double *wall)
{
    int port = t_free_port();
    const char *argv[] = { "/usr/bin/redis-server", "--port", num(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
                           NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "redis did not listen");
    const char *cargv[] = { PY, t_source("tests/helpers/idle_redis_clients.py"), num(port), "50",
                            "0.5", "0.05", num(limit_s), NULL };
    char *out = client(cargv, (limit_s + 5) * 1000);
    cr_assert_eq(sscanf(out, "connected %d answered %d refused %d wall %lf", connected, answered,
                        refused, wall), 4, "[%s]", out);
    free(out);
    t_stop(&srv, 2000);
}

Test(idle, redis_fifty_idle_clients_all_answered, .timeout = 60)
{
    int connected, answered, refused;
    double wall;
    redis_round(env_free, 15, &connected, &answered, &refused, &wall);
    cr_assert_eq(connected, 50);
    cr_assert_eq(refused, 0);
    cr_assert_eq(answered, 50, "free: %d of 50 answered", answered);
    /* redis runs one command at a time: 50 x 0.05 s at least, so also at
     * least ceil(50/4) x 0.05 s. */
    cr_assert_geq(wall, 13 * 0.05, "free: %.2f s", wall);
    double wall_free = wall;
    redis_round(env_hold, 3, &connected, &answered, &refused, &wall);
    cr_assert_eq(answered, 4, "hold: %d answered: the 4 connections first accepted hold the slots",
                 answered);
    cr_log_info("redis, 50 idle clients, N=4: free 50 answered in %.2f s; hold %d in 3 s",
                wall_free, answered);
}

/* --- a thread-per-connection server with blocking reads ----------------------- */

static int peak_inservice(const char *out)
{
    int peak = 0, k;
    for (const char *p = out; (p = strstr(p, "inservice ")) != NULL; p++)
        if (sscanf(p, "inservice %d", &k) == 1 && k > peak)
            peak = k;
    return peak;
}

static void threaded_round(const char *const *env, int limit_s, int *done, int *peak, double *wall)
{
    int port = t_free_port();
    const char *argv[] = { PY, t_source("tests/helpers/idle_threaded.py"), num(port), NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "server did not listen");
    const char *cargv[] = { PY, t_source("tests/helpers/idle_line_clients.py"), num(port), "16",
                            "2", "0.2", num(limit_s), NULL };
    char *out = client(cargv, (limit_s + 5) * 1000);
    int total, clients_done;
    cr_assert_eq(sscanf(out, "done %d of %d clients_done %d wall %lf", done, &total,
                        &clients_done, wall), 4, "[%s]", out);
    free(out);
    kill(srv.pid, SIGTERM);
    char *sout = t_slurp(srv.out_fd, 2000);
    *peak = peak_inservice(sout != NULL ? sout : "");
    free(sout);
    t_stop(&srv, 1000);
}

Test(idle, threaded_blocking_reads_bound_requests_not_connections, .timeout = 40)
{
    int done, peak;
    double wall;
    threaded_round(env_free, 10, &done, &peak, &wall);
    cr_assert_eq(done, 32, "free: %d of 32 requests served", done);
    cr_assert_leq(peak, 4, "free: %d requests in service at once", peak);
    cr_assert_geq(peak, 3, "free: at most %d in service: the limit is not used", peak);
    double wall_free = wall;
    threaded_round(env_hold, 3, &done, &peak, &wall);
    cr_assert_eq(done, 8, "hold: %d requests served (4 connections x 2 expected)", done);
    cr_log_info("threaded, 16 clients x 2 requests, N=4: free %.2f s; hold %d served in 3 s",
                wall_free, done);
}

/* --- nginx in front of a slow upstream ------------------------------------------ */

struct nginx { struct t_proc srv, upstream; char dir[64]; int port; };

/* nginx (one worker, preloaded with env) proxying to uvicorn (bare: its
 * requests take 2 s); keep-alive 75 s, client_header_timeout 1 s. */
static void nginx_start(struct nginx *n, const char *const *env)
{
    snprintf(n->dir, sizeof n->dir, "/tmp/sluice-idle-nginx-XXXXXX");
    cr_assert_not_null(mkdtemp(n->dir));
    int up = t_free_port();
    const char *uargv[] = { PY, "-m", "uvicorn", "--app-dir", t_source("tests/helpers"),
                            "idle_app:app", "--host", "127.0.0.1", "--port", num(up),
                            "--log-level", "warning", NULL };
    n->upstream = t_spawn(uargv, NULL, false);
    n->port = t_free_port();
    char conf[128], text[2048];
    snprintf(conf, sizeof conf, "%s/nginx.conf", n->dir);
    const char *d = n->dir;
    snprintf(text, sizeof text,
             "worker_processes 1;\ndaemon off;\nmaster_process on;\npid %s/nginx.pid;\n"
             "error_log %s/error.log;\nevents { worker_connections 256; }\n"
             "http {\n access_log off;\n client_body_temp_path %s;\n proxy_temp_path %s;\n"
             " fastcgi_temp_path %s;\n uwsgi_temp_path %s;\n scgi_temp_path %s;\n"
             " keepalive_timeout 75s;\n client_header_timeout 1s;\n"
             " server { listen 127.0.0.1:%d; location / { proxy_pass http://127.0.0.1:%d; } }\n}\n",
             d, d, d, d, d, d, d, n->port, up);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    const char *argv[] = { "/usr/sbin/nginx", "-c", conf, "-p", n->dir, NULL };
    n->srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(up, 10000), "uvicorn did not listen");
    cr_assert(t_wait_listening(n->port, 5000), "nginx did not listen");
}

static void nginx_stop(struct nginx *n)
{
    t_stop(&n->srv, 2000);
    t_stop(&n->upstream, 2000);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
    cr_assert_eq(system(cmd), 0);
}

static int nginx_round(const char *const *env, int limit_s, double *wall)
{
    struct nginx n;
    nginx_start(&n, env);
    const char *argv[] = { PY, t_source("tests/helpers/idle_http_clients.py"), num(n.port), "12",
                           "/work", num(limit_s), NULL };
    char *out = client(argv, (limit_s + 5) * 1000);
    int served = -1, total = 0;
    cr_assert_eq(sscanf(out, "served %d of %d wall %lf", &served, &total, wall), 3, "[%s]", out);
    free(out);
    nginx_stop(&n);
    return served;
}

Test(idle, nginx_keepalive_clients_are_served_in_waves_of_four, .timeout = 60)
{
    double wall_free = 0, wall_hold = 0;
    int served = nginx_round(env_free, 12, &wall_free);
    cr_assert_eq(served, 12, "free: %d of 12 served", served);
    cr_assert_leq(wall_free, 8.0, "free: %.2f s", wall_free);
    cr_assert_geq(wall_free, 5.8, "free: %.2f s: more than 4 requests at once", wall_free);
    /* hold: the first four keep their slots for nginx's 75 s keep-alive. */
    served = nginx_round(env_hold, 5, &wall_hold);
    cr_assert_eq(served, 4, "hold: %d served in 5 s", served);
    cr_log_info("nginx, 12 keep-alive clients, N=4: free %.2f s; hold %d served in 5 s",
                wall_free, served);
}

/* A half-sent request keeps the only slot while nginx reads it, and gives it
 * up when nginx times it out (client_header_timeout 1 s). */
Test(idle, nginx_times_out_a_half_sent_request_and_its_slot_frees, .timeout = 30)
{
    struct nginx n;
    nginx_start(&n, env_free1);
    int a = t_connect(n.port);
    cr_assert_geq(a, 0);
    const char *part = "GET /work HTTP/1.1\r\nHost: t\r\n";
    cr_assert_eq(send(a, part, strlen(part), MSG_NOSIGNAL), (ssize_t) strlen(part));
    t_sleep_ms(100);
    uint64_t t0 = t_now_ms();
    int b = t_connect(n.port);
    cr_assert_geq(b, 0);
    const char *req = "GET /work HTTP/1.1\r\nHost: t\r\n\r\n";
    cr_assert_eq(send(b, req, strlen(req), MSG_NOSIGNAL), (ssize_t) strlen(req));
    struct timeval tv = { 6, 0 };
    setsockopt(b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t got = recv(b, buf, sizeof buf - 1, 0);
    uint64_t took = t_now_ms() - t0;
    cr_assert_gt(got, 0, "the second client was not served after the first timed out");
    buf[got] = '\0';
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "[%s]", buf);
    /* 1 s header timeout, then the 2 s request: not before, not much after. */
    cr_assert_geq(took, 2700, "served after %llu ms: the half-sent request did not hold its slot",
                  (unsigned long long) took);
    cr_assert_leq(took, 4500, "served after %llu ms", (unsigned long long) took);
    char eof;
    tv.tv_sec = 1;
    setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_leq(recv(a, &eof, 1, 0), 0, "the half-sent request was answered");
    close(a);
    close(b);
    nginx_stop(&n);
}

/* --- shed mode: a request on an idle connection is held, never shed ------------- */

static char *line_of(int fd, int ms)
{
    static char buf[256];
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    buf[got > 0 ? got : 0] = '\0';
    return buf;
}

/* N=1, shed. A is served once and goes idle; B comes and is served (0.3 s);
 * during B's service A asks again and C connects: A's request waits for the
 * slot and is answered, C is shed. With hold, A keeps the slot and B is shed. */
static void shed_round(bool free_mode, char *a_second, char *b_first, char *c_first)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_MODE=shed",
                          free_mode ? "SLUICE_CONN_IDLE=free" : "SLUICE_CONN_IDLE=hold", NULL };
    int port = t_free_port();
    const char *argv[] = { PY, t_source("tests/helpers/idle_threaded.py"), num(port), NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "server did not listen");
    /* t_wait_listening's probe may take the slot for a moment: let it go. */
    t_sleep_ms(200);
    int a = t_connect(port);
    cr_assert_geq(a, 0);
    cr_assert_eq(send(a, "work\n", 5, MSG_NOSIGNAL), 5);
    cr_assert_str_eq(line_of(a, 2000), "done\n");
    t_sleep_ms(100);
    int b = t_connect(port);
    cr_assert_geq(b, 0);
    cr_assert_eq(send(b, "work\n", 5, MSG_NOSIGNAL), 5);
    t_sleep_ms(100);
    cr_assert_eq(send(a, "work\n", 5, MSG_NOSIGNAL), 5);
    int c = t_connect(port);
    cr_assert_geq(c, 0);
    cr_assert_eq(send(c, "work\n", 5, MSG_NOSIGNAL), 5);
    strcpy(b_first, line_of(b, 2000));
    strcpy(a_second, line_of(a, 2000));
    strcpy(c_first, line_of(c, 2000));
    close(a);
    close(b);
    close(c);
    t_stop(&srv, 2000);
}

Test(idle, shed_mode_holds_requests_on_idle_connections, .timeout = 30)
{
    char a[256], b[256], c[256];
    shed_round(true, a, b, c);
    cr_assert_str_eq(b, "done\n", "free: B [%s]", b);
    cr_assert_str_eq(a, "done\n", "free: A's second request [%s]", a);
    cr_assert(strncmp(c, "HTTP/1.1 503", 12) == 0, "free: C [%s]", c);
    shed_round(false, a, b, c);
    cr_assert_str_eq(a, "done\n", "hold: A's second request [%s]", a);
    cr_assert(strncmp(b, "HTTP/1.1 503", 12) == 0, "hold: B [%s]", b);
}

/* --- stats: busy and idle connections, time waited for a slot -------------------- */

static long stat_of(const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = (long) atof(line + n + 1);
    fclose(f);
    return v;
}

Test(idle, stats_show_busy_and_idle_connections, .timeout = 30)
{
    char dir[] = "/tmp/sluice-idle-stats-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128], var[160];
    snprintf(path, sizeof path, "%s/s.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_IDLE=free", var,
                          "SLUICE_STATS_INTERVAL=100ms", NULL };
    int port = t_free_port();
    const char *argv[] = { "/usr/bin/redis-server", "--port", num(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "redis did not listen");
    int fd[10];
    for (int i = 0; i < 10; i++) {
        fd[i] = t_connect(port);
        cr_assert_geq(fd[i], 0);
    }
    for (int i = 0; i < 10; i++)
        cr_assert_eq(send(fd[i], "PING\r\n", 6, MSG_NOSIGNAL), 6);
    for (int i = 0; i < 10; i++)
        cr_assert_str_eq(line_of(fd[i], 3000), "+PONG\r\n", "client %d", i);
    long idle = -1, busy = -1, open = -1;
    for (int i = 0; i < 30 && idle != 10; i++) {
        t_sleep_ms(100);
        idle = stat_of(path, "sluice_connections_idle");
        busy = stat_of(path, "sluice_connections_busy");
        open = stat_of(path, "sluice_connections_in_flight");
    }
    cr_assert_eq(idle, 10, "idle %ld", idle);
    cr_assert_eq(busy, 0, "busy %ld", busy);
    cr_assert_eq(open, 10, "open %ld", open);
    for (int i = 0; i < 10; i++)
        close(fd[i]);
    t_stop(&srv, 2000);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* --- asyncio on a UNIX socket --------------------------------------------------- */

static int unix_round(const char *const *env, int limit_s, double *wall)
{
    char dir[] = "/tmp/sluice-idle-unix-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[96];
    snprintf(path, sizeof path, "%s/s", dir);
    const char *argv[] = { PY, t_source("tests/helpers/idle_unix_server.py"), path, NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    for (int i = 0; i < 100 && access(path, F_OK) != 0; i++)
        t_sleep_ms(50);
    const char *cargv[] = { PY, t_source("tests/helpers/idle_unix_clients.py"), path, "12",
                            num(limit_s), NULL };
    char *out = client(cargv, (limit_s + 5) * 1000);
    int done = -1, total;
    cr_assert_eq(sscanf(out, "done %d of %d wall %lf", &done, &total, wall), 3, "[%s]", out);
    free(out);
    t_stop(&srv, 2000);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    return done;
}

Test(idle, asyncio_unix_socket_clients_give_their_slots_back, .timeout = 40)
{
    double wall_free = 0, wall_hold = 0;
    int done = unix_round(env_free, 10, &wall_free);
    cr_assert_eq(done, 24, "free: %d of 24 requests served", done);
    /* 24 requests of 0.3 s, 4 at a time: 1.8 s at best. */
    cr_assert_geq(wall_free, 1.75, "free: %.2f s: more than 4 at once", wall_free);
    cr_assert_leq(wall_free, 4.0, "free: %.2f s", wall_free);
    done = unix_round(env_hold, 3, &wall_hold);
    cr_assert_eq(done, 8, "hold: %d served in 3 s (4 connections x 2 expected)", done);
}
