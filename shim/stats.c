/* stats.c — the counters every gate bumps, and their rendering in the
 * Prometheus text format. The thread that writes them to SLUICE_STATS sits at
 * the top of the house (statswriter.c); a gate that keeps a figure its own way
 * (fsgate's one atomic word) registers a refresh called before each render. */
#include "stats.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>


struct sluice_stats sluice_stats;
#define STATS_HIST_DEF(field, name, help) struct sluice_hist sluice_hist_##field;
SLUICE_HISTOGRAMS(STATS_HIST_DEF)
#undef STATS_HIST_DEF

static const uint32_t hist_bounds_ms[STATS_HIST_BUCKETS - 1] = STATS_HIST_BOUNDS_MS;

void stats_observe(struct sluice_hist *h, uint64_t ns)
{
    int b = 0;
    while (b < STATS_HIST_BUCKETS - 1 && ns > (uint64_t) hist_bounds_ms[b] * 1000000u)
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (int64_t) ns, memory_order_relaxed);
}

/* One histogram in the exposition format; the new length. */
static size_t render_hist(char *buf, size_t cap, size_t len, struct sluice_hist *h,
                          const char *name, const char *help)
{
    if (!atomic_load_explicit(&h->on, memory_order_relaxed))
        return len;
    int n = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    if (n < 0 || (size_t) n >= cap - len)
        return len;
    len += (size_t) n;
    int64_t total = 0;
    for (int b = 0; b < STATS_HIST_BUCKETS; b++) {
        total += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
        if (b < STATS_HIST_BUCKETS - 1)
            n = snprintf(buf + len, cap - len, "%s_bucket{le=\"%u.%03u\"} %lld\n", name,
                         hist_bounds_ms[b] / 1000, hist_bounds_ms[b] % 1000, (long long) total);
        else
            n = snprintf(buf + len, cap - len, "%s_bucket{le=\"+Inf\"} %lld\n", name, (long long) total);
        if (n < 0 || (size_t) n >= cap - len)
            return len;
        len += (size_t) n;
    }
    int64_t sum = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    n = snprintf(buf + len, cap - len, "%s_sum %lld.%09lld\n%s_count %lld\n", name,
                 (long long) (sum / 1000000000), (long long) (sum % 1000000000), name, (long long) total);
    if (n < 0 || (size_t) n >= cap - len)
        return len;
    return len + (size_t) n;
}

#define REFRESH_MAX 4
static void (*_Atomic refresh[REFRESH_MAX])(void);
static void (*_Atomic section_refresh)(void);
static size_t (*_Atomic section)(char *buf, size_t cap);

void stats_add_section(void (*refresh_fn)(void), size_t (*render)(char *buf, size_t cap))
{
    atomic_store_explicit(&section_refresh, refresh_fn, memory_order_release);
    atomic_store_explicit(&section, render, memory_order_release);
}

void stats_on_render(void (*fn)(void))
{
    for (int i = 0; i < REFRESH_MAX; i++) {
        void (*none)(void) = NULL;
        if (atomic_compare_exchange_strong(&refresh[i], &none, fn))
            return;
    }
}

size_t stats_render(char *buf, size_t cap)
{
    size_t len = 0;
    for (int i = 0; i < REFRESH_MAX; i++) {
        void (*fn)(void) = atomic_load_explicit(&refresh[i], memory_order_acquire);
        if (fn != NULL)
            fn();
    }
    void (*fn2)(void) = atomic_load_explicit(&section_refresh, memory_order_acquire);
    if (fn2 != NULL)
        fn2();
#define RENDER(field, name, type, help) \
    do { \
        int64_t v_ = atomic_load_explicit(&sluice_stats.field, memory_order_relaxed); \
        bool secs_ = strstr(name, "_seconds") != NULL; \
        int n_; \
        if (secs_) \
            n_ = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n%s %lld.%09lld\n", \
                          name, help, name, type, name, (long long) (v_ / 1000000000), \
                          (long long) (v_ % 1000000000)); \
        else \
            n_ = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", \
                          name, help, name, type, name, (long long) v_); \
        if (n_ < 0 || (size_t) n_ >= cap - len) \
            return len; \
        len += (size_t) n_; \
    } while (0);
    SLUICE_METRICS(RENDER)
#undef RENDER
#define RENDER_HIST(field, name, help) len = render_hist(buf, cap, len, &sluice_hist_##field, name, help);
    SLUICE_HISTOGRAMS(RENDER_HIST)
#undef RENDER_HIST
    size_t (*more)(char *, size_t) = atomic_load_explicit(&section, memory_order_acquire);
    if (more != NULL)
        len += more(buf + len, cap - len);
    return len;
}
