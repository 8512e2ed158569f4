/* connhost.c — host scope of the connection limit: one budget of busy slots
 * for every process of a user that names the same SLUICE_CONN_KEY.
 *
 * Where: /dev/shm/sluice-UID/conn-KEY, made, checked and mapped exactly as the
 * filesystem budget's file is (fshost_file.c: the user's own 0700 directory, no
 * link followed, O_TMPFILE + link, pages allocated first, owner, mode, size,
 * magic, version and uid checked, a truncation survived). Its layout is in
 * connhost.h: a header, a robust lock, the count word (slots in use | threads
 * asleep for one), a wake word, one record per member process (pid, start
 * time, slots held) and one entry per slot (its holder; for a connection that
 * crossed a fork, its TCP 4-tuple and socket inode).
 *
 * The fast path takes no lock and makes no system call: a reserve is an add on
 * this process's own record ("inside", and one slot), a compare-and-swap on the
 * count while it is below the limit, and a compare-and-swap that claims a free
 * entry; a release is the reverse, and makes a system call (FUTEX_WAKE of one)
 * only when the count says someone sleeps.
 *
 * Sleepers are the paused processes' sluice threads and blocking accepts. They
 * count themselves in the count's high half and sleep on the shared wake word
 * (a process-shared futex): each release wakes exactly one, so one freed slot
 * brings one process back and the others sleep on. A sleeper wakes every
 * CONNHOST_CHECK_NS anyway: then (one at a time across the budget, through
 * last_check) it checks the records of processes holding slots: a process that
 * is gone (pid and start time, fshost_alive) gives its slots back, and its
 * FORKED ones become WATCHED, since a child may hold them. A process that died
 * between its two updates leaves the count ambiguous by one: a recount stops
 * reserves, waits (bounded) for the live members to be outside, and sets the
 * count to the entries in use. A stopped process is alive: it keeps its slots.
 *
 * The lock (robust, process-shared, bounded in time) is taken only to claim a
 * record, to recover and to watch; a mutex that stays taken turns the limit off
 * with one line. So does a state that shrinks under the mapping (SIGBUS guard).
 * Sleeping for a slot, forked connections and their watch are
 * connhost_watch.c's. */
#include "connhost.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "connhost_int.h"
#include "fshost_file.h"
#include "fshost_recover.h"
#include "log.h"
#include "sys.h"

struct connhost_state *connhost_st;
static uint32_t limit_local;
static char state_path[SLUICE_PATH_MAX];
static _Atomic int unusable, truncated;
int32_t connhost_my_pid;
static uint64_t my_start;
struct connhost_holder *_Atomic connhost_me;
static _Atomic int32_t me_index;   /* connhost_me's index + 1 */

void connhost_broken(const char *what)
{
    if (!atomic_exchange(&unusable, 1))
        log_error("SLUICE_CONN_SCOPE=host: %s: %s; running without the connection limit",
                  state_path, what);
}

bool connhost_usable(void)
{
    if (likely(!atomic_load_explicit(&unusable, memory_order_relaxed)))
        return connhost_st != NULL;
    static _Atomic int said;
    if (atomic_load(&truncated) && !atomic_exchange(&said, 1))
        log_error("SLUICE_CONN_SCOPE=host: %s: the state file shrank under us (truncated?); "
                  "running without the connection limit", state_path);
    return false;
}

uint32_t connhost_limit(void)
{
    return atomic_load_explicit(&connhost_st->limit_now, memory_order_relaxed);
}

uint32_t connhost_slots(void)
{
    return limit_local;
}

uint32_t connhost_in_use(void)
{
    return CONNHOST_LOW(atomic_load(&connhost_st->count));
}

void connhost_bound(uint32_t s)
{
    if (s < limit_local)
        atomic_fetch_or_explicit(&connhost_st->slots[s].own, CONNHOST_BOUND, memory_order_relaxed);
}

uint32_t connhost_connections(void)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < limit_local; s++)
        n += (atomic_load_explicit(&connhost_st->slots[s].own, memory_order_relaxed)
              & (CONNHOST_BOUND | CONNHOST_WATCHED)) != 0;
    return n;
}

/* --- the file ---------------------------------------------------------------------- */

static size_t conn_size(uint32_t limit)
{
    return connhost_size(limit);
}

static void conn_init_file(void *mem, uint32_t limit)
{
    struct connhost_state *st = mem;
    hostfile_init_lock(&st->lock);
    /* auto starts from where its controller will: one slot, until the first
     * member's controller runs (its first tick). */
    st->is_auto = sluice_cfg.conn_auto;
    atomic_store(&st->limit_now, sluice_cfg.conn_auto ? 1 : limit);
}

static const struct hostfile_kind conn_kind = {
    CONNHOST_FILE_FMT, CONNHOST_MAGIC, CONNHOST_VERSION, conn_size, false, conn_init_file,
    &unusable, &truncated,
};

/* --- telling sluice's thread --------------------------------------------------------- */

static void (*_Atomic on_watched)(void);

void connhost_hook_watched(void (*fn)(void))
{
    atomic_store_explicit(&on_watched, fn, memory_order_release);
}

_Atomic bool connhost_i_made_watched;

void connhost_made_watched(void)
{
    atomic_store(&connhost_i_made_watched, true);
    void (*fn)(void) = atomic_load_explicit(&on_watched, memory_order_acquire);
    if (fn != NULL)
        fn();
}

/* --- the lock, records, recovery ------------------------------------------------------ */

static void know_myself(void)
{
    if (connhost_my_pid != 0)
        return;
    char state;
    my_start = fshost_start_time(getpid(), &state);
    connhost_my_pid = (int32_t) getpid();
    atomic_store(&connhost_me, NULL);
    atomic_store(&me_index, 0);
}

int connhost_lock(void)
{
    int r = hostfile_lock(&connhost_st->lock);
    if (r == EOWNERDEAD) {
        /* Its holder died inside: the tables may be half-updated. */
        atomic_store(&connhost_st->recount, 0);
        connhost_reap(true);
        return 0;
    }
    if (r == 0)
        return 0;
    connhost_broken(r == ETIMEDOUT ? "its lock stayed taken for 3 seconds" : "its lock is unusable");
    return -1;
}

void connhost_unlock(void)
{
    pthread_mutex_unlock(&connhost_st->lock);
}

void connhost_wake(int n)
{
    atomic_fetch_add(&connhost_st->wake, 1);
    sys_futex_wake(&connhost_st->wake, n, false);
}

/* Takes n slots back from the count, never below zero. */
void connhost_count_sub(uint32_t n)
{
    uint64_t c = atomic_load(&connhost_st->count);
    for (;;) {
        uint32_t take = CONNHOST_LOW(c) < n ? CONNHOST_LOW(c) : n;
        if (take == 0 || atomic_compare_exchange_weak(&connhost_st->count, &c, c - take))
            return;
    }
}

/* Entry s leaves its holder: a FORKED one is WATCHED from now on (still
 * counted), any other is freed. True if it was freed. */
static bool let_go(struct connhost_slot *e, uint32_t own)
{
    if (own & CONNHOST_FORKED) {
        if (atomic_compare_exchange_strong(&e->own, &own, CONNHOST_FORKED | CONNHOST_WATCHED)) {
            atomic_fetch_add(&connhost_st->watched, 1);
            return false;
        }
        return false;
    }
    return atomic_compare_exchange_strong(&e->own, &own, 0);
}

/* The entries of record index idx (dead): freed, or WATCHED. How many freed. */
static uint32_t let_go_of_holder(uint32_t idx)
{
    uint32_t freed = 0;
    for (uint32_t s = 0; s < limit_local; s++) {
        struct connhost_slot *e = &connhost_st->slots[s];
        uint32_t own = atomic_load(&e->own);
        if (!(own & CONNHOST_WATCHED) && (own & CONNHOST_OWNER_MASK) == idx + 1)
            freed += let_go(e, own);
    }
    return freed;
}

/* A dead member's threads that were asleep are no longer. */
static void drop_sleepers(struct connhost_holder *h)
{
    uint32_t n = atomic_exchange(&h->sleepers, 0);
    uint64_t c = atomic_load(&connhost_st->count);
    for (;;) {
        uint32_t take = CONNHOST_HIGH(c) < n ? CONNHOST_HIGH(c) : n;
        if (take == 0 || atomic_compare_exchange_weak(&connhost_st->count, &c,
                                                      c - (uint64_t) take * CONNHOST_HIGH_ONE))
            return;
    }
}

static void free_record(struct connhost_holder *h)
{
    atomic_store(&h->word, 0);
    atomic_store(&h->sleepers, 0);
    atomic_store(&h->pid, 0);
    h->start = 0;
}

/* Someone died between its two updates: stop reserves, wait for the live
 * members to be outside theirs, and set the count to the entries in use.
 * Under the lock. */
static void recount(void)
{
    atomic_store(&connhost_st->recount, 1);
    uint64_t deadline = sys_mono_ns() + CONNHOST_QUIESCE_NS;
    for (int i = 0; i < CONNHOST_NHOLDERS; i++) {
        struct connhost_holder *h = &connhost_st->holders[i];
        while (atomic_load(&h->pid) > 0 && CONNHOST_HIGH(atomic_load(&h->word)) != 0
               && sys_mono_ns() < deadline) {
            bool stopped;
            if (!fshost_alive(atomic_load(&h->pid), h->start, &stopped))
                break;
            sched_yield();
        }
    }
    for (int i = 0; i < CONNHOST_NHOLDERS; i++) {
        struct connhost_holder *h = &connhost_st->holders[i];
        int32_t pid = atomic_load(&h->pid);
        bool stopped;
        if (pid != 0 && !fshost_alive(pid, h->start, &stopped)) {
            let_go_of_holder((uint32_t) i);
            drop_sleepers(h);
            free_record(h);
        }
    }
    uint32_t used = 0;
    for (uint32_t s = 0; s < limit_local; s++)
        used += atomic_load(&connhost_st->slots[s].own) != 0;
    uint64_t c = atomic_load(&connhost_st->count);
    while (!atomic_compare_exchange_weak(&connhost_st->count, &c,
                                         (c & ~UINT64_C(0xffffffff)) | used))
        ;
    atomic_store(&connhost_st->recount, 0);
}

/* Gives back the slots of members that are gone. all: every record (else only
 * those holding slots or asleep: the cheap, frequent check). Under the lock. */
void connhost_reap(bool all)
{
    bool ambiguous = false;
    uint32_t freed = 0;
    for (int i = 0; i < CONNHOST_NHOLDERS; i++) {
        struct connhost_holder *h = &connhost_st->holders[i];
        int32_t pid = atomic_load(&h->pid);
        uint64_t w = atomic_load(&h->word);
        bool stopped;
        if (pid == 0 || (!all && w == 0 && atomic_load(&h->sleepers) == 0)
            || fshost_alive(pid, h->start, &stopped))
            continue;
        if (CONNHOST_HIGH(w) != 0) {
            ambiguous = true;             /* died between its two updates */
            continue;
        }
        uint32_t n = let_go_of_holder((uint32_t) i);
        connhost_count_sub(n);
        drop_sleepers(h);
        freed += n;
        free_record(h);
    }
    if (ambiguous) {
        recount();
        freed = limit_local;
    }
    uint64_t c = atomic_load(&connhost_st->count);
    if (freed != 0 && CONNHOST_HIGH(c) != 0 && CONNHOST_LOW(c) < connhost_limit())
        connhost_wake(freed > INT_MAX ? INT_MAX : (int) freed);
}

/* This process's record, claimed if needed (NULL: the table is full). */
struct connhost_holder *connhost_my_holder(void)
{
    struct connhost_holder *h = atomic_load(&connhost_me);
    if (h != NULL)
        return h;
    know_myself();
    if (connhost_lock() != 0)
        return NULL;
    for (int pass = 0; pass < 2 && h == NULL; pass++) {
        for (int i = 0; i < CONNHOST_NHOLDERS; i++) {
            struct connhost_holder *c = &connhost_st->holders[i];
            if (atomic_load(&c->pid) == 0) {
                c->start = my_start;
                atomic_store(&c->word, 0);
                atomic_store(&c->pid, connhost_my_pid);
                atomic_store(&me_index, i + 1);
                atomic_store(&connhost_me, c);
                h = c;
                break;
            }
        }
        if (h == NULL)
            connhost_reap(true);
    }
    connhost_unlock();
    if (h == NULL) {
        static _Atomic int said;
        if (!atomic_exchange(&said, 1))
            log_warn("SLUICE_CONN_SCOPE=host: more than %d processes share the key; "
                     "the excess runs without the connection limit", CONNHOST_NHOLDERS);
    }
    return h;
}

/* --- reserve and release ---------------------------------------------------------- */

/* A free entry for record index me (count already taken): claimed. */
static int64_t claim_entry(uint32_t me)
{
    uint32_t start = atomic_load_explicit(&connhost_st->hint, memory_order_relaxed);
    for (uint32_t n = 0; n < 2 * limit_local; n++) {
        uint32_t s = (start + n) % limit_local, zero = 0;
        struct connhost_slot *e = &connhost_st->slots[s];
        if (atomic_load_explicit(&e->own, memory_order_relaxed) == 0
            && atomic_compare_exchange_strong(&e->own, &zero, me)) {
            atomic_store_explicit(&connhost_st->hint, s + 1, memory_order_relaxed);
            return s;
        }
    }
    return -1;   /* the count and the table disagree: damaged */
}

int64_t connhost_reserve(void)
{
    struct connhost_holder *h = atomic_load_explicit(&connhost_me, memory_order_relaxed);
    if (unlikely(h == NULL)) {
        h = connhost_my_holder();
        if (h == NULL)
            return -1;
    }
    uint32_t me = (uint32_t) atomic_load_explicit(&me_index, memory_order_relaxed);
    /* Inside first (and a slot noted), then look for a recount: a recount
     * raises its flag first, then looks at us, so one sees the other. */
    atomic_fetch_add(&h->word, CONNHOST_HIGH_ONE + 1);
    if (likely(atomic_load(&connhost_st->recount) == 0)) {
        uint64_t c = atomic_load_explicit(&connhost_st->count, memory_order_relaxed);
        uint32_t limit = atomic_load_explicit(&connhost_st->limit_now, memory_order_relaxed);
        while (CONNHOST_LOW(c) < limit) {
            if (atomic_compare_exchange_weak(&connhost_st->count, &c, c + 1)) {
                int64_t s = claim_entry(me);
                if (unlikely(s < 0)) {
                    connhost_count_sub(1);
                    break;
                }
                atomic_fetch_sub(&h->word, CONNHOST_HIGH_ONE);
                return s;
            }
        }
    }
    atomic_fetch_sub(&h->word, CONNHOST_HIGH_ONE + 1);
    return -1;
}

/* A release while a recount runs: under the lock, after it. */
static uint32_t untake_locked(struct connhost_holder *h, struct connhost_slot *e)
{
    if (connhost_lock() != 0)
        return 0;
    uint32_t before = CONNHOST_LOW(atomic_load(&connhost_st->count));
    uint32_t own = atomic_load(&e->own);
    if (!(own & CONNHOST_WATCHED) && own != 0) {
        if (let_go(e, own))
            connhost_count_sub(1);
        if (CONNHOST_LOW(atomic_load(&h->word)) != 0)
            atomic_fetch_sub(&h->word, 1);
    }
    bool wake = CONNHOST_HIGH(atomic_load(&connhost_st->count)) != 0;
    connhost_unlock();
    if (wake)
        connhost_wake(1);
    return before;
}

uint32_t connhost_untake(uint32_t s)
{
    struct connhost_holder *h = atomic_load_explicit(&connhost_me, memory_order_relaxed);
    if (h == NULL || s >= limit_local || !connhost_usable())
        return 0;
    struct connhost_slot *e = &connhost_st->slots[s];
    int saved = errno;
    atomic_fetch_add(&h->word, CONNHOST_HIGH_ONE);
    if (unlikely(atomic_load(&connhost_st->recount) != 0)) {
        atomic_fetch_sub(&h->word, CONNHOST_HIGH_ONE);
        uint32_t before = untake_locked(h, e);
        errno = saved;
        return before;
    }
    uint32_t own = atomic_load(&e->own);
    uint64_t c = atomic_load_explicit(&connhost_st->count, memory_order_relaxed);
    if (unlikely(own & CONNHOST_FORKED)) {
        /* Another process may hold the connection still: watched, still counted. */
        let_go(e, own);
        atomic_fetch_sub(&h->word, CONNHOST_HIGH_ONE + 1);
        connhost_made_watched();
        errno = saved;
        return CONNHOST_LOW(c);
    }
    atomic_store(&e->own, 0);
    while (CONNHOST_LOW(c) != 0 && !atomic_compare_exchange_weak(&connhost_st->count, &c, c - 1))
        ;
    atomic_fetch_sub(&h->word, CONNHOST_HIGH_ONE + 1);
    if (unlikely(CONNHOST_HIGH(c) != 0))
        connhost_wake(1);
    errno = saved;
    return CONNHOST_LOW(c);
}

/* --- start-up and fork ----------------------------------------------------------------- */

void connhost_atfork_child(void)
{
    /* The parent's record is the parent's: the child claims its own. */
    connhost_my_pid = 0;
    atomic_store(&connhost_me, NULL);
    atomic_store(&me_index, 0);
}

int connhost_init(uint32_t limit, const char *key, uint32_t *limit_out)
{
    void *m = NULL;
    size_t len = 0;
    const char *why = NULL;
    snprintf(state_path, sizeof state_path, "%s", key);
    if (hostfile_map(&conn_kind, limit, key, state_path, sizeof state_path, &m, &len, &why) != 0) {
        connhost_broken(why);
        return -1;
    }
    connhost_st = m;
    limit_local = connhost_st->limit;
    *limit_out = limit_local;
    /* Records under our pid and start time are from before an exec of this
     * same process: whatever they held, nobody here holds it now. */
    know_myself();
    if (connhost_lock() != 0)
        return -1;
    for (int i = 0; i < CONNHOST_NHOLDERS; i++) {
        struct connhost_holder *h = &connhost_st->holders[i];
        if (atomic_load(&h->pid) == connhost_my_pid && h->start == my_start) {
            if (CONNHOST_HIGH(atomic_load(&h->word)) == 0) {
                connhost_count_sub(let_go_of_holder((uint32_t) i));
                free_record(h);
            } else {
                atomic_store(&h->pid, -1);    /* gone for certain: a recount drops it */
            }
        }
    }
    connhost_reap(true);
    connhost_unlock();
    /* No record yet: a process that never accepts (a handler exec'd by a
     * member, a shell) takes none; the first accept claims it. */
    return 0;
}
