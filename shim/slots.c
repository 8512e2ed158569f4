/* slots.c — connection objects and busy slots (see slots.h).
 *
 * fdtab's `conn` field holds a connection's id+1 for each descriptor of it: dup
 * adds a reference, each close drops one, the last frees it. The limit counts
 * busy slots: SLUICE_CONN_MAX entries naming the connection that holds each,
 * and a count of free ones, which is also the futex word blocking waiters
 * sleep on. Waiters are woken one per freed slot, oldest first (the kernel's
 * futex queue is FIFO). A freed slot wakes at once: the futex for blocking
 * waiters, the idle queue (hook), then the pause (hook) for listeners.
 *
 * Host scope (SLUICE_CONN_SCOPE=host): the count of free slots and the choice
 * of a slot are the shared budget's (connhost.c); this file keeps, for the
 * slots this process holds, which connection holds each, and the hooks. A
 * reserve that finds the budget full tells the pause (a listener still shown
 * must be hidden before the accept answers EAGAIN: another process took the
 * last slot), and blocking waiters sleep on the budget's shared wake word.
 *
 * The limit in force may be lowered and raised (SLUICE_CONN_MAX=auto) within
 * the slots allocated: raising counts slots free; lowering takes free slots
 * back and, for the part still held, records a debt that the next releases
 * pay instead of counting their slot free. So an admission stays the one
 * compare-and-swap on free_slots, and a fixed limit never has a debt (one
 * relaxed load per release). */
#include "slots.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "connhost.h"
#include "stats.h"
#include "sys.h"

static struct conn *objs;
static uint32_t cap;
static _Atomic uint32_t conn_hint;
static _Atomic uint32_t *busy_slot;       /* per busy slot: connection id + 1 */
static uint32_t nslots;
static _Atomic uint32_t free_slots;       /* futex word */
static _Atomic uint32_t slot_hint;
static _Atomic uint32_t slots_in_use;     /* busy slots bound to a connection */
static _Atomic int slot_waiters;
static bool host;                         /* the shared budget is the backend */
static _Atomic uint32_t limit_now;        /* the limit in force (<= nslots) */
static _Atomic uint32_t slot_debt;        /* slots to drop as they are released */
static _Atomic uint64_t *slot_since;      /* per busy slot: when it was bound */
static void (*_Atomic request_done)(uint64_t ns);

static struct {
    void (*_Atomic slot_freed)(void);
    void (*_Atomic conn_freed)(uint32_t st);
    void (*_Atomic fullness)(void);
    void (*_Atomic waiting)(void);
} hooks;

#define HOOK(name) atomic_load_explicit(&hooks.name, memory_order_acquire)

void slots_hook_idle(void (*slot_freed)(void), void (*conn_freed)(uint32_t st))
{
    atomic_store_explicit(&hooks.slot_freed, slot_freed, memory_order_release);
    atomic_store_explicit(&hooks.conn_freed, conn_freed, memory_order_release);
}

void slots_hook_pause(void (*fullness)(void), void (*waiting)(void))
{
    atomic_store_explicit(&hooks.fullness, fullness, memory_order_release);
    atomic_store_explicit(&hooks.waiting, waiting, memory_order_release);
}

int slots_init(uint32_t n, uint32_t conns)
{
    void *m = mmap(NULL, sizeof(struct conn) * conns, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *b = mmap(NULL, sizeof(uint32_t) * n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || b == MAP_FAILED) {
        if (m != MAP_FAILED)
            munmap(m, sizeof(struct conn) * conns);
        if (b != MAP_FAILED)
            munmap(b, sizeof(uint32_t) * n);
        return -1;
    }
    objs = m;
    cap = conns;
    busy_slot = b;
    nslots = n;
    atomic_store(&free_slots, n);
    atomic_store(&limit_now, n);
    return 0;
}

/* Host scope: in flight and the limit are the budget's, the same in every
 * member's statistics (what this process accepted stays its own). */
void slots_sync_stats(void)
{
    if (!host)
        return;
    if (connhost_usable()) {
        STAT_SET(conn_in_flight, connhost_connections());
        STAT_SET(conn_limit, connhost_limit());
        STAT_SET(conn_shared, 1);
        if (connhost_is_auto())
            STAT_SET(auto_limit, connhost_limit());   /* a member that never ticks too */
    } else {
        STAT_SET(conn_shared, 0);
    }
}

int slots_init_host(uint32_t limit, const char *key, uint32_t conns)
{
    uint32_t n = 0;
    if (connhost_init(limit, key, &n) != 0)
        return -1;
    connhost_say_if_settings_differ(key, limit);
    if (slots_init(n, conns) != 0)
        return -1;
    host = true;
    stats_on_render(slots_sync_stats);
    return 0;
}

bool slots_host(void)
{
    return host;
}

uint32_t slots_count(void)
{
    if (unlikely(host) && !connhost_usable())
        return 0;
    return nslots;
}

uint32_t slots_conns(void)
{
    return cap;
}

struct conn *slots_conn(uint32_t cid)
{
    return cid < cap ? &objs[cid] : NULL;
}

/* A busy slot's entry during an accept, before it knows its connection. */
#define SLOT_RESERVED UINT32_MAX

uint32_t slots_holder(uint32_t s)
{
    uint32_t v = s < nslots ? atomic_load_explicit(&busy_slot[s], memory_order_relaxed) : 0;
    return v == SLOT_RESERVED || v - 1 >= cap ? 0 : v;
}

bool slots_any_free(void)
{
    if (unlikely(host))
        return !connhost_usable() || connhost_in_use() < connhost_limit();
    return atomic_load(&free_slots) != 0;
}

bool slots_full(void)
{
    if (unlikely(host))
        return connhost_usable() && connhost_in_use() >= connhost_limit();
    return atomic_load(&slots_in_use) >= atomic_load_explicit(&limit_now, memory_order_relaxed);
}

uint32_t slots_limit(void)
{
    if (unlikely(host))
        return connhost_usable() ? connhost_limit() : 0;
    return atomic_load_explicit(&limit_now, memory_order_relaxed);
}

uint32_t slots_busy(void)
{
    return atomic_load_explicit(&slots_in_use, memory_order_relaxed);
}

/* One slot of the debt paid by a release; false if there is none. */
static bool pay_debt(void)
{
    uint32_t d = atomic_load(&slot_debt);
    do {
        if (d == 0)
            return false;
    } while (!atomic_compare_exchange_weak(&slot_debt, &d, d - 1));
    return true;
}

static void count_free(uint32_t n)
{
    atomic_fetch_add(&free_slots, n);
    if (atomic_load(&slot_waiters) != 0)
        sys_futex_wake(&free_slots, (int) n, true);
}

/* A shared budget's limit in force is its file's (connhost_set_limit); this
 * process's listeners follow it as they follow a local one. */
static void set_limit_host(uint32_t n)
{
    uint32_t old = connhost_limit();
    connhost_set_limit(n);
    if (connhost_limit() == old)
        return;
    void (*slot_freed)(void) = HOOK(slot_freed);
    if (connhost_limit() > old && slot_freed != NULL)
        slot_freed();
    void (*fullness)(void) = HOOK(fullness);
    if (fullness != NULL)
        fullness();
}

void slots_set_limit(uint32_t n)
{
    if (host) {
        set_limit_host(n);
        return;
    }
    if (n < 1)
        n = 1;
    if (n > nslots)
        n = nslots;
    uint32_t old = atomic_load(&limit_now);
    if (n == old)
        return;
    atomic_store(&limit_now, n);
    if (n > old) {
        uint32_t up = n - old;
        while (up > 0 && pay_debt())
            up--;
        if (up > 0)
            count_free(up);
        void (*slot_freed)(void) = HOOK(slot_freed);
        if (slot_freed != NULL)
            slot_freed();
    } else {
        /* Owe it all first (releases pay from now on), then pay what is free. */
        atomic_fetch_add(&slot_debt, old - n);
        for (;;) {
            uint32_t f = atomic_load(&free_slots);
            if (f == 0 || atomic_load(&slot_debt) == 0)
                break;
            if (!atomic_compare_exchange_weak(&free_slots, &f, f - 1))
                continue;
            if (!pay_debt()) {
                count_free(1);   /* a release paid it meanwhile: give it back */
                break;
            }
        }
    }
    void (*fullness)(void) = HOOK(fullness);
    if (fullness != NULL)
        fullness();
}

int slots_time_requests(void (*done)(uint64_t ns))
{
    void *m = mmap(NULL, sizeof(uint64_t) * nslots, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    atomic_store_explicit(&request_done, done, memory_order_release);
    atomic_store_explicit(&slot_since, m, memory_order_release);
    return 0;
}

static int64_t reserve_host(void)
{
    int64_t s = connhost_reserve();
    (void) connhost_usable();   /* one line now if that found the file truncated */
    if (s < 0) {
        /* Full, perhaps by another process's accept while our listeners were
         * shown: hide them before the caller answers EAGAIN, or a
         * level-triggered loop would be told again at once. */
        void (*fullness)(void) = HOOK(fullness);
        if (fullness != NULL)
            fullness();
        return -1;
    }
    atomic_store(&busy_slot[s], SLOT_RESERVED);
    return s;
}

int64_t slots_reserve(void)
{
    if (unlikely(host))
        return reserve_host();
    uint32_t f = atomic_load(&free_slots);
    do {
        if (f == 0)
            return -1;
    } while (!atomic_compare_exchange_weak(&free_slots, &f, f - 1));
    /* An empty entry exists: free_slots is counted up only after one empties. */
    for (uint32_t i = atomic_load(&slot_hint);; i++) {
        uint32_t id = i % nslots, zero = 0;
        if (atomic_load_explicit(&busy_slot[id], memory_order_relaxed) == 0
            && atomic_compare_exchange_strong(&busy_slot[id], &zero, SLOT_RESERVED)) {
            atomic_store_explicit(&slot_hint, id + 1, memory_order_relaxed);
            return id;
        }
    }
}

void slots_bind(uint32_t s, uint32_t cid)
{
    atomic_store(&busy_slot[s], cid + 1);
    _Atomic uint64_t *since = atomic_load_explicit(&slot_since, memory_order_relaxed);
    if (since != NULL)
        atomic_store_explicit(&since[s], sys_mono_ns(), memory_order_relaxed);
}

/* Empties busy slot s (its owner's to empty), counts it free (or pays the
 * debt of a lowered limit with it), wakes one waiter. */
static inline void untake_local(uint32_t s)
{
    atomic_store(&busy_slot[s], 0);
    if (atomic_load_explicit(&slot_debt, memory_order_relaxed) != 0 && pay_debt())
        return;
    atomic_fetch_add(&free_slots, 1);
    if (atomic_load(&slot_waiters) != 0)
        sys_futex_wake(&free_slots, 1, true);
}

void slots_untake(uint32_t s)
{
    if (unlikely(host)) {
        atomic_store(&busy_slot[s], 0);
        connhost_untake(s);
        (void) connhost_usable();   /* one line now if that found the file truncated */
        return;
    }
    untake_local(s);
}

int64_t slots_take(uint32_t cid)
{
    int64_t s = slots_reserve();
    if (s >= 0)
        slots_bind((uint32_t) s, cid);
    return s;
}

/* Host scope: slot s holds a connection now (not only a reservation); true
 * if the budget is full. */
static bool held_host(uint32_t s)
{
    connhost_bound(s);
    return slots_full();
}

void slots_held(uint32_t s)
{
    STAT_ADD(conn_busy, 1);
    /* Process scope: the pool may have become full. Host scope: whether it is
     * full is the shared count's to say. */
    uint32_t in_use = atomic_fetch_add(&slots_in_use, 1) + 1;
    if (unlikely(host) ? held_host(s) : in_use >= atomic_load_explicit(&limit_now, memory_order_relaxed)) {
        void (*fullness)(void) = HOOK(fullness);
        if (fullness != NULL)
            fullness();
    }
}

void slots_release(uint32_t s)
{
    STAT_ADD(conn_busy, -1);
    _Atomic uint64_t *since = atomic_load_explicit(&slot_since, memory_order_relaxed);
    if (since != NULL) {
        void (*done)(uint64_t) = atomic_load_explicit(&request_done, memory_order_acquire);
        uint64_t t0 = atomic_load_explicit(&since[s], memory_order_relaxed), now = sys_mono_ns();
        if (done != NULL && t0 != 0 && now > t0)
            done(now - t0);
    }
    uint32_t before = atomic_fetch_sub(&slots_in_use, 1);
    if (unlikely(host)) {
        atomic_store(&busy_slot[s], 0);
        before = connhost_untake(s);
        (void) connhost_usable();   /* one line now if that found the file truncated */
    } else {
        untake_local(s);
    }
    /* Idle connections that asked first get it before the listeners wake. */
    void (*slot_freed)(void) = HOOK(slot_freed);
    if (slot_freed != NULL)
        slot_freed();
    void (*fullness)(void) = HOOK(fullness);
    if (before >= atomic_load_explicit(&limit_now, memory_order_relaxed) && fullness != NULL)
        fullness();
}

void slots_release_unserved(uint32_t s)
{
    /* Its stamp is the holder's alone until the release below. */
    _Atomic uint64_t *since = atomic_load_explicit(&slot_since, memory_order_relaxed);
    if (since != NULL)
        atomic_store_explicit(&since[s], 0, memory_order_relaxed);
    slots_release(s);
}

int64_t slots_new_conn(void)
{
    uint32_t hint = atomic_load_explicit(&conn_hint, memory_order_relaxed);
    for (uint32_t n = 0; n < cap; n++) {
        uint32_t id = (hint + n) % cap, zero = 0;
        if (atomic_load_explicit(&objs[id].alloc, memory_order_relaxed) == 0
            && atomic_compare_exchange_strong(&objs[id].alloc, &zero, 1)) {
            atomic_store_explicit(&conn_hint, id + 1, memory_order_relaxed);
            return id;
        }
    }
    return -1;
}

void conn_release(uint32_t id_plus_one)
{
    uint32_t cid = id_plus_one - 1;
    if (cid >= cap)
        return;
    struct conn *c = &objs[cid];
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    int saved = errno;
    uint32_t st = atomic_exchange(&c->st, 0);
    void (*conn_freed)(uint32_t) = HOOK(conn_freed);
    if (conn_freed != NULL)
        conn_freed(st);
    STAT_ADD(conn_in_flight, -1);
    /* Free the object before the slot: the accept the slot wakes needs one. */
    atomic_store(&c->alloc, 0);
    if (conn_st_busy(st) && (st & CONN_ANSWERED))
        slots_release(conn_st_slot(st));
    else if (conn_st_busy(st))
        slots_release_unserved(conn_st_slot(st));
    else
        STAT_ADD(conn_idle, -1);
    errno = saved;
}

void conn_addref(uint32_t id_plus_one)
{
    if (id_plus_one - 1 < cap)
        atomic_fetch_add(&objs[id_plus_one - 1].refs, 1);
}

static void wait_cancelled(void *unused)
{
    (void) unused;
    atomic_fetch_sub(&slot_waiters, 1);
}

static int sleep_for_slot(uint64_t deadline)
{
    if (unlikely(host)) {
        /* On the budget's shared wake word, counted as a sleeper. */
        while (!slots_any_free()) {
            int r = connhost_sleep(deadline, true);
            if (r == ETIMEDOUT) {
                errno = EAGAIN;
                return -1;
            }
            if (r == EINTR)
                return -1;
        }
        return 0;
    }
    while (atomic_load(&free_slots) == 0) {
        if (deadline != 0 && sys_mono_ns() >= deadline) {
            errno = EAGAIN;
            return -1;
        }
        if (sys_futex_wait_cancellable(&free_slots, 0, deadline, true) == EINTR)
            return -1;
    }
    return 0;
}

/* accept and read are cancellation points: so is this wait. (A frame of its
 * own, so that nothing of the caller lives across the cleanup's setjmp.) */
static int sleep_for_slot_cancellable(uint64_t deadline)
{
    volatile int r = 0;
    pthread_cleanup_push(wait_cancelled, NULL);
    r = sleep_for_slot(deadline);
    pthread_cleanup_pop(0);
    return r;
}

/* Waits for a free slot as accept on listener fd would wait for a connection.
 * Without SO_RCVTIMEO the futex wait has no timeout, so a signal makes it fail
 * with EINTR or restart exactly as the kernel decides for accept (SA_RESTART).
 * With SO_RCVTIMEO, accept gives EAGAIN at the timeout and EINTR on any
 * handled signal; a timed futex wait does the same. */
int slots_wait(int fd)
{
    struct timeval tv = { 0, 0 };
    socklen_t tvlen = sizeof tv;
    getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen);
    uint64_t span = (uint64_t) tv.tv_sec * 1000000000u + (uint64_t) tv.tv_usec * 1000u;
    uint64_t deadline = span != 0 ? sys_mono_ns() + span : 0;
    atomic_fetch_add(&slot_waiters, 1);
    void (*waiting)(void) = HOOK(waiting);
    if (waiting != NULL)
        waiting();
    int r = sleep_for_slot_cancellable(deadline);
    atomic_fetch_sub(&slot_waiters, 1);
    return r;
}

int slots_host_sleep(uint64_t deadline_ns)
{
    return host ? connhost_sleep(deadline_ns, false) : 0;
}

void slots_host_pass_on(void)
{
    if (host)
        connhost_pass_on();
}

bool slots_blocking_waiters(void)
{
    return atomic_load(&slot_waiters) != 0;
}

int slots_host_tick(uint64_t now)
{
    return host ? connhost_tick(now) : 0;
}

uint32_t slots_host_in_use(void)
{
    return host && connhost_usable() ? connhost_in_use() : 0;
}

void slots_hook_watched(void (*soon)(void))
{
    connhost_hook_watched(soon);
}

void slots_atfork_prepare(void)
{
    if (!host || !connhost_usable())
        return;
    for (uint32_t s = 0; s < nslots; s++) {
        uint32_t v = slots_holder(s);
        if (v != 0)
            connhost_mark_forked(s, atomic_load(&objs[v - 1].fd));
    }
}

void slots_atfork_child(void)
{
    if (host)
        connhost_atfork_child();
    if (objs != NULL) {
        /* Zero pages again without touching the untouched ones. */
        madvise(objs, sizeof(struct conn) * cap, MADV_DONTNEED);
        madvise(busy_slot, sizeof(uint32_t) * nslots, MADV_DONTNEED);
    }
    atomic_store(&conn_hint, 0);
    atomic_store(&free_slots, atomic_load(&limit_now));
    atomic_store(&slot_debt, 0);
    atomic_store(&slots_in_use, 0);
    atomic_store(&slot_waiters, 0);
}
