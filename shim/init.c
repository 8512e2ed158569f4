/* init.c — the top of the house: start-up, on the first wrapped call (REAL() in
 * a wrapper, through init_bind_slow) or the constructor, whichever comes first,
 * under pthread_once; the fork handler; the stats writer's start and last
 * write. It is the one room that calls every gate's set-up. A call that arrives
 * while this thread is still starting (a dependency's malloc calling syscall(),
 * say) binds just the function it needs instead of waiting on itself. */
#include "real.h"

#include <pthread.h>
#include <stdatomic.h>

#include "init.h"

#include "config.h"
#include "conn.h"
#include "drain.h"
#include "fdtab.h"
#include "fsgate.h"
#include "overlay.h"
#include "slots.h"
#include "stats.h"
#include "statswriter.h"
#include "threads.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static __thread int starting_here;

static void atfork_prepare(void)
{
    if (gates_on() & GATE_CONN)
        conn_atfork_prepare();
}

static void atfork_child(void)
{
    fdtab_atfork_child();
    conn_atfork_child();
    fsgate_atfork_child();
    overlay_atfork_child();
    threads_atfork_child();
    stats_atfork_child();
}

static void start(void)
{
    int saved = errno;
    starting_here = 1;
    real_bind_all();
    config_load();
    unsigned gates = 0;
    if (sluice_cfg.conn_max != 0 || sluice_cfg.backlog != 0)
        gates |= GATE_CONN;
    if (sluice_cfg.write_high != 0 || sluice_cfg.hold_reads || sluice_cfg.write_timeout_ns != 0)
        gates |= GATE_DRAIN;
    if (sluice_cfg.fs_max != 0)
        gates |= GATE_FS;
    if (gates != 0)
        overlay_init();
    if (gates & GATE_CONN)
        conn_init();
    if (gates & GATE_DRAIN)
        drain_init();
    if (gates & GATE_FS)
        fsgate_init();
    STAT_SET(conn_limit, sluice_cfg.conn_auto ? slots_limit() : sluice_cfg.conn_max);
    STAT_SET(fs_limit, sluice_cfg.fs_max);
    pthread_atfork(atfork_prepare, NULL, atfork_child);
    atomic_store_explicit(&sluice_gates, gates, memory_order_release);
    starting_here = 0;
    errno = saved;
}

void sluice_init(void)
{
    if (starting_here)
        return;
    pthread_once(&init_once, start);
}

void *init_bind_slow(void **slot, const char *name)
{
    if (!starting_here)
        sluice_init();
    return real_bind_slow(slot, name);
}

__attribute__((constructor)) static void sluice_constructor(void)
{
    sluice_init();
    stats_start();
}

__attribute__((destructor)) static void sluice_destructor(void)
{
    stats_write_final();
}
