/* autolimit.c — SLUICE_CONN_MAX=auto's samples and moves (see autolimit.h).
 *
 * The program's threads do one thing: a busy slot's release (idle.c: a
 * request answered and drained) adds its service time to counters and the
 * histogram (a few relaxed atomics). Everything else happens on sluice's
 * thread (shed.c), every SAMPLE_MS while requests are in service and every
 * IDLE_MS otherwise: read memory usage (one small file), take the counters'
 * deltas, feed autoctl and set the pool's limit. The pressure trigger is
 * opened on that thread the first time it runs, and watched by its epoll.
 *
 * With a shared budget (SLUICE_CONN_SCOPE=host) the limit is the budget's:
 * every member adds its answered requests to the budget's counters, and only
 * the member that leads (connhost_lead: the first that has accepted and
 * ticks, until it is gone) runs the controller, on the budget's requests in
 * service and counters. The others follow the limit in force in their
 * statistics, and look now and then whether the leader lives. */
#include "autolimit.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>

#include "autoctl.h"
#include "cgroupmem.h"
#include "config.h"
#include "connhost.h"
#include "fdtab.h"
#include "log.h"
#include "psi.h"
#include "real.h"
#include "shed.h"
#include "slots.h"
#include "stats.h"

#define SAMPLE_MS 10
#define IDLE_MS 250

static bool on;
static bool shared;                       /* the budget is a shared one, made for auto */
static bool leading;                      /* shared: this process runs the controller */
static struct autoctl ctl;
static struct cgroupmem cg;
static bool use_cgroup, use_rss;         /* where usage comes from (neither: memory off) */
static _Atomic uint64_t done_count, done_ns;
static uint64_t seen_count, seen_ns;      /* the thread's own */
static uint64_t last_sample;
static bool psi_tried;
static int psi_fd = -1;
static _Atomic bool pressure_seen;

static void request_done(uint64_t ns)
{
    atomic_fetch_add_explicit(&done_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&done_ns, ns, memory_order_relaxed);
    stats_observe(&sluice_hist_request, ns);
    if (shared)
        connhost_request_done(ns);
}

static void on_pressure(uint64_t now, uint32_t events)
{
    (void) now;
    if (psi_fd < 0)
        return;
    if (events & (EPOLLERR | EPOLLHUP)) {
        /* The file went (its cgroup removed): reported for ever, level-
         * triggered. Watch no more rather than spin. */
        log_info("auto limit: the pressure trigger is gone; pressure is no longer watched");
        gate_thread_unwatch_one(psi_fd);
        fdtab_close_own(psi_fd);
        psi_fd = -1;
        return;
    }
    if (events & EPOLLIN) {
        char junk[256];   /* a FIFO's writes (a trigger has nothing to read) */
        while (REAL(read)(psi_fd, junk, sizeof junk) > 0)
            ;
    }
    atomic_store(&pressure_seen, true);
}

static void open_pressure(void)
{
    psi_tried = true;
    struct psi_watch w = psi_open(use_cgroup ? cg.v2_dir : "");
    if (w.fd < 0) {
        if (w.source != NULL)
            log_info("auto limit: no pressure trigger on %s", w.source);
        return;
    }
    fdtab_own(w.fd);
    if (gate_thread_watch_one(w.fd, w.events, on_pressure) != 0) {
        fdtab_close_own(w.fd);
        return;
    }
    psi_fd = w.fd;
    log_info("auto limit: watching memory pressure on %s", w.source);
}

/* Requests answered so far (this process's, or the whole budget's). */
static void requests_so_far(uint64_t *count, uint64_t *ns)
{
    if (shared) {
        connhost_requests(count, ns);
        return;
    }
    *count = atomic_load_explicit(&done_count, memory_order_relaxed);
    *ns = atomic_load_explicit(&done_ns, memory_order_relaxed);
}

/* Shared budget: whether this process leads (it takes over from the limit
 * in force); a follower only shows the limit in force. */
static bool lead(uint64_t now)
{
    bool took;
    leading = connhost_lead(now, &took);
    if (took) {
        autoctl_resume(&ctl, connhost_limit(), connhost_noload());
        requests_so_far(&seen_count, &seen_ns);
        log_info("SLUICE_CONN_MAX=auto: this process keeps the shared budget's limit (%u now)",
                 connhost_limit());
    }
    if (!leading) {
        STAT_SET(auto_limit, slots_limit());
        gate_thread_tick_ms(IDLE_MS);
    }
    return leading;
}

static void tick(uint64_t now)
{
    if (!on || now - last_sample < SAMPLE_MS * 1000000ull)
        return;
    last_sample = now;
    if (shared && !lead(now))
        return;
    if (!psi_tried)
        open_pressure();
    uint64_t count, ns;
    requests_so_far(&count, &ns);
    struct autoctl_sample s = {
        .now_ns = now,
        .busy = shared ? connhost_connections() : slots_busy(),
        .usage = use_cgroup ? cgroupmem_usage(&cg) : use_rss ? cgroupmem_rss() : 0,
        .done = count - seen_count,
        .done_ns = ns - seen_ns,
        .pressure = atomic_exchange(&pressure_seen, false),
    };
    seen_count = count;
    seen_ns = ns;
    uint32_t before = ctl.limit;
    uint32_t lim = autoctl_step(&ctl, &s);
    slots_set_limit(lim);
    if (shared)
        connhost_set_noload(ctl.noload_ns);
    if (lim != before)
        log_debug("auto limit %u -> %u (reason %d, in service %u, memory %llu, per request %llu, "
                  "latency %llu us, no-load %llu us)", before, lim, (int) ctl.reason, s.busy,
                  (unsigned long long) s.usage, (unsigned long long) ctl.request_bytes,
                  (unsigned long long) ctl.latency_ns / 1000, (unsigned long long) ctl.noload_ns / 1000);
    if (s.pressure)
        STAT_ADD(auto_pressure, 1);
    STAT_SET(auto_limit, lim);
    STAT_SET(conn_limit, lim);
    STAT_SET(auto_reason, (int64_t) ctl.reason);
    STAT_SET(auto_request_bytes, (int64_t) ctl.request_bytes);
    STAT_SET(auto_memory, (int64_t) s.usage);
    STAT_SET(auto_noload_ns, (int64_t) ctl.noload_ns);
    STAT_SET(auto_latency_ns, (int64_t) ctl.latency_ns);
    gate_thread_tick_ms(s.busy != 0 || lim <= s.busy ? SAMPLE_MS : IDLE_MS);
}

/* The mark: SLUICE_MEM_HIGH in bytes, or its percentage (default 90) of the
 * cgroup's limit; 0 (memory off) without either. */
static uint64_t choose_mark(void)
{
    bool found = cgroupmem_find(&cg);
    if (sluice_cfg.mem_high != 0) {
        use_cgroup = found;
        use_rss = !found;
        return sluice_cfg.mem_high;
    }
    if (!found || cg.limit == 0) {
        if (sluice_cfg.mem_high_pct != 0)
            log_warn("SLUICE_MEM_HIGH=%u%% needs a memory cgroup with a limit: the memory signal is off",
                     sluice_cfg.mem_high_pct);
        return 0;
    }
    use_cgroup = true;
    uint32_t pct = sluice_cfg.mem_high_pct != 0 ? sluice_cfg.mem_high_pct : 90;
    return cg.limit / 100 * pct;
}

void autolimit_init(void)
{
    if (!sluice_cfg.conn_auto || slots_count() == 0)
        return;
    /* A shared budget made with a fixed limit keeps it (connhost said so). */
    if (slots_host() && !connhost_is_auto())
        return;
    uint64_t mark = choose_mark();
    autoctl_init(&ctl, slots_count(), mark);
    if (slots_time_requests(request_done) != 0) {
        log_error("SLUICE_CONN_MAX=auto: cannot time requests; the limit stays at %u", ctl.limit);
        slots_set_limit(ctl.limit);
        return;
    }
    atomic_store(&sluice_hist_request.on, true);
    shared = slots_host() && connhost_is_auto();
    if (!shared)
        slots_set_limit(ctl.limit);   /* a shared budget's is its leader's to set */
    STAT_SET(auto_limit, slots_limit());
    STAT_SET(auto_memory_mark, (int64_t) mark);
    on = true;
    gate_thread_on_tick(tick);
    gate_thread_tick_ms(SAMPLE_MS);
    log_info("SLUICE_CONN_MAX=auto: ceiling %u, memory mark %llu bytes%s", ctl.ceiling,
             (unsigned long long) mark, mark == 0 ? " (no memory signal)" : "");
}

void autolimit_atfork_child(void)
{
    if (!on)
        return;
    /* The parent's thread and its trigger stay the parent's; the child
     * learns again, from its own start. */
    if (psi_fd >= 0)
        fdtab_close_own(psi_fd);
    psi_fd = -1;
    psi_tried = false;
    atomic_store(&pressure_seen, false);
    autoctl_init(&ctl, slots_count(), ctl.mark);
    leading = false;   /* the parent leads a shared budget still */
    if (!shared)
        slots_set_limit(ctl.limit);
    requests_so_far(&seen_count, &seen_ns);
    last_sample = 0;
}
