/* test_drain.c — drain-before-write and held reads, watched from outside:
 * unsent bytes through `ss -tni` (the kernel's notsent count) or the reader's
 * own queue, the server's memory in /proc, and every byte checked against the
 * stream it should be (helpers/drain_gen.h). Each governed run is set against
 * the same run bare, where that is what shows the feature. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers/drain_gen.h"
#include "testlib.h"

#define KiB 1024L
#define MiB (1024L * 1024L)

/* Unsent bytes of the established TCP socket whose peer is 127.0.0.1:port, as
 * `ss -tni` reports them (0 when it shows no notsent field). */
static long ss_notsent(int port)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ss -tniH state established dst 127.0.0.1:%d 2>/dev/null", port);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    pclose(f);
    const char *p = strstr(buf, "notsent:");
    return p != NULL ? atol(p + 8) : 0;
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

static struct t_proc start_echo(int port, bool governed)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *argv[] = { "/usr/bin/python3", t_source("tests/helpers/drain_echo.py"), portarg,
                           NULL };
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1", NULL };
    struct t_proc p = t_spawn(argv, governed ? env : NULL, governed);
    cr_assert(t_wait_listening(port, 5000), "echo server did not listen");
    return p;
}

static struct sender out_stream;

Test(drain, asyncio_echo_bare_buffers_what_the_client_does_not_read, .timeout = 30)
{
    int port = t_free_port();
    struct t_proc srv = start_echo(port, false);
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

Test(drain, asyncio_echo_held_stays_small_and_echoes_every_byte_in_order, .timeout = 60)
{
    int port = t_free_port();
    struct t_proc srv = start_echo(port, true);
    int s = t_connect(port);
    cr_assert(s >= 0);
    struct sender *o = &out_stream;
    memset(o, 0, sizeof *o);
    drain_gen_init(&o->gen, 7);
    o->limit = 200 * MiB;
    long base = t_rss_kib(srv.pid);
    long peak = flood(o, s, 1000, srv.pid);
    long flooded = o->sent;
    cr_log_info("held echo: took %ld bytes unread, RSS %ld -> %ld KiB", flooded, base, peak);
    cr_assert_lt(flooded, 32 * MiB, "the client's sends never stalled: %ld", flooded);
    cr_assert_lt(peak - base, 8 * 1024, "server RSS grew by %ld KiB", peak - base);

    /* Now the client reads, and keeps sending: 64 MB more in all. */
    static unsigned char rbuf[256 * 1024];
    struct drain_gen in;
    drain_gen_init(&in, 7);
    o->limit = flooded + 64 * MiB;
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
            cr_assert(n > 0, "echo ended after %ld of %ld bytes", got, o->limit);
            long bad = drain_gen_check(&in, rbuf, (size_t) n);
            cr_assert_eq(bad, -1, "byte %ld of the echo differs", got + bad);
            got += n;
            last = t_now_ms();
        }
        if (t_now_ms() - sampled >= 20) {
            sampled = t_now_ms();
            long kib = t_rss_kib(srv.pid);
            if (kib > flow_peak)
                flow_peak = kib;
        }
    }
    cr_log_info("held echo: %ld bytes back in order in %llu ms, RSS peak while flowing %ld KiB",
                got, (unsigned long long) (t_now_ms() - start), flow_peak);
    close(s);
    t_stop(&srv, 500);
    cr_assert_eq(got, o->limit, "only %ld of %ld bytes came back", got, o->limit);
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
    uint64_t sampled = 0, last = t_now_ms();
    while (r->got < total && t_now_ms() - last < 5000) {
        if (t_now_ms() - sampled >= 20) {
            sampled = t_now_ms();
            long unsent = -1;
            if (port > 0) {
                unsent = ss_notsent(port);
            } else {
                int q = 0;
                if (ioctl(c, SIOCINQ, &q) == 0)
                    unsent = q;
            }
            if (unsent > r->max_unsent)
                r->max_unsent = unsent;
        }
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
    struct t_proc w = t_spawn(argv, mark != NULL ? env : NULL, mark != NULL);
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
