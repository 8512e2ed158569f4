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
    size_t (*more)(char *, size_t) = atomic_load_explicit(&section, memory_order_acquire);
    if (more != NULL)
        len += more(buf + len, cap - len);
    return len;
}
