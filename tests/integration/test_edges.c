/* test_edges.c — no lost wakeups: wherever sluice answers EAGAIN where the
 * kernel would not have, or hides readiness the kernel reports, a program that
 * sleeps only until its readiness call says "go" must be woken when the
 * condition clears: edge-triggered, EPOLLONESHOT and EPOLLEXCLUSIVE epoll
 * registrations as well as level-triggered epoll, poll and select. Each helper
 * (helpers/edge_*.c) waits with no timeout and never retries on its own; the
 * test's deadline is the only bound, and a missed event fails it. Every byte is
 * checked against the stream it should be (helpers/drain_gen.h). With a queue
 * timeout, a connection sluice answers at its deadline leaves the next one
 * to be shown to every kind of waiter. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/drain_gen.h"
#include "testlib.h"
#include "leftovers.h"
#include "nginx_fixture.h"

#define KiB 1024L
#define MiB (1024L * 1024L)

/* What a test started or made (leftovers.h): the suite's fini stops and
 * removes whatever a failed assertion left. */
static struct leftovers leftovers = { .term_polls = 20 };

static void leave_nothing_behind(void)
{
    leftovers_clear(&leftovers);
}

TestSuite(edges, .fini = leave_nothing_behind);

static int listen_tcp(int *port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert_eq(bind(l, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(l, 16), 0);
    getsockname(l, (struct sockaddr *) &a, &len);
    *port = ntohs(a.sin_port);
    return l;
}

static int listen_unix(char *path, size_t size)
{
    char dir[] = "/tmp/sluice-edges-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    leftovers_path(&leftovers, dir);
    snprintf(path, size, "%s/s", dir);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    cr_assert_lt(strlen(path), sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    cr_assert_eq(bind(l, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(l, 16), 0);
    return l;
}

static int accept_within(int l, int ms)
{
    struct pollfd p = { l, POLLIN, 0 };
    cr_assert_eq(poll(&p, 1, ms), 1, "nobody connected");
    int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(c, 0);
    return c;
}

/* Reads s to its end, checking each byte against drain_gen(seed), until EOF or
 * until deadline_ms have passed since the call. Returns the bytes read. */
static long read_all_checked(int s, uint64_t seed, int deadline_ms)
{
    static unsigned char buf[256 * 1024];
    struct drain_gen g;
    drain_gen_init(&g, seed);
    uint64_t end = t_now_ms() + (uint64_t) deadline_ms;
    long got = 0;
    for (;;) {
        uint64_t now = t_now_ms();
        if (now >= end)
            break;
        struct pollfd p = { s, POLLIN, 0 };
        if (poll(&p, 1, (int) (end - now)) != 1)
            break;
        ssize_t n = read(s, buf, sizeof buf);
        if (n <= 0)
            break;
        long bad = drain_gen_check(&g, buf, (size_t) n);
        cr_assert_eq(bad, -1, "byte %ld differs", got + bad);
        got += n;
    }
    return got;
}

/* --- drain write waits ------------------------------------------------------------ */

#define WRITER_TOTAL (8 * MiB)
#define DEADLINE_MS 5000

/* The writer fills its socket to the mark while nobody reads (sluice refuses
 * the next write), then the test reads as fast as it can: every byte must come,
 * in time, though the writer waits only for its own event. Returns the ms the
 * transfer took once the test started reading. */
static long writer_case(const char *waiter, const char *call, bool unix_socket, bool governed)
{
    int port = 0;
    char path[108], where[128];
    int l = unix_socket ? listen_unix(path, sizeof path) : listen_tcp(&port);
    if (unix_socket)
        snprintf(where, sizeof where, "unix:%s", path);
    else
        snprintf(where, sizeof where, "%d", port);
    char total[32];
    snprintf(total, sizeof total, "%ld", WRITER_TOTAL);
    const char *argv[] = { t_helper("edge_writer"), where, total, waiter, call, NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", NULL };
    struct t_proc w = leftovers_spawn(&leftovers, argv, env, governed);
    int s = accept_within(l, 5000);
    close(l);
    t_sleep_ms(300);   /* the writer fills up and waits */
    uint64_t t0 = t_now_ms();
    long got = read_all_checked(s, 7, DEADLINE_MS);
    long ms = (long) (t_now_ms() - t0);
    close(s);
    int st = t_wait(&w, 2000);
    char *out = t_slurp(w.out_fd, 500), *err = t_slurp(w.err_fd, 500);
    cr_log_info("%s %s %s%s: %ld of %ld bytes in %ld ms after reading began; %s", waiter, call,
                unix_socket ? "unix" : "tcp", governed ? "" : " bare", got, WRITER_TOTAL, ms, out);
    cr_assert_eq(got, WRITER_TOTAL, "%s/%s: %ld of %ld bytes in %ld ms (%s%s)", waiter, call, got,
                 WRITER_TOTAL, ms, out, err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer: %s", err);
    long wrote = -1, waits = -1;
    cr_assert_eq(sscanf(out, "wrote %ld waits %ld", &wrote, &waits), 2, "%s", out);
    cr_assert_geq(waits, 1, "the writer never waited: the case shows nothing");
    /* Woken only when the socket has drained well under the mark (64 KiB):
     * each wait is followed by tens of KiB written, never a spin. */
    cr_assert_leq(waits, WRITER_TOTAL / (16 * KiB), "%ld waits: spinning", waits);
    free(out);
    free(err);
    return ms;
}

#define WRITER_TEST(waiter, call)                                                          \
    Test(edges, write_wait_##waiter##_##call, .timeout = 20)                               \
    {                                                                                      \
        writer_case(#waiter, #call, false, true);                                          \
    }

WRITER_TEST(edge, send)
WRITER_TEST(edge, write)
WRITER_TEST(edge, writev)
WRITER_TEST(edge, sendmsg)
WRITER_TEST(edge, sendfile)
WRITER_TEST(edge, splice)
WRITER_TEST(oneshot, send)
WRITER_TEST(exclusive, send)
WRITER_TEST(exclusive_edge, send)
WRITER_TEST(level, send)
WRITER_TEST(poll, send)
WRITER_TEST(select, send)

Test(edges, write_wait_edge_on_unix_socket, .timeout = 20)
{
    writer_case("edge", "send", true, true);
}

/* The figure: an edge-triggered writer moves everything about as fast
 * as bare once its peer reads. */
Test(edges, edge_writer_keeps_pace_with_bare, .timeout = 30)
{
    long bare = writer_case("edge", "send", false, false);
    long governed = writer_case("edge", "send", false, true);
    cr_log_info("edge-triggered writer, 8 MiB: bare %ld ms, at 64K %ld ms", bare, governed);
    cr_assert_leq(governed, 2 * bare + 200, "bare %ld ms, governed %ld ms", bare, governed);
}

/* --- nginx: sendfile off, and proxy_pass ----------------------------------------- */

#define NGINX_BODY (50 * MiB)

struct nginx_trio {
    char dir[64];
    int plain_port;   /* sendfile off: read into a buffer, written with write/writev */
    int proxy_port;   /* proxy_pass to upstream_port, sendfile off */
    int upstream_port;
    struct t_proc proc;
};

/* The 50 MiB drain_gen stream (seed 42), kept in memory to compare with what
 * comes (memcmp: the client reads as fast as nginx sends) and as DIR/big. */
static unsigned char *expected_body;

static void make_site(struct nginx_trio *site)
{
    nginx_make_site(site->dir, sizeof site->dir, "/tmp/sluice-edges-nginx-XXXXXX", NGINX_BODY,
                    &leftovers);
    if (expected_body == NULL) {
        expected_body = malloc(NGINX_BODY);
        cr_assert_not_null(expected_body);
        struct drain_gen g;
        drain_gen_init(&g, 42);
        drain_gen_fill(&g, expected_body, NGINX_BODY);
    }
}

/* One nginx (one worker) with three servers on 127.0.0.1: the file with
 * sendfile off, a proxy to the third, and the third serving the file. */
static void start_trio(struct nginx_trio *site, bool governed, bool hold_reads)
{
    site->plain_port = t_free_port();
    site->proxy_port = t_free_port();
    site->upstream_port = t_free_port();
    char servers[1024];
    snprintf(servers, sizeof servers,
             "  server { listen 127.0.0.1:%2$d; root %1$s; }\n"
             "  server { listen 127.0.0.1:%3$d;\n"
             "    location / { proxy_pass http://127.0.0.1:%4$d; proxy_http_version 1.1; } }\n"
             "  server { listen 127.0.0.1:%4$d; root %1$s; sendfile on; }",
             site->dir, site->plain_port, site->proxy_port, site->upstream_port);
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", hold_reads ? "SLUICE_HOLD_READS=1" : NULL,
                          NULL };
    const int ports[] = { site->plain_port, site->proxy_port, site->upstream_port, 0 };
    site->proc = nginx_start(site->dir, "sendfile off;", servers, env, governed, ports, &leftovers);
}

/* GET /big, read nothing for 2 s, then read as fast as possible, checking
 * every byte, at most `deadline_ms`. Returns the ms from the first read to the
 * end of the body; *got: body bytes that came. */
static long fetch_after_a_pause(int port, long *got, int deadline_ms)
{
    int s = t_connect(port);
    cr_assert_geq(s, 0);
    const char req[] = "GET /big HTTP/1.0\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(s, req, sizeof req - 1), (ssize_t) sizeof req - 1);
    t_sleep_ms(2000);
    static unsigned char buf[256 * 1024];
    char head[4096];
    size_t hlen = 0;
    bool in_body = false;
    *got = 0;
    uint64_t t0 = t_now_ms(), end = t0 + (uint64_t) deadline_ms;
    while (*got < NGINX_BODY) {
        uint64_t now = t_now_ms();
        struct pollfd p = { s, POLLIN, 0 };
        if (now >= end || poll(&p, 1, (int) (end - now)) != 1)
            break;
        ssize_t n = read(s, buf, sizeof buf);
        if (n <= 0)
            break;
        size_t off = 0;
        if (!in_body) {
            size_t take = (size_t) n < sizeof head - 1 - hlen ? (size_t) n : sizeof head - 1 - hlen;
            memcpy(head + hlen, buf, take);
            head[hlen + take] = '\0';
            char *hend = strstr(head, "\r\n\r\n");
            if (hend == NULL) {
                hlen += take;
                continue;
            }
            cr_assert(strncmp(head, "HTTP/1.1 200", 12) == 0, "answer: %s", head);
            off = (size_t) (hend + 4 - head) - hlen;
            in_body = true;
        }
        size_t len = (size_t) n - off;
        cr_assert_leq(*got + (long) len, NGINX_BODY, "body longer than the file");
        cr_assert_eq(memcmp(buf + off, expected_body + *got, len), 0,
                     "body differs within bytes %ld..%ld", *got, *got + (long) len);
        *got += (long) len;
    }
    long ms = (long) (t_now_ms() - t0);
    close(s);
    return ms;
}

/* Bare first, then at SLUICE_WRITE_HIGH=64K: the same bytes, in about the
 * same time once the client reads. */
static void nginx_case(bool proxied, bool hold_reads)
{
    struct nginx_trio site;
    make_site(&site);
    long ms[2], got[2];
    for (int governed = 0; governed < 2; governed++) {
        start_trio(&site, governed, hold_reads);
        int port = proxied ? site.proxy_port : site.plain_port;
        ms[governed] = fetch_after_a_pause(port, &got[governed], 10000);
        t_stop(&site.proc, 2000);
        cr_assert_eq(got[governed], NGINX_BODY, "%s: %ld of %ld bytes in %ld ms",
                     governed ? "at 64K" : "bare", got[governed], NGINX_BODY, ms[governed]);
    }
    cr_log_info("nginx %s%s, 50 MiB after a 2 s pause: bare %ld ms, at 64K %ld ms",
                proxied ? "proxy_pass" : "sendfile off", hold_reads ? ", held reads" : "", ms[0],
                ms[1]);
    cr_assert_leq(ms[1], 2 * ms[0] + 100, "bare %ld ms, at 64K %ld ms", ms[0], ms[1]);
}

Test(edges, nginx_sendfile_off_sends_everything_after_a_pause, .timeout = 40)
{
    nginx_case(false, false);
}

Test(edges, nginx_proxy_pass_sends_everything_after_a_pause, .timeout = 40)
{
    nginx_case(true, false);
}

/* The same with held reads: nginx's connections and its upstream connection are
 * edge-triggered, and input on them is hidden while their output waits. */
Test(edges, nginx_proxy_pass_with_held_reads_sends_everything_after_a_pause, .timeout = 40)
{
    nginx_case(true, true);
}

/* --- held reads ------------------------------------------------------------------ */

#define HELD_INPUT (64 * KiB)

/* The reader's input waits in its socket while its output is over the mark;
 * once the test has read the output, the reader must be shown its input. */
static void held_read_case(const char *waiter)
{
    int port = 0;
    int l = listen_tcp(&port);
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = { t_helper("edge_reader"), portarg, waiter, NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1", NULL };
    struct t_proc r = leftovers_spawn(&leftovers, argv, env, true);
    int s = accept_within(l, 5000);
    close(l);
    static unsigned char input[HELD_INPUT];
    struct drain_gen g;
    drain_gen_init(&g, 9);
    drain_gen_fill(&g, input, sizeof input);
    cr_assert_eq(write(s, input, sizeof input), (ssize_t) sizeof input);
    shutdown(s, SHUT_WR);
    t_sleep_ms(300);   /* the reader answers, fills up, and is refused its input */
    uint64_t t0 = t_now_ms();
    long got = read_all_checked(s, 7, DEADLINE_MS);
    long ms = (long) (t_now_ms() - t0);
    close(s);
    int st = t_wait(&r, 2000);
    char *out = t_slurp(r.out_fd, 500), *err = t_slurp(r.err_fd, 500);
    cr_log_info("held reads, %s: output %ld bytes drained in %ld ms; %s", waiter, got, ms, out);
    long in = -1, wrote = -1, waits = -1, eagains = -1;
    cr_assert_eq(sscanf(out, "read %ld wrote %ld waits %ld read_eagains %ld", &in, &wrote, &waits,
                        &eagains), 4, "%s: reader never saw its input (%s%s)", waiter, out, err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader: %s", err);
    cr_assert_eq(in, HELD_INPUT, "%s: input %ld of %ld", waiter, in, HELD_INPUT);
    cr_assert_eq(got, wrote, "%s: output %ld of %ld", waiter, got, wrote);
    cr_assert_geq(eagains, 1, "%s: the reads were never held: the case shows nothing", waiter);
    cr_assert_leq(waits, 20, "%s: %ld waits: spinning", waiter, waits);
    free(out);
    free(err);
}

#define HELD_TEST(waiter)                                                                  \
    Test(edges, held_read_##waiter, .timeout = 20)                                         \
    {                                                                                      \
        held_read_case(#waiter);                                                           \
    }

HELD_TEST(edge)
HELD_TEST(oneshot)
HELD_TEST(exclusive)
HELD_TEST(exclusive_edge)
HELD_TEST(level)
HELD_TEST(poll)
HELD_TEST(select)

/* --- the connection gate: paused listeners, idle connections held back ------------ */

struct line_server {
    int port;
    struct t_proc proc;
};

static void start_server(struct line_server *srv, const char *waiter, const char *const *env)
{
    srv->port = t_free_port();
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", srv->port);
    const char *argv[] = { t_helper("edge_server"), portarg, waiter, NULL };
    srv->proc = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(srv->port, 5000), "server did not listen");
}

/* Sends "LINE\n" (unless line is NULL) and returns the answer that comes within
 * ms (malloc'd; "" if none). */
static char *ask(int s, const char *line, int ms)
{
    if (line != NULL) {
        char req[64];
        int n = snprintf(req, sizeof req, "%s\n", line);
        cr_assert_eq(write(s, req, (size_t) n), n);
    }
    return t_slurp_some(s, ms);
}

static void expect_answer(int s, const char *line, const char *want, const char *what)
{
    char *got = ask(s, line, DEADLINE_MS);
    cr_assert_str_eq(got, want, "%s: answer \"%s\"", what, got);
    free(got);
}

static void expect_silence(int s, const char *line, const char *what)
{
    char *got = ask(s, line, 300);
    cr_assert_str_eq(got, "", "%s: answered \"%s\" (the gate did not hold)", what, got);
    free(got);
}

/* SLUICE_CONN_MAX=1, pause: a second connection waits in the backlog, hidden
 * from the loop; the first one's close must show it. */
static void paused_listener_case(const char *waiter)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", NULL };
    struct line_server srv;
    start_server(&srv, waiter, env);
    long cpu0 = t_cpu_ticks(srv.proc.pid);
    int a = t_connect(srv.port), b = t_connect(srv.port);
    cr_assert(a >= 0 && b >= 0);
    expect_answer(a, "a", "ok a\n", "first connection");
    expect_silence(b, "b", "second connection while the first is open");
    close(a);
    expect_answer(b, NULL, "ok b\n", "second connection after the first closed");
    long cpu = t_cpu_ticks(srv.proc.pid) - cpu0;
    close(b);
    t_stop(&srv.proc, 1000);
    cr_assert_leq(cpu, 10, "%s: %ld ticks of CPU while paused: spinning", waiter, cpu);
}

#define PAUSE_TEST(waiter)                                                                 \
    Test(edges, paused_listener_##waiter, .timeout = 20)                                   \
    {                                                                                      \
        paused_listener_case(#waiter);                                                     \
    }

PAUSE_TEST(edge)
PAUSE_TEST(oneshot)
PAUSE_TEST(exclusive)
PAUSE_TEST(exclusive_edge)
PAUSE_TEST(level)
PAUSE_TEST(poll)
PAUSE_TEST(select)

/* SLUICE_CONN_MAX=1 with a 1 s queue timeout: B waits behind A and is
 * answered by sluice at its deadline (the loop never sees it); C, which came
 * later, must still be shown to the loop when A closes, whatever it waits with
 * (with lifo, C is held by sluice: its doorbell must wake every kind of waiter). */
static void queue_case(const char *waiter, bool lifo)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_QUEUE_TIMEOUT=1s",
                          lifo ? "SLUICE_QUEUE_ORDER=lifo" : NULL, NULL };
    struct line_server srv;
    start_server(&srv, waiter, env);
    long cpu0 = t_cpu_ticks(srv.proc.pid);
    int a = t_connect(srv.port), b = t_connect(srv.port);
    cr_assert(a >= 0 && b >= 0);
    expect_answer(a, "a", "ok a\n", "first connection");
    cr_assert_eq(write(b, "b\n", 2), 2);
    t_sleep_ms(500);
    int c = t_connect(srv.port);
    cr_assert_geq(c, 0);
    expect_silence(c, "c", "third connection while the first is open");
    char *got = ask(b, NULL, DEADLINE_MS);
    cr_assert(strncmp(got, "HTTP/1.1 503", 12) == 0, "%s: the waiting connection got \"%s\"", waiter, got);
    free(got);
    close(a);
    expect_answer(c, NULL, "ok c\n", "third connection after the first closed");
    long cpu = t_cpu_ticks(srv.proc.pid) - cpu0;
    close(b);
    close(c);
    t_stop(&srv.proc, 1000);
    cr_assert_leq(cpu, 10, "%s: %ld ticks of CPU while paused: spinning", waiter, cpu);
}

#define QUEUE_TEST(waiter)                                                                 \
    Test(edges, queue_timeout_##waiter, .timeout = 20)                                     \
    {                                                                                      \
        queue_case(#waiter, false);                                                        \
    }                                                                                      \
    Test(edges, queue_lifo_##waiter, .timeout = 20)                                        \
    {                                                                                      \
        queue_case(#waiter, true);                                                         \
    }

QUEUE_TEST(edge)
QUEUE_TEST(oneshot)
QUEUE_TEST(exclusive)
QUEUE_TEST(exclusive_edge)
QUEUE_TEST(level)
QUEUE_TEST(poll)
QUEUE_TEST(select)

/* Waits (bounded: a slow build accepts late) until the program has taken
 * every connection off the listener's kernel queue, then a moment for the
 * accept to take its slot. */
static void accepted_then_settled(int port)
{
    uint64_t end = t_now_ms() + 5000;
    while (t_accept_queue(port) != 0 && t_now_ms() < end)
        t_sleep_ms(5);
    cr_assert_eq(t_accept_queue(port), 0, "the program never accepted the new connection");
    t_sleep_ms(100);
}

/* SLUICE_CONN_MAX=1 with SLUICE_CONN_IDLE=free: A is answered and goes idle,
 * B takes the slot; A's next request is held back (hidden) until B is
 * answered, and then A must be shown its input. */
static void idle_free_case(const char *waiter)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_IDLE=free", NULL };
    struct line_server srv;
    start_server(&srv, waiter, env);
    long cpu0 = t_cpu_ticks(srv.proc.pid);
    int a = t_connect(srv.port);
    cr_assert_geq(a, 0);
    expect_answer(a, "a1", "ok a1\n", "first request");
    int b = t_connect(srv.port);
    cr_assert_geq(b, 0);
    accepted_then_settled(srv.port);   /* B is accepted into A's idle slot, and holds it */
    expect_silence(a, "a2", "idle connection's request while another holds the slot");
    expect_answer(b, "b1", "ok b1\n", "second connection");
    expect_answer(a, NULL, "ok a2\n", "idle connection's request once the slot is free");
    long cpu = t_cpu_ticks(srv.proc.pid) - cpu0;
    close(a);
    close(b);
    t_stop(&srv.proc, 1000);
    cr_assert_leq(cpu, 10, "%s: %ld ticks of CPU while held: spinning", waiter, cpu);
}

#define IDLE_TEST(waiter)                                                                  \
    Test(edges, idle_free_##waiter, .timeout = 20)                                         \
    {                                                                                      \
        idle_free_case(#waiter);                                                           \
    }

IDLE_TEST(edge)
IDLE_TEST(oneshot)
IDLE_TEST(exclusive)
IDLE_TEST(exclusive_edge)
IDLE_TEST(level)
IDLE_TEST(poll)
IDLE_TEST(select)

/* SLUICE_CONN_MAX=1, shed: one accept call sheds a bounded number of waiting
 * connections and then answers EAGAIN though more wait. The connections came
 * while the server was stopped, so no new one brings an edge: the rest must be
 * shed all the same. */
#define SHED_CROWD 400

/* Whether pid is stopped now (state T in /proc/PID/stat). */
static bool stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *paren = strrchr(buf, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] == 'T';
}

static void shed_crowd_case(const char *waiter)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_MODE=shed", NULL };
    struct line_server srv;
    srv.port = t_free_port();
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", srv.port);
    const char *argv[] = { t_helper("edge_server"), portarg, waiter, "1000", NULL };
    srv.proc = leftovers_spawn(&leftovers, argv, env, true);
    cr_assert(t_wait_listening(srv.port, 5000), "server did not listen");
    int a = t_connect(srv.port);
    cr_assert_geq(a, 0);
    expect_answer(a, "a", "ok a\n", "the connection holding the slot");
    kill(srv.proc.pid, SIGSTOP);
    for (int i = 0; i < 200 && !stopped(srv.proc.pid); i++)
        t_sleep_ms(10);
    cr_assert(stopped(srv.proc.pid), "the server did not stop");
    static int crowd[SHED_CROWD];
    for (int i = 0; i < SHED_CROWD; i++) {
        crowd[i] = t_connect(srv.port);
        cr_assert_geq(crowd[i], 0, "connection %d", i);
    }
    kill(srv.proc.pid, SIGCONT);
    uint64_t end = t_now_ms() + DEADLINE_MS;
    int answered = 0;
    for (int i = 0; i < SHED_CROWD; i++) {
        /* Shed: an answer then the end, or a reset. */
        char buf[512];
        for (;;) {
            uint64_t now = t_now_ms();
            struct pollfd p = { crowd[i], POLLIN, 0 };
            if (now >= end || poll(&p, 1, (int) (end - now)) != 1)
                break;
            ssize_t n = read(crowd[i], buf, sizeof buf);
            if (n <= 0) {
                answered++;
                break;
            }
        }
        close(crowd[i]);
    }
    expect_answer(a, "a2", "ok a2\n", "the connection holding the slot, after the crowd");
    close(a);
    t_stop(&srv.proc, 1000);
    cr_assert_eq(answered, SHED_CROWD, "%s: %d of %d shed within %d ms", waiter, answered,
                 SHED_CROWD, DEADLINE_MS);
}

#define SHED_TEST(waiter)                                                                  \
    Test(edges, shed_crowd_##waiter, .timeout = 30)                                        \
    {                                                                                      \
        shed_crowd_case(#waiter);                                                          \
    }

SHED_TEST(edge)
SHED_TEST(oneshot)
SHED_TEST(exclusive)
SHED_TEST(exclusive_edge)
SHED_TEST(level)
SHED_TEST(poll)
SHED_TEST(select)

/* Both holds on one connection: held back as idle input (no slot) and, its
 * output over the mark, as a held read. When one gate shows it again while the
 * other still holds it, the read is refused again; the second gate's release
 * must still wake the loop. A is answered and idle, B takes the slot, A asks
 * "x" (held back), B's "push" writes A's output over the mark, B is answered
 * (A gets the slot, but its output is still unsent), then the test drains A. */
static void idle_and_held_case(const char *waiter)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_IDLE=free", "SLUICE_WRITE_HIGH=64K",
                          "SLUICE_HOLD_READS=1", NULL };
    struct line_server srv;
    start_server(&srv, waiter, env);
    long cpu0 = t_cpu_ticks(srv.proc.pid);
    int a = t_connect(srv.port);
    cr_assert_geq(a, 0);
    expect_answer(a, "stream", "ok stream\n", "the streamed connection");
    int b = t_connect(srv.port);
    cr_assert_geq(b, 0);
    accepted_then_settled(srv.port);
    expect_silence(a, "x", "idle connection's request while another holds the slot");
    char *pushed = ask(b, "push", DEADLINE_MS);
    long n = 0;
    cr_assert_eq(sscanf(pushed, "ok push %ld", &n), 1, "push: \"%s\"", pushed);
    free(pushed);
    cr_assert_gt(n, 0);
    t_sleep_ms(500);   /* A has the slot now, its read held while its output waits */
    static char buf[1 << 20];
    long want = n + 5, got = 0;
    uint64_t end = t_now_ms() + DEADLINE_MS;
    while (got < want) {
        uint64_t now = t_now_ms();
        struct pollfd p = { a, POLLIN, 0 };
        if (now >= end || poll(&p, 1, (int) (end - now)) != 1)
            break;
        ssize_t r = read(a, buf + got, (size_t) ((long) sizeof buf - got));
        if (r <= 0)
            break;
        got += r;
    }
    long cpu = t_cpu_ticks(srv.proc.pid) - cpu0;
    close(a);
    close(b);
    t_stop(&srv.proc, 1000);
    cr_log_info("idle and held, %s: %ld of %ld bytes, %ld ticks of CPU", waiter, got, want, cpu);
    cr_assert_eq(got, want, "%s: %ld of %ld bytes (the stream, then \"ok x\")", waiter, got, want);
    for (long i = 0; i < n; i++)
        cr_assert_eq(buf[i], 'p', "stream byte %ld", i);
    cr_assert(memcmp(buf + n, "ok x\n", 5) == 0, "%s: after the stream: \"%.5s\"", waiter, buf + n);
    cr_assert_leq(cpu, 10, "%s: %ld ticks of CPU while held: spinning", waiter, cpu);
}

#define BOTH_TEST(waiter)                                                                  \
    Test(edges, idle_and_held_##waiter, .timeout = 20)                                     \
    {                                                                                      \
        idle_and_held_case(#waiter);                                                       \
    }

BOTH_TEST(edge)
BOTH_TEST(oneshot)
BOTH_TEST(exclusive)
BOTH_TEST(exclusive_edge)
BOTH_TEST(level)
BOTH_TEST(poll)
BOTH_TEST(select)
