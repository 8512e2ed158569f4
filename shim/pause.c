/* pause.c — pausing the listeners (see pause.h).
 *
 * Pause: while every slot holds a connection, governed listeners are hidden
 * from the program's readiness calls; a non-blocking accept answers EAGAIN
 * (the connection stays in the kernel's backlog); a blocking accept waits for
 * a slot (slots_wait). The slot pool calls sync_pause whenever it may have
 * become full or stopped being full.
 *
 * sluice's thread (shed.c) calls pause_tick at least once a second: while
 * paused it re-checks that each descriptor holding a slot is still the socket
 * it was (a close sluice did not see must not pause the program forever), and
 * keeps the paused time current.
 *
 * Host scope (one budget for several processes): a process learns that the
 * budget filled when its own accept finds it full (slots.c then syncs the
 * pause before the accept answers EAGAIN). While paused, or while idle
 * connections of its own wait for a slot, its sluice thread sleeps on the
 * budget as one of its sleepers (park): a release anywhere wakes exactly one
 * sleeper, whose process unhides its listeners (or serves its idle queue). If
 * the slot is still unused a little later (nothing was queued for this
 * process: SO_REUSEPORT gives each its own backlog), it wakes the next. */
#include "pause.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "config.h"
#include "fdtab.h"
#include "idle.h"
#include "log.h"
#include "overlay.h"
#include "shed.h"
#include "slots.h"
#include "stats.h"
#include "sys.h"

#define MAX_LISTENERS 64
#define RECHECK_MS 1000
#define PASS_ON_NS 20000000u    /* a woken process that leaves the slot this long passes it on */
#define WATCH_TICK_MS 20        /* the first look at a connection this process left watched */

static _Atomic int listeners[MAX_LISTENERS];   /* governed listener fd + 1 */

_Atomic uint32_t pause_changes_pending;  /* the combiner's requests; also a futex word */
static _Atomic int pause_appliers_awaited;
static bool paused_now;                 /* written only by the sync combiner */
static _Atomic bool paused_flag;
/* Start of the paused time not yet added to conn_paused_ns (0: none). The
 * sluice thread adds it every second while paused, so the figure is live. */
static _Atomic uint64_t paused_mark;
static uint64_t last_recheck;           /* the thread's own */

/* Slots held by descriptors that are no longer what they were (closed by a raw
 * system call, io_uring, a library sluice cannot see) are released. A slot is
 * released only if its descriptor's entry still holds it and its inode did not
 * change while we looked, so a close and reuse racing with us is left alone. */
static void recheck(void)
{
    int extent = fdtab_extent();
    for (int fd = 0; fd < extent; fd++) {
        struct fdent *e = fdtab_peek(fd);
        if (e == NULL)
            continue;
        uint32_t c = atomic_load(&e->conn);
        if (c == 0)
            continue;
        uint64_t ino = atomic_load(&e->ino);
        struct stat st;
        int r = fstat(fd, &st);
        if (r == 0 && (ino == 0 || (uint64_t) st.st_ino == ino))
            continue;
        if (r != 0 && errno != EBADF)
            continue;
        if (atomic_load(&e->ino) != ino)
            continue;
        if (atomic_compare_exchange_strong(&e->conn, &c, 0)) {
            log_info("descriptor %d was closed unseen: its connection slot is released", fd);
            conn_release(c);
        }
    }
}

static void sync_pause(void);

static void pause_tick(uint64_t now)
{
    int soon = slots_host_tick(now);
    if (soon > 0)
        gate_thread_tick_within(soon);
    /* Host scope: a slot freed elsewhere while this process was not asleep
     * for one (shed mode, or a wake that went to another process). */
    if (slots_host() && atomic_load(&paused_flag) && !slots_full())
        sync_pause();
    if (last_recheck == 0)
        last_recheck = now;
    if (atomic_load(&paused_flag) && now - last_recheck >= RECHECK_MS * 1000000ull) {
        last_recheck = now;
        recheck();
        uint64_t mark = atomic_load(&paused_mark);
        if (mark != 0 && now > mark && atomic_compare_exchange_strong(&paused_mark, &mark, now))
            STAT_ADD(conn_paused_ns, (int64_t) (now - mark));
    }
}

static bool still_governed_listener(int fd)
{
    if (fdtab_kind(fd) != FD_LISTENER)
        return false;
    struct fdent *e = fdtab_peek(fd);
    return e != NULL && (atomic_load(&e->flags) & FDF_GOVERNED);
}

/* Applies "paused iff every slot holds a connection". A combiner: whoever comes
 * first applies until no request is left, so concurrent changes (or a signal
 * handler's close) never leave the listeners in the wrong state, with no lock. */
static void sync_pause(void)
{
    if (atomic_fetch_add(&pause_changes_pending, 1) != 0)
        return;
    unsigned mine = 1;
    for (;;) {
        bool want = slots_full();
        if (want != paused_now) {
            paused_now = want;
            uint64_t now = sys_mono_ns();
            if (want) {
                atomic_store(&paused_mark, now);
                STAT_ADD(conn_pauses, 1);
                STAT_SET(conn_paused, 1);
                atomic_store(&paused_flag, true);
            } else {
                uint64_t mark = atomic_exchange(&paused_mark, 0);
                if (mark != 0)
                    STAT_ADD(conn_paused_ns, (int64_t) (now - mark));
                STAT_SET(conn_paused, 0);
                atomic_store(&paused_flag, false);
            }
            if (sluice_cfg.conn_mode == CONN_PAUSE)
                for (int i = 0; i < MAX_LISTENERS; i++) {
                    int l = atomic_load(&listeners[i]) - 1;
                    if (l < 0)
                        continue;
                    if (!want) {
                        overlay_unhide(l, EPOLLIN);
                    } else if (still_governed_listener(l)) {
                        overlay_hide(l, EPOLLIN);
                    } else {
                        /* Closed since (its number may be a connection now): forget it. */
                        int expected = l + 1;
                        atomic_compare_exchange_strong(&listeners[i], &expected, 0);
                    }
                }
            /* Only a kick: the thread was started with the first listener
             * (conn_accept, before any slot is taken), since this may run in a signal handler
             * (a close there frees a slot), where pthread_create may not. */
            if (want || sluice_cfg.queue_lifo)   /* lifo: a freed slot rings the doorbell */
                gate_thread_kick();
        }
        unsigned left = atomic_fetch_sub(&pause_changes_pending, mine) - mine;
        if (left == 0)
            break;
        mine = left;
    }
    if (atomic_load(&pause_appliers_awaited) != 0)
        sys_futex_wake(&pause_changes_pending, INT32_MAX, true);
}

/* Waits (bounded: 64 rounds of at most 1 ms) until no pause change is being
 * applied, or a slot is free. True: a slot is free. */
static bool settle(void)
{
    for (int round = 0; round < 64; round++) {
        if (slots_any_free())
            return true;
        uint32_t pending = atomic_load(&pause_changes_pending);
        if (pending == 0)
            return false;
        atomic_fetch_add(&pause_appliers_awaited, 1);
        sys_futex_wait(&pause_changes_pending, pending, sys_mono_ns() + 1000000u, true);
        atomic_fetch_sub(&pause_appliers_awaited, 1);
    }
    return slots_any_free();
}

/* A non-blocking accept found every slot taken while another thread is still
 * applying the change (unhiding for a slot that freed, or hiding for the one
 * just taken). Answering EAGAIN now, with the listener still shown, makes a
 * level-triggered loop spin on epoll_wait and accept until that thread is done:
 * memcached's listener thread saw up to 735 EAGAINs for one close on a worker
 * thread. So wait for the applier before answering. */
bool pause_await_applied(void)
{
    return settle();
}

/* A readiness wait begins while another thread applies a change: most often
 * the hide for the slot this thread's accept just took, absorbed by a combiner
 * that was unhiding for a close. Waiting for it first keeps the wait from
 * reporting the listener that is about to be hidden (which the next accept
 * would answer with EAGAIN). */
void pause_settle_before_wait(void)
{
    (void) settle();
}

/* Host scope, on sluice's thread before each wait for events: while paused,
 * or while idle connections wait for a slot, sleep as one of the budget's
 * sleepers instead. True: it slept. */
static bool park(uint64_t now)
{
    (void) now;
    /* Never a spin: a free slot this process cannot use (an idle queue not
     * served, say) must not bring the thread back here at once, unslept. */
    static int unslept;
    bool paused = atomic_load(&paused_flag) && sluice_cfg.conn_mode == CONN_PAUSE;
    bool queued = idle_queued();
    /* A blocking accept of this process sleeps on the budget itself and takes
     * the slot it is woken for: a wake spent on this thread would only be
     * passed on, 20 ms later. */
    if ((!paused && !queued) || (!queued && slots_blocking_waiters())) {
        unslept = 0;
        return false;
    }
    uint64_t t0 = sys_mono_ns();
    slots_host_sleep(0);
    if (sys_mono_ns() - t0 >= 1000000u) {
        unslept = 0;
    } else if (++unslept > 3) {
        static _Atomic uint32_t idle_word;   /* a timed sleep, woken by nobody */
        sys_futex_wait(&idle_word, 0, sys_mono_ns() + 10000000u, true);
    }
    if (!slots_any_free())
        return true;
    bool was_paused = atomic_load(&paused_flag);
    idle_serve();
    sync_pause();
    if (paused && !was_paused) {
        /* Shown already by a close of this process: the wake is another's. */
        slots_host_pass_on();
    } else if (paused && !atomic_load(&paused_flag)) {
        /* Shown again: if nobody here takes the slot soon, the next sleeper may. */
        static _Atomic uint32_t never;   /* a timed sleep, woken by nobody */
        sys_futex_wait(&never, 0, sys_mono_ns() + PASS_ON_NS, true);
        slots_host_pass_on();
    }
    return true;
}

/* This process left a forked connection to be watched: look soon. */
static void watch_soon(void)
{
    gate_thread_tick_within(WATCH_TICK_MS);
    gate_thread_kick();
}

/* Someone waits for a slot: the thread re-checks held slots meanwhile. */
static void slot_waiting(void)
{
    gate_thread_ensure();
    gate_thread_kick();
}

void pause_note_listener(int fd)
{
    for (int i = 0; i < MAX_LISTENERS; i++)
        if (atomic_load(&listeners[i]) == fd + 1)
            return;
    for (int i = 0; i < MAX_LISTENERS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&listeners[i], &expected, fd + 1)) {
            if (atomic_load(&paused_flag) && sluice_cfg.conn_mode == CONN_PAUSE)
                overlay_hide(fd, EPOLLIN);
            return;
        }
    }
}

void pause_init(void)
{
    slots_hook_pause(sync_pause, slot_waiting);
    gate_thread_on_tick(pause_tick);
    if (slots_host()) {
        gate_thread_on_park(park);
        slots_hook_watched(watch_soon);
    }
}

void pause_atfork_child(void)
{
    atomic_store(&pause_changes_pending, 0);
    atomic_store(&pause_appliers_awaited, 0);
    paused_now = false;
    atomic_store(&paused_flag, false);
    atomic_store(&paused_mark, 0);
    STAT_SET(conn_paused, 0);
    last_recheck = 0;
}
