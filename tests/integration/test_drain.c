/* test_drain.c — drain-before-write and held reads, watched from outside:
 * unsent bytes through `ss -tni` (the kernel's notsent count) or the reader's
 * own queue, the server's memory in /proc, and every byte checked against the
 * stream it should be (helpers/drain_gen.h). Each governed run is set against
 * the same run bare, where that is what shows the feature. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/drain_gen.h"
#include "testlib.h"
#include "leftovers.h"
#include "nginx_fixture.h"
#include "unsent.h"

#define KiB 1024L
#define MiB (1024L * 1024L)

/* What a test started or made (leftovers.h): the suite's fini stops and
 * removes whatever a failed assertion left. */
static struct leftovers leftovers = { .term_polls = 20 };

static void leave_nothing_behind(void)
{
    leftovers_clear(&leftovers);
}

TestSuite(drain, .fini = leave_nothing_behind);

/* Samples the unsent bytes (unsent.h) of the established TCP socket whose peer
 * is 127.0.0.1:port, or (port 0) the reader's own unread queue on fd (UNIX). */
static void sampler_start(struct unsent_sampler *sm, int port, int fd)
{
    char filter[32];
    snprintf(filter, sizeof filter, "dst 127.0.0.1:%d", port);
    unsent_sampler_start(sm, port > 0 ? filter : NULL, fd);
}

static int listen_tcp(int port, int rcvbuf)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rcvbuf > 0)
        setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(s, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(s, 8), 0);
    return s;
}

static int accept_within(int ls, int ms)
{
    struct pollfd p = { ls, POLLIN, 0 };
    if (poll(&p, 1, ms) != 1)
        return -1;
    return accept4(ls, NULL, NULL, SOCK_CLOEXEC);
}


static long metric(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    return p != NULL ? atol(p + strlen(key)) : -1;
}

static double metric_f(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    return p != NULL ? atof(p + strlen(key)) : -1;
}

static char *slurp_file(const char *path)
{
    char *text = calloc(1, 65536);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        size_t n = fread(text, 1, 65535, f);
        (void) n;
        fclose(f);
    }
    return text;
}

/* --- the bad-default asyncio echo server ---------------------------------- */

/* The client's side of the stream: generated once, sent in order, whatever
 * the kernel takes each time. */
struct sender {
    struct drain_gen gen;
    unsigned char buf[256 * 1024];
    size_t have, off;
    long sent, limit;
};

/* Sends without blocking; returns bytes taken (0: the socket is full). */
static long sender_push(struct sender *o, int s)
{
    if (o->off == o->have) {
        size_t n = sizeof o->buf;
        if ((long) n > o->limit - o->sent)
            n = (size_t) (o->limit - o->sent);
        if (n == 0)
            return 0;
        drain_gen_fill(&o->gen, o->buf, n);
        o->have = n;
        o->off = 0;
    }
    ssize_t n = send(s, o->buf + o->off, o->have - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0)
        return 0;
    o->off += (size_t) n;
    o->sent += n;
    return n;
}

/* Sends without reading until the sends stall for stall_ms (or the limit, or
 * 20 s); returns the server's peak RSS meanwhile. */
static long flood(struct sender *o, int s, int stall_ms, pid_t server)
{
    long peak = t_rss_kib(server);
    uint64_t last = t_now_ms(), start = last;
    while (o->sent < o->limit && t_now_ms() - last < (uint64_t) stall_ms
           && t_now_ms() - start < 20000) {
        if (sender_push(o, s) > 0) {
            last = t_now_ms();
            continue;
        }
        struct pollfd p = { s, POLLOUT, 0 };
        poll(&p, 1, 50);
        long kib = t_rss_kib(server);
        if (kib > peak)
            peak = kib;
    }
    long kib = t_rss_kib(server);
    return kib > peak ? kib : peak;
}

/* The client now reads (checking every byte against the stream) while it keeps
 * sending `more` bytes, then ends its side: everything must come back. */
static void read_back(struct sender *o, int s, long more, pid_t server, const char *what)
{
    static unsigned char rbuf[256 * 1024];
    struct drain_gen in;
    drain_gen_init(&in, 7);
    o->limit = o->sent + more;
    long got = 0, flow_peak = 0;
    uint64_t start = t_now_ms(), last = start, sampled = 0;
    while (got < o->limit && t_now_ms() - last < 5000) {
        struct pollfd p = { s, POLLIN | (o->sent < o->limit ? POLLOUT : 0), 0 };
        poll(&p, 1, 100);
        if (p.revents & POLLOUT) {
            sender_push(o, s);
            /* The last line may be cut: EOF hands it to readline as it is. */
            if (o->sent == o->limit)
                shutdown(s, SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(s, rbuf, sizeof rbuf, MSG_DONTWAIT);
            cr_assert(n > 0, "%s: echo ended after %ld of %ld bytes", what, got, o->limit);
            long bad = drain_gen_check(&in, rbuf, (size_t) n);
            cr_assert_eq(bad, -1, "%s: byte %ld of the echo differs", what, got + bad);
            got += n;
            last = t_now_ms();
        }
        if (t_now_ms() - sampled >= 20) {
            sampled = t_now_ms();
            long kib = t_rss_kib(server);
            if (kib > flow_peak)
                flow_peak = kib;
        }
    }
    cr_log_info("%s: %ld bytes back in order in %llu ms, RSS peak while flowing %ld KiB", what,
                got, (unsigned long long) (t_now_ms() - start), flow_peak);
    cr_assert_eq(got, o->limit, "%s: only %ld of %ld bytes came back", what, got, o->limit);
}

static struct t_proc start_echo(int port, bool governed, const char *stats_env, const char *waits)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = { "/usr/bin/python3", t_source("tests/helpers/drain_echo.py"), portarg,
                           waits, NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1",
                          "SLUICE_STATS_INTERVAL=100ms", stats_env, NULL };
    struct t_proc p = leftovers_spawn(&leftovers, argv, governed ? env : NULL, governed);
    cr_assert(t_wait_listening(port, 5000), "echo server did not listen");
    return p;
}

static struct sender out_stream;

Test(drain, asyncio_echo_bare_buffers_what_the_client_does_not_read, .timeout = 30)
{
    int port = t_free_port();
    struct t_proc srv = start_echo(port, false, NULL, "epoll");
    int s = t_connect(port);
    cr_assert(s >= 0);
    struct sender *o = &out_stream;
    memset(o, 0, sizeof *o);
    drain_gen_init(&o->gen, 7);
    o->limit = 200 * MiB;
    long base = t_rss_kib(srv.pid);
    long peak = flood(o, s, 1000, srv.pid);
    cr_log_info("bare echo: took %ld bytes unread, RSS %ld -> %ld KiB", o->sent, base, peak);
    close(s);
    t_stop(&srv, 500);
    cr_assert_geq(o->sent, 200 * MiB, "bare server stopped taking input: %ld", o->sent);
    cr_assert_geq(peak - base, 100 * 1024, "bare server RSS grew only %ld KiB", peak - base);
}

/* The held echo server, its loop waiting in `waits` (epoll, poll or select). */
static void held_echo(const char *waits)
{
    int port = t_free_port();
    char stats[] = "/tmp/sluice-drain-stats-XXXXXX";
    close(mkstemp(stats));
    leftovers_path(&leftovers, stats);
    char statsenv[64];
    snprintf(statsenv, sizeof statsenv, "SLUICE_STATS=%s", stats);
    struct t_proc srv = start_echo(port, true, statsenv, waits);
    int s = t_connect(port);
    cr_assert(s >= 0);
    struct sender *o = &out_stream;
    memset(o, 0, sizeof *o);
    drain_gen_init(&o->gen, 7);
    o->limit = 200 * MiB;
    long base = t_rss_kib(srv.pid);
    long peak = flood(o, s, 1000, srv.pid);
    long flooded = o->sent;
    cr_log_info("held echo (%s): took %ld bytes unread, RSS %ld -> %ld KiB", waits, flooded, base,
                peak);
    cr_assert_lt(flooded, 32 * MiB, "the client's sends never stalled: %ld", flooded);
    cr_assert_lt(peak - base, 8 * 1024, "server RSS grew by %ld KiB", peak - base);
    /* Held, the event loop sleeps: its socket is not reported readable. */
    long ticks = t_cpu_ticks(srv.pid);
    t_sleep_ms(700);
    ticks = t_cpu_ticks(srv.pid) - ticks;
    cr_log_info("held echo (%s): %ld CPU ticks in 700 ms while held", waits, ticks);
    cr_assert_leq(ticks, 5, "the held server spun: %ld ticks in 700 ms", ticks);
    char *text = slurp_file(stats);
    cr_assert_geq(metric(text, "sluice_held_reads_total"), 1, "stats: %s", text);
    cr_assert_eq(metric(text, "sluice_sockets_over_mark"), 1, "stats: %s", text);
    free(text);
    char what[32];
    snprintf(what, sizeof what, "held echo (%s)", waits);
    read_back(o, s, 64 * MiB, srv.pid, what);
    t_sleep_ms(300);
    text = slurp_file(stats);
    double held_s = metric_f(text, "sluice_held_read_seconds_total");
    cr_log_info("held echo (%s): stats say held %.2f s", waits, held_s);
    cr_assert_geq(held_s, 1.0, "held time not counted: %s", text);
    free(text);
    close(s);
    t_stop(&srv, 500);
    unlink(stats);   /* after the stop: the server rewrites it every 100 ms */
}

Test(drain, asyncio_echo_held_stays_small_and_echoes_every_byte_in_order, .timeout = 60)
{
    held_echo("epoll");
}

Test(drain, asyncio_echo_held_on_poll_and_select_loops_too, .timeout = 60)
{
    held_echo("poll");
    held_echo("select");
}

/* --- a blocking writer and a slow reader ------------------------------------ */

struct slow_run {
    long got;
    long max_unsent;   /* TCP: the writer's notsent (ss); UNIX: the reader's unread queue */
    int status;
};

/* Reads the drain_writer stream on c slowly (16 KiB, then a pause), checking
 * every byte and sampling the unsent count. */
static void read_slowly(int c, long total, int port, struct slow_run *r, int pause_ms)
{
    static unsigned char buf[16 * 1024];
    struct drain_gen in;
    drain_gen_init(&in, 42);
    uint64_t last = t_now_ms();
    struct unsent_sampler sm;
    sampler_start(&sm, port, c);
    while (r->got < total && t_now_ms() - last < 5000) {
        struct pollfd p = { c, POLLIN, 0 };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(c, buf, sizeof buf);
        cr_assert(n > 0, "stream ended after %ld of %ld bytes", r->got, total);
        long bad = drain_gen_check(&in, buf, (size_t) n);
        cr_assert_eq(bad, -1, "byte %ld differs", r->got + bad);
        r->got += n;
        last = t_now_ms();
        if (pause_ms > 0)
            t_sleep_ms(pause_ms);
    }
    r->max_unsent = unsent_sampler_stop(&sm);
}

static struct slow_run writer_to_slow_reader(const char *mark, long total, int pause_ms)
{
    struct slow_run r = { 0, 0, -1 };
    int port = t_free_port();
    int ls = listen_tcp(port, 32 * KiB);
    char portarg[16], totalarg[32], markenv[64];
    snprintf(portarg, sizeof portarg, "%d", port);
    snprintf(totalarg, sizeof totalarg, "%ld", total);
    snprintf(markenv, sizeof markenv, "SLUICE_WRITE_HIGH=%s", mark != NULL ? mark : "");
    const char *argv[] = { t_helper("drain_writer"), portarg, totalarg, NULL };
    const char *env[] = { markenv, NULL };
    struct t_proc w = leftovers_spawn(&leftovers, argv, mark != NULL ? env : NULL, mark != NULL);
    int c = accept_within(ls, 5000);
    cr_assert(c >= 0, "writer did not connect");
    read_slowly(c, total, port, &r, pause_ms);
    r.status = t_wait(&w, 5000);
    close(c);
    close(ls);
    return r;
}

Test(drain, blocking_writer_to_slow_reader_keeps_unsent_within_the_mark, .timeout = 40)
{
    struct slow_run bare = writer_to_slow_reader(NULL, 6 * MiB, 2);
    struct slow_run held = writer_to_slow_reader("64K", 6 * MiB, 2);
    cr_log_info("slow reader: max unsent bare %ld, at 64K %ld", bare.max_unsent, held.max_unsent);
    cr_assert_eq(bare.got, 6 * MiB);
    cr_assert_eq(held.got, 6 * MiB);
    cr_assert_eq(held.status, 0);
    cr_assert_geq(bare.max_unsent, 1 * MiB, "bare writer queued only %ld", bare.max_unsent);
    /* The mark, plus what the kernel takes past it within one call (one
     * segment, up to 64 KiB on loopback). */
    cr_assert_leq(held.max_unsent, 64 * KiB + 64 * KiB, "unsent reached %ld", held.max_unsent);
}

/* The same through a UNIX socket: the reader's own unread queue shows it. */
static struct slow_run unix_writer_to_slow_reader(const char *mark, long total, int pause_ms)
{
    struct slow_run r = { 0, 0, -1 };
    char dir[] = "/tmp/sluice-drain-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    leftovers_path(&leftovers, dir);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s/sock", dir);
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(bind(ls, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(ls, 8), 0);
    char totalarg[32], markenv[64];
    snprintf(totalarg, sizeof totalarg, "%ld", total);
    snprintf(markenv, sizeof markenv, "SLUICE_WRITE_HIGH=%s", mark != NULL ? mark : "");
    const char *argv[] = { t_helper("drain_writer"), a.sun_path, totalarg, NULL };
    const char *env[] = { markenv, NULL };
    struct t_proc w = leftovers_spawn(&leftovers, argv, mark != NULL ? env : NULL, mark != NULL);
    int c = accept_within(ls, 5000);
    cr_assert(c >= 0, "writer did not connect");
    read_slowly(c, total, 0, &r, pause_ms);
    r.status = t_wait(&w, 5000);
    close(c);
    close(ls);
    unlink(a.sun_path);
    rmdir(dir);
    return r;
}

Test(drain, unix_writer_to_slow_reader_keeps_unread_within_the_mark, .timeout = 30)
{
    struct slow_run bare = unix_writer_to_slow_reader(NULL, 2 * MiB, 2);
    struct slow_run held = unix_writer_to_slow_reader("16K", 2 * MiB, 2);
    cr_log_info("unix slow reader: max unread bare %ld, at 16K %ld", bare.max_unsent,
                held.max_unsent);
    cr_assert_eq(bare.got, 2 * MiB);
    cr_assert_eq(held.got, 2 * MiB);
    cr_assert_eq(held.status, 0);
    cr_assert_geq(bare.max_unsent, 100 * KiB, "bare writer queued only %ld", bare.max_unsent);
    cr_assert_leq(held.max_unsent, 16 * KiB + 8 * KiB, "unread reached %ld", held.max_unsent);
}

/* --- a non-blocking writer driven by epoll ------------------------------------ */

struct epoll_run {
    long taken, eagains, wakeups, ticks;
};

static struct epoll_run epoll_writer_to_sink(bool governed)
{
    struct epoll_run r = { -1, -1, -1, -1 };
    int port = t_free_port();
    int ls = listen_tcp(port, 0);
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = { t_helper("drain_epoll_writer"), portarg, "1000", "1200", NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", NULL };
    struct t_proc w = leftovers_spawn(&leftovers, argv, governed ? env : NULL, governed);
    int c = accept_within(ls, 5000);   /* accepted, never read */
    cr_assert(c >= 0);
    t_sleep_ms(200);
    long t0 = t_cpu_ticks(w.pid);
    t_sleep_ms(800);
    r.ticks = t_cpu_ticks(w.pid) - t0;
    cr_assert_eq(t_wait(&w, 5000), 0);
    char *out = t_slurp(w.out_fd, 1000);
    sscanf(out, "taken %ld eagains %ld wakeups %ld", &r.taken, &r.eagains, &r.wakeups);
    free(out);
    close(c);
    close(ls);
    return r;
}

Test(drain, nonblocking_epoll_writer_sleeps_once_at_the_mark, .timeout = 30)
{
    struct epoll_run bare = epoll_writer_to_sink(false);
    struct epoll_run held = epoll_writer_to_sink(true);
    cr_log_info("epoll writer: bare took %ld (%ld wakeups), at 64K took %ld (%ld wakeups, "
                "%ld EAGAIN, %ld CPU ticks in 800 ms)", bare.taken, bare.wakeups, held.taken,
                held.wakeups, held.eagains, held.ticks);
    cr_assert_geq(bare.taken, 2 * MiB, "bare kernel took only %ld", bare.taken);
    /* At the mark: what the peer's receive buffer holds plus about 64 KiB. */
    cr_assert_leq(held.taken, 512 * KiB, "the kernel took %ld", held.taken);
    cr_assert_geq(held.eagains, 1);
    cr_assert_leq(held.wakeups, 10, "writer woke %ld times: told writable when it was not",
                  held.wakeups);
    cr_assert_leq(held.ticks, 5, "writer used %ld ticks in 800 ms", held.ticks);
}

/* --- SLUICE_WRITE_TIMEOUT --------------------------------------------------- */

struct timed_write { long result; char err[16]; long ms; };

/* Runs drain_timeout (two blocking 1 MiB writes to a peer that never reads). */
static int timed_writes(const char *const *env, const char *own_ms, struct timed_write w[2],
                        char **stats_text, const char *stats_path, int wait_ms,
                        const char *size)
{
    int port = t_free_port();
    int ls = listen_tcp(port, 0);
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = { t_helper("drain_timeout"), portarg, size, "2", own_ms, NULL };
    struct t_proc p = leftovers_spawn(&leftovers, argv, env, true);
    int c = accept_within(ls, 5000);
    cr_assert(c >= 0);
    int status = t_wait(&p, wait_ms);
    char *out = t_slurp(p.out_fd, 1000);
    memset(w, 0, 2 * sizeof *w);
    const char *line = out;
    for (int i = 0; i < 2 && line != NULL; i++) {
        sscanf(line, "write %ld errno %15s ms %ld", &w[i].result, w[i].err, &w[i].ms);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    free(out);
    if (stats_text != NULL)
        *stats_text = slurp_file(stats_path);
    close(c);
    close(ls);
    return status;
}


Test(drain, write_timeout_returns_the_count_then_eagain_on_time, .timeout = 30)
{
    char stats[] = "/tmp/sluice-drain-stats-XXXXXX";
    int fd = mkstemp(stats);
    close(fd);
    leftovers_path(&leftovers, stats);
    char statsenv[64];
    snprintf(statsenv, sizeof statsenv, "SLUICE_STATS=%s", stats);
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_WRITE_TIMEOUT=300ms", statsenv, NULL };
    struct timed_write w[2];
    char *text = NULL;
    cr_assert_eq(timed_writes(env, NULL, w, &text, stats, 4000, "1048576"), 0);
    unlink(stats);
    cr_log_info("timeout 300ms: write 1 -> %ld in %ld ms, write 2 -> %ld %s in %ld ms", w[0].result,
                w[0].ms, w[1].result, w[1].err, w[1].ms);
    cr_assert(w[0].result > 0 && w[0].result < 1048576, "first write: %ld", w[0].result);
    cr_assert(w[0].ms >= 280 && w[0].ms <= 900, "first write took %ld ms", w[0].ms);
    cr_assert_eq(w[1].result, -1);
    cr_assert_str_eq(w[1].err, "EAGAIN");
    cr_assert(w[1].ms >= 280 && w[1].ms <= 900, "second write took %ld ms", w[1].ms);
    cr_assert_geq(metric(text, "sluice_write_timeouts_total"), 2, "stats: %s", text);
    cr_assert_geq(metric(text, "sluice_write_waits_total"), 2, "stats: %s", text);
    cr_assert_geq(metric(text, "sluice_sockets_over_mark"), 1, "stats: %s", text);
    free(text);

    /* A timeout the program set itself (700 ms) wins over the setting. */
    cr_assert_eq(timed_writes(env, "700", w, NULL, NULL, 4000, "1048576"), 0);
    cr_log_info("own 700ms: write 1 -> %ld in %ld ms, write 2 -> %ld %s in %ld ms", w[0].result,
                w[0].ms, w[1].result, w[1].err, w[1].ms);
    cr_assert(w[1].ms >= 680 && w[1].ms <= 1300, "second write took %ld ms", w[1].ms);
    cr_assert_str_eq(w[1].err, "EAGAIN");

    /* Without the setting the same write blocks until it is killed. */
    const char *no_timeout[] = { "SLUICE_WRITE_HIGH=64K", NULL };
    cr_assert_eq(timed_writes(no_timeout, NULL, w, NULL, NULL, 1500, "1048576"), -1, "write did not block");

    /* The timeout alone (no mark) bounds the kernel's own wait for buffer space. */
    const char *alone[] = { "SLUICE_WRITE_TIMEOUT=300ms", NULL };
    cr_assert_eq(timed_writes(alone, NULL, w, NULL, NULL, 4000, "16777216"), 0);
    cr_log_info("timeout alone: write 1 -> %ld in %ld ms, write 2 -> %ld %s in %ld ms",
                w[0].result, w[0].ms, w[1].result, w[1].err, w[1].ms);
    cr_assert(w[0].result > 0 && w[0].result < 16777216, "first write: %ld", w[0].result);
    cr_assert(w[0].ms >= 280 && w[0].ms <= 900, "first write took %ld ms", w[0].ms);
    /* The second gets what the peer's growing window still took, or EAGAIN. */
    cr_assert(w[1].ms >= 280 && w[1].ms <= 900, "second write took %ld ms", w[1].ms);
    cr_assert(w[1].result > 0 || strcmp(w[1].err, "EAGAIN") == 0);
}

/* --- a large transfer at a tiny mark ----------------------------------------- */

static void transfer_at_tiny_mark(bool use_unix, long total)
{
    int port = 0, ls;
    char where[128], dir[] = "/tmp/sluice-drain-XXXXXX";
    if (use_unix) {
        cr_assert(mkdtemp(dir) != NULL);
        leftovers_path(&leftovers, dir);
    leftovers_path(&leftovers, dir);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s/sock", dir);
        snprintf(where, sizeof where, "%s", a.sun_path);
        ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_eq(bind(ls, (struct sockaddr *) &a, sizeof a), 0);
        cr_assert_eq(listen(ls, 8), 0);
    } else {
        port = t_free_port();
        ls = listen_tcp(port, 0);
        snprintf(where, sizeof where, "%d", port);
    }
    char totalarg[32];
    snprintf(totalarg, sizeof totalarg, "%ld", total);
    const char *argv[] = { t_helper("drain_writer"), where, totalarg, NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=1K", NULL };
    uint64_t t0 = t_now_ms();
    struct t_proc w = leftovers_spawn(&leftovers, argv, env, true);
    int c = accept_within(ls, 5000);
    cr_assert(c >= 0);
    struct slow_run r = { 0, 0, -1 };
    read_slowly(c, total, 0, &r, 0);
    r.status = t_wait(&w, 5000);
    cr_log_info("%s at 1K: %ld bytes identical in %llu ms", use_unix ? "unix" : "tcp", r.got,
                (unsigned long long) (t_now_ms() - t0));
    char one;
    cr_assert_eq(read(c, &one, 1), 0, "bytes after the end");
    close(c);
    close(ls);
    if (use_unix) {
        unlink(where);
        rmdir(dir);
    }
    cr_assert_eq(r.got, total);
    cr_assert_eq(r.status, 0);
}

Test(drain, large_transfer_at_a_1k_mark_with_odd_writes_is_identical, .timeout = 60)
{
    transfer_at_tiny_mark(false, 200 * MiB);
    transfer_at_tiny_mark(true, 64 * MiB);
}

/* --- held blocking reads: a threaded server with an unbounded queue ---------- */

static struct t_proc start_queue_echo(int port, bool governed, bool alarm_handler)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = { t_helper("drain_queue_echo"), portarg,
                           alarm_handler ? "alarm" : NULL, NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1", NULL };
    struct t_proc p = leftovers_spawn(&leftovers, argv, governed ? env : NULL, governed);
    cr_assert(t_wait_listening(port, 5000), "queue echo did not listen");
    return p;
}

Test(drain, blocking_reads_are_held_while_output_does_not_drain, .timeout = 40)
{
    long growth[2], taken[2];
    for (int governed = 0; governed < 2; governed++) {
        int port = t_free_port();
        struct t_proc srv = start_queue_echo(port, governed, false);
        int s = t_connect(port);
        cr_assert(s >= 0);
        struct sender *o = &out_stream;
        memset(o, 0, sizeof *o);
        drain_gen_init(&o->gen, 7);
        o->limit = 200 * MiB;
        long base = t_rss_kib(srv.pid);
        long peak = flood(o, s, 1000, srv.pid);
        growth[governed] = peak - base;
        taken[governed] = o->sent;
        cr_log_info("queue echo %s: took %ld bytes unread, RSS %ld -> %ld KiB",
                    governed ? "held" : "bare", o->sent, base, peak);
        if (governed)
            read_back(o, s, 32 * MiB, srv.pid, "queue echo held");
        close(s);
        t_stop(&srv, 500);
    }
    cr_assert_geq(growth[0], 100 * 1024, "bare queue grew only %ld KiB", growth[0]);
    cr_assert_geq(taken[0], 100 * MiB);
    cr_assert_lt(growth[1], 8 * 1024, "held queue grew %ld KiB", growth[1]);
    cr_assert_lt(taken[1], 32 * MiB, "the client's sends never stalled: %ld", taken[1]);
}

/* A signal interrupts a held blocking read as it would the real one: with a
 * handler installed without SA_RESTART, read returns EINTR. */
Test(drain, a_held_blocking_read_is_interrupted_by_a_signal, .timeout = 30)
{
    int port = t_free_port();
    struct t_proc srv = start_queue_echo(port, true, true);
    int s = t_connect(port);
    cr_assert(s >= 0);
    struct sender *o = &out_stream;
    memset(o, 0, sizeof *o);
    drain_gen_init(&o->gen, 7);
    /* Reads are held only once output is unsent: wait until the server's writer
     * thread is echoing (a starved writer leaves nothing unsent, and then the
     * contract says input flows). */
    o->limit = 1 * MiB;
    flood(o, s, 500, srv.pid);
    struct pollfd echoed = { s, POLLIN, 0 };
    cr_assert_eq(poll(&echoed, 1, 5000), 1, "the server never echoed");
    o->limit = 200 * MiB;
    flood(o, s, 500, srv.pid);
    cr_assert_lt(o->sent, 32 * MiB, "not held: %ld", o->sent);
    /* The reader is the thread that is not the main one. */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int) srv.pid);
    DIR *d = opendir(path);
    int tid = -1;
    for (struct dirent *de; d != NULL && (de = readdir(d)) != NULL;)
        if (atoi(de->d_name) > 0 && atoi(de->d_name) != srv.pid)
            tid = atoi(de->d_name);
    if (d != NULL)
        closedir(d);
    cr_assert(tid > 0, "no reader thread");
    cr_assert_eq(syscall(SYS_tgkill, srv.pid, tid, SIGALRM), 0);
    char *err = t_slurp(srv.err_fd, 500);
    cr_log_info("held read after SIGALRM: stderr [%s]", err);
    cr_assert(strstr(err, "EINTR") != NULL, "the held read was not interrupted");
    free(err);
    /* And it goes back to being held: the server still takes nothing more. */
    long before = o->sent;
    flood(o, s, 300, srv.pid);
    cr_assert_lt(o->sent - before, 1 * MiB, "reads not held after the signal");
    close(s);
    t_stop(&srv, 500);
}

/* --- nginx serving a large file with sendfile -------------------------------- */

struct nginx_site {
    char dir[64];
    int port;
    struct t_proc proc;
};

/* An nginx with one worker serving `size` bytes of the drain_gen stream (seed
 * 42) as /big, sendfile on, on 127.0.0.1 only. */
static void start_nginx(struct nginx_site *site, long size, bool governed)
{
    nginx_make_site(site->dir, sizeof site->dir, "/tmp/sluice-nginx-XXXXXX", size, &leftovers);
    site->port = t_free_port();
    char servers[256];
    snprintf(servers, sizeof servers, "  server { listen 127.0.0.1:%d; root %s; }", site->port,
             site->dir);
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", NULL };
    const int ports[] = { site->port, 0 };
    site->proc = nginx_start(site->dir, "sendfile on; sendfile_max_chunk 0;", servers, env,
                             governed, ports, &leftovers);
}

static void stop_nginx(struct nginx_site *site)
{
    t_stop(&site->proc, 2000);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", site->dir);
    cr_assert_eq(system(cmd), 0);
}

/* Fetches /big through a small receive window, slowly, checking every byte;
 * returns the most unsent bytes ss showed on nginx's side. */
static long fetch_slowly(struct nginx_site *site, long size)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rcvbuf = 32 * 1024;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) site->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(connect(s, (struct sockaddr *) &a, sizeof a), 0);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    getsockname(s, (struct sockaddr *) &me, &len);
    const char req[] = "GET /big HTTP/1.0\r\nHost: x\r\n\r\n";
    cr_assert_eq(write(s, req, sizeof req - 1), (ssize_t) sizeof req - 1);
    static unsigned char buf[16 * 1024];
    char head[4096];
    size_t hlen = 0;
    struct drain_gen in;
    drain_gen_init(&in, 42);
    long got = 0;
    uint64_t last = t_now_ms();
    struct unsent_sampler sm;
    sampler_start(&sm, ntohs(me.sin_port), -1);
    while (got < size && t_now_ms() - last < 5000) {
        ssize_t n = read(s, buf, sizeof buf);
        cr_assert(n > 0, "body ended after %ld of %ld bytes", got, size);
        last = t_now_ms();
        size_t off = 0;
        if (hlen != SIZE_MAX) {
            /* Still in the header: find its end. */
            size_t take = (size_t) n < sizeof head - 1 - hlen ? (size_t) n : sizeof head - 1 - hlen;
            memcpy(head + hlen, buf, take);
            head[hlen + take] = '\0';
            char *end = strstr(head, "\r\n\r\n");
            if (end == NULL) {
                hlen += take;
                continue;
            }
            cr_assert(strncmp(head, "HTTP/1.1 200", 12) == 0, "answer: %s", head);
            off = (size_t) (end + 4 - head) - hlen;
            hlen = SIZE_MAX;
        }
        long bad = drain_gen_check(&in, buf + off, (size_t) n - off);
        cr_assert_eq(bad, -1, "body byte %ld differs", got + bad);
        got += n - (ssize_t) off;
        t_sleep_ms(2);
    }
    long max_unsent = unsent_sampler_stop(&sm);
    close(s);
    cr_assert_eq(got, size);
    return max_unsent;
}

Test(drain, nginx_sendfile_to_a_slow_client_keeps_unsent_within_the_mark, .timeout = 40)
{
    long size = 6 * MiB, unsent[2];
    for (int governed = 0; governed < 2; governed++) {
        struct nginx_site site;
        start_nginx(&site, size, governed);
        unsent[governed] = fetch_slowly(&site, size);
        stop_nginx(&site);
    }
    cr_log_info("nginx sendfile, slow client: max unsent bare %ld, at 64K %ld", unsent[0],
                unsent[1]);
    cr_assert_geq(unsent[0], 1 * MiB, "bare nginx queued only %ld", unsent[0]);
    cr_assert_leq(unsent[1], 64 * KiB + 64 * KiB, "unsent reached %ld", unsent[1]);
}

/* --- the writer's view at a full socket is the same as without sluice -------- */

Test(drain, dontwait_signals_nosignal_and_sigpipe_behave_as_bare, .timeout = 30)
{
    char stats[] = "/tmp/sluice-drain-stats-XXXXXX";
    close(mkstemp(stats));
    leftovers_path(&leftovers, stats);
    char statsenv[64];
    snprintf(statsenv, sizeof statsenv, "SLUICE_STATS=%s", stats);
    const char *argv[] = { t_helper("drain_semantics"), NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1", statsenv, NULL };
    char *bare = NULL, *held = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, NULL, false, 15000, &bare, &err), 0, "bare: %s", err);
    free(err);
    cr_assert_eq(t_run(argv, env, true, 15000, &held, &err), 0, "governed: %s", err);
    free(err);
    cr_log_info("bare:\n%sgoverned:\n%s", bare, held);
    cr_assert_str_eq(bare, "dontwait: EAGAIN\neintr: -1 EINTR on-time\nrestart: 1048576 0 late\n"
                           "nosignal: EPIPE\nsigpipe: killed\n");
    cr_assert_str_eq(held, bare);
    /* And the governed writes did wait in sluice (the mark, not the kernel's
     * buffer, made them wait). */
    char *text = slurp_file(stats);
    unlink(stats);
    cr_assert_geq(metric(text, "sluice_write_waits_total"), 2, "stats: %s", text);
    free(text);
    free(bare);
    free(held);
}
