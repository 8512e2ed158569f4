/* queue_stats.c — the waiting queue's figures (see queue_stats.h), rendered in
 * the Prometheus text format after the counters of stats.h: gauges for the
 * queue's length, its oldest wait and the Retry-After estimate, counters of the
 * connections answered (timed out, queue full), the histogram
 * sluice_queue_wait_seconds of the waits of served connections, and TcpExt
 * ListenOverflows/ListenDrops from /proc/net/netstat, when sluice started and
 * now (host-wide figures: the kernel counts every listener together). */
#include "real.h"

#include "queue_stats.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "retry_after.h"
#include "stats.h"

static const uint64_t bucket_ms[] = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000 };
#define NBUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

static _Atomic uint64_t buckets[NBUCKETS + 1];   /* the last: beyond every bound */
static _Atomic uint64_t wait_sum_ns, served;
static _Atomic uint64_t timed_out, full;
static _Atomic uint64_t length, oldest;
static int64_t overflows_start = -1, drops_start = -1;
static bool queue_is_on;

void queue_stats_served(uint64_t wait_ns, uint64_t now_ns)
{
    unsigned b = 0;
    while (b < NBUCKETS && wait_ns > bucket_ms[b] * 1000000u)
        b++;
    atomic_fetch_add_explicit(&buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&wait_sum_ns, wait_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&served, 1, memory_order_relaxed);
    (void) now_ns;
}

void queue_stats_answered(bool late)
{
    atomic_fetch_add_explicit(late ? &timed_out : &full, 1, memory_order_relaxed);
}

void queue_stats_now(uint64_t waiting, uint64_t ahead, uint64_t oldest_ns, uint64_t now_ns)
{
    atomic_store_explicit(&length, waiting, memory_order_relaxed);
    atomic_store_explicit(&oldest, oldest_ns, memory_order_relaxed);
    retry_after_update(ahead, now_ns);
}

/* TcpExt ListenOverflows and ListenDrops (-1 if unreadable). */
static void read_netstat(int64_t *overflows, int64_t *drops)
{
    *overflows = *drops = -1;
    char buf[8192];
    int fd = REAL(open)("/proc/net/netstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = REAL(read)(fd, buf, sizeof buf - 1);
    REAL(close)(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    /* Two "TcpExt:" lines: the names, then the values in the same order. */
    char *names = strstr(buf, "TcpExt:");
    char *values = names != NULL ? strstr(names + 7, "TcpExt:") : NULL;
    if (values == NULL)
        return;
    char *ne = strchr(names, '\n');
    if (ne == NULL || ne > values)
        return;
    int col = 0, want_o = -1, want_d = -1;
    for (char *p = names + 7; p < ne;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " \n");
        if (len == 15 && strncmp(p, "ListenOverflows", 15) == 0)
            want_o = col;
        if (len == 11 && strncmp(p, "ListenDrops", 11) == 0)
            want_d = col;
        p += len;
        col++;
    }
    col = 0;
    for (char *p = values + 7; *p != '\0' && *p != '\n';) {
        while (*p == ' ')
            p++;
        long long v = 0;
        char *q = p;
        while (*q >= '0' && *q <= '9')
            v = v * 10 + (*q++ - '0');
        if (col == want_o)
            *overflows = v;
        if (col == want_d)
            *drops = v;
        p = q == p ? p + 1 : q;
        col++;
    }
}

__attribute__((format(printf, 4, 5)))
static int put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= cap - *len)
        return -1;
    *len += (size_t) n;
    return 0;
}

static const char *secs(uint64_t ns, char *out)
{
    snprintf(out, 32, "%llu.%09llu", (unsigned long long) (ns / 1000000000u),
             (unsigned long long) (ns % 1000000000u));
    return out;
}

#define METRIC(name, type, help) "# HELP " name " " help "\n# TYPE " name " " type "\n"

static size_t render(char *buf, size_t cap)
{
    size_t len = 0;
    char t[32];
    if (put(buf, cap, &len, METRIC("sluice_retry_after_seconds", "gauge",
                                   "Retry-After the shed answer would carry now (the estimate)")
            "sluice_retry_after_seconds %u\n", retry_after_estimate()) != 0)
        return len;
    if (!queue_is_on)
        return len;
    int64_t o, d;
    read_netstat(&o, &d);
    if (put(buf, cap, &len,
            METRIC("sluice_queue_length", "gauge", "Connections waiting for a slot in the accept queues")
            "sluice_queue_length %llu\n"
            METRIC("sluice_queue_oldest_wait_seconds", "gauge", "How long the oldest waiting connection has waited")
            "sluice_queue_oldest_wait_seconds %s\n"
            METRIC("sluice_queue_timed_out_total", "counter", "Waiting connections answered after SLUICE_QUEUE_TIMEOUT")
            "sluice_queue_timed_out_total %llu\n"
            METRIC("sluice_queue_full_total", "counter", "Waiting connections answered beyond SLUICE_QUEUE_MAX")
            "sluice_queue_full_total %llu\n",
            (unsigned long long) atomic_load(&length), secs(atomic_load(&oldest), t),
            (unsigned long long) atomic_load(&timed_out), (unsigned long long) atomic_load(&full)) != 0)
        return len;
    if (put(buf, cap, &len, METRIC("sluice_queue_wait_seconds", "histogram",
                                   "How long served connections waited in the queue")) != 0)
        return len;
    uint64_t cum = 0;
    for (unsigned b = 0; b <= NBUCKETS; b++) {
        cum += atomic_load(&buckets[b]);
        char le[48];
        if (b < NBUCKETS)
            snprintf(le, sizeof le, "%llu.%03llu", (unsigned long long) (bucket_ms[b] / 1000),
                     (unsigned long long) (bucket_ms[b] % 1000));
        else
            strcpy(le, "+Inf");
        if (put(buf, cap, &len, "sluice_queue_wait_seconds_bucket{le=\"%s\"} %llu\n", le,
                (unsigned long long) cum) != 0)
            return len;
    }
    put(buf, cap, &len,
        "sluice_queue_wait_seconds_sum %s\nsluice_queue_wait_seconds_count %llu\n"
        METRIC("sluice_listen_overflows_start", "gauge", "The kernel's TcpExt ListenOverflows when sluice started (host-wide)")
        "sluice_listen_overflows_start %lld\n"
        METRIC("sluice_listen_overflows", "gauge", "The kernel's TcpExt ListenOverflows now (host-wide)")
        "sluice_listen_overflows %lld\n"
        METRIC("sluice_listen_drops_start", "gauge", "The kernel's TcpExt ListenDrops when sluice started (host-wide)")
        "sluice_listen_drops_start %lld\n"
        METRIC("sluice_listen_drops", "gauge", "The kernel's TcpExt ListenDrops now (host-wide)")
        "sluice_listen_drops %lld\n",
        secs(atomic_load(&wait_sum_ns), t), (unsigned long long) atomic_load(&served),
        (long long) overflows_start, (long long) o, (long long) drops_start, (long long) d);
    return len;
}

void queue_stats_init(bool queue_enabled)
{
    queue_is_on = queue_enabled;
    if (!queue_enabled && !sluice_cfg.retry_after_auto)
        return;
    if (queue_enabled)
        read_netstat(&overflows_start, &drops_start);
    stats_add_section(render);
}
