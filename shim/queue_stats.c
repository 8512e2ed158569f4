/* queue_stats.c — the waiting queue's figures (see queue_stats.h): the gauges
 * and counters of stats.h (length, oldest wait, answered totals, the
 * Retry-After estimate, TcpExt ListenOverflows/ListenDrops from
 * /proc/net/netstat when sluice started and now: host-wide figures, the kernel
 * counts every listener together), and the histogram sluice_queue_wait_seconds
 * of the waits of served connections, rendered after them. */
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
    if (late)
        STAT_ADD(queue_timed_out, 1);
    else
        STAT_ADD(queue_full, 1);
}

void queue_stats_now(uint64_t waiting, uint64_t ahead, uint64_t oldest_ns, uint64_t now_ns)
{
    STAT_SET(queue_length, (int64_t) waiting);
    STAT_SET(queue_oldest_ns, (int64_t) oldest_ns);
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

#define HISTOGRAM "sluice_queue_wait_seconds"

static void refresh(void)
{
    int64_t o, d;
    if (queue_is_on)
        read_netstat(&o, &d);
    else
        o = d = -1;
    STAT_SET(listen_overflows, o);
    STAT_SET(listen_drops, d);
    unsigned ra = sluice_cfg.retry_after_auto ? retry_after_estimate() : sluice_cfg.retry_after_s;
    STAT_SET(retry_after_ns, (int64_t) ra * 1000000000);
}

/* The histogram (the counters above it are stats.h's). */
static size_t render(char *buf, size_t cap)
{
    size_t len = 0;
    char t[32];
    if (!queue_is_on)
        return len;
    if (put(buf, cap, &len, "# HELP " HISTOGRAM " How long served connections waited in the queue\n"
            "# TYPE " HISTOGRAM " histogram\n") != 0)
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
        if (put(buf, cap, &len, HISTOGRAM "_bucket{le=\"%s\"} %llu\n", le, (unsigned long long) cum) != 0)
            return len;
    }
    put(buf, cap, &len, HISTOGRAM "_sum %s\n" HISTOGRAM "_count %llu\n",
        secs(atomic_load(&wait_sum_ns), t), (unsigned long long) atomic_load(&served));
    return len;
}

void queue_stats_init(bool queue_enabled)
{
    queue_is_on = queue_enabled;
    int64_t o = -1, d = -1;
    if (queue_enabled)
        read_netstat(&o, &d);
    STAT_SET(listen_overflows_start, o);
    STAT_SET(listen_drops_start, d);
    stats_add_section(refresh, render);
}
