/* fsgate.c — the filesystem I/O semaphore's front and its process scope (host
 * scope lives in fshost.c).
 *
 * Process scope: one 64-bit word holds the tokens in use (low bits) and the
 * count of operations (high bits), so the uncontended acquire is a single
 * compare-and-swap and the release a single fetch-and-sub: no system call, no
 * second atomic for the statistics. When the budget is full a caller queues a
 * node on its own stack (FIFO, under a small futex lock taken only on this slow
 * path) and sleeps on the node's own futex word; a release that sees waiters
 * hands its token straight to the head of the queue, so a newcomer cannot
 * overtake a sleeper and nobody starves. A waiter whose SLUICE_FS_TIMEOUT
 * passes takes itself out of the queue under the same lock.
 *
 * Host scope (fshost.c) has a fast path of its own, also without a lock or a
 * system call: fshost_try; this word then only counts, for the statistics.
 *
 * Re-entrancy: a thread-local depth counts the gated calls this thread is
 * inside. It rises before a token is sought and falls only after it is given
 * back, so a signal handler (or a nested wrapper: sendfile file to file) that
 * runs at any point in between takes no token and cannot wait on its own
 * thread. After fork the child starts with the whole budget; a token the
 * forking thread was holding belongs to the parent and is not returned twice. */
#include "fsgate.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fshost.h"
#include "log.h"
#include "stats.h"

#define INUSE_BITS 21                    /* SLUICE_FS_MAX <= 1,000,000 < 2^21 */
#define INUSE_MASK ((UINT64_C(1) << INUSE_BITS) - 1)
#define OPS_ONE (UINT64_C(1) << INUSE_BITS)

enum fs_mode { FS_OFF = 0, FS_PROCESS, FS_HOST };

struct waiter {
    struct waiter *next, *prev;
    _Atomic uint32_t granted;
};

static struct {
    _Atomic uint64_t word;               /* in use | operations << INUSE_BITS */
    _Atomic uint32_t nwaiters;           /* queued (or about to queue) callers */
    _Atomic uint32_t lock;               /* 0 free, 1 held, 2 held with sleepers */
    struct waiter *head, *tail;          /* under lock */
} __attribute__((aligned(64))) pg;

static enum fs_mode mode;
static uint32_t limit;
static uint64_t timeout_ns;

static __thread uint32_t depth;          /* gated calls this thread is inside */
static __thread uint8_t orphan;          /* holds a token the parent will return */

uint64_t fsgate_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

int fsgate_futex_wait(_Atomic uint32_t *word, uint32_t val, uint64_t deadline_ns, int private_futex)
{
    struct timespec ts, *tp = NULL;
    if (deadline_ns != 0) {
        ts.tv_sec = (time_t) (deadline_ns / 1000000000u);
        ts.tv_nsec = (long) (deadline_ns % 1000000000u);
        tp = &ts;
    }
    int op = FUTEX_WAIT_BITSET | (private_futex ? FUTEX_PRIVATE_FLAG : 0);
    if (syscall(SYS_futex, word, op, val, tp, NULL, FUTEX_BITSET_MATCH_ANY) == 0)
        return 0;
    return errno;
}

void fsgate_futex_wake(_Atomic uint32_t *word, int n, int private_futex)
{
    syscall(SYS_futex, word, FUTEX_WAKE | (private_futex ? FUTEX_PRIVATE_FLAG : 0), n, NULL, NULL, 0);
}

static void queue_lock(void)
{
    uint32_t c = 0;
    if (atomic_compare_exchange_strong(&pg.lock, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(&pg.lock, 2);
    while (c != 0) {
        fsgate_futex_wait(&pg.lock, 2, 0, 1);
        c = atomic_exchange(&pg.lock, 2);
    }
}

static void queue_unlock(void)
{
    if (atomic_exchange(&pg.lock, 0) == 2)
        fsgate_futex_wake(&pg.lock, 1, 1);
}

static bool take_if_free(void)
{
    uint64_t w = atomic_load(&pg.word);
    while ((w & INUSE_MASK) < limit)
        if (atomic_compare_exchange_weak(&pg.word, &w, w + 1 + OPS_ONE))
            return true;
    return false;
}

static void unlink_waiter(struct waiter *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        pg.head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        pg.tail = n->prev;
    atomic_fetch_sub(&pg.nwaiters, 1);
}

static void timed_out(uint64_t waited_ns)
{
    static _Atomic int said;
    STAT_ADD(fs_timeouts, 1);
    if (!atomic_exchange(&said, 1))
        log_warn("SLUICE_FS_TIMEOUT: no filesystem token within %llu ms; the call failed with "
                 "EAGAIN (said once)", (unsigned long long) (waited_ns / 1000000u));
}

/* 0 with a token, 1 when the timeout passed first. *waited_ns: time asleep. */
static int process_wait(uint64_t timeout, uint64_t *waited_ns)
{
    struct waiter self = { NULL, NULL, 0 };
    queue_lock();
    /* Counted before looking again, so that a release either leaves a token we
     * see here or sees us and hands its token over. */
    atomic_fetch_add(&pg.nwaiters, 1);
    if (pg.head == NULL && take_if_free()) {
        atomic_fetch_sub(&pg.nwaiters, 1);
        queue_unlock();
        return 0;
    }
    self.prev = pg.tail;
    if (pg.tail != NULL)
        pg.tail->next = &self;
    else
        pg.head = &self;
    pg.tail = &self;
    queue_unlock();

    uint64_t start = fsgate_now_ns();
    uint64_t deadline = timeout != 0 ? start + timeout : 0;
    int r = 0;
    while (atomic_load(&self.granted) == 0) {
        if (fsgate_futex_wait(&self.granted, 0, deadline, 1) != ETIMEDOUT)
            continue;
        queue_lock();
        bool granted = atomic_load(&self.granted) != 0;
        if (!granted)
            unlink_waiter(&self);
        queue_unlock();
        r = granted ? 0 : 1;
        break;
    }
    *waited_ns = fsgate_now_ns() - start + 1;
    return r;
}

/* A release found sleepers: give freed tokens to the head of the queue. */
static void process_handoff(void)
{
    queue_lock();
    while (pg.head != NULL && take_if_free()) {
        struct waiter *n = pg.head;
        unlink_waiter(n);
        /* The node lives on the waiter's stack and may be gone as soon as it
         * sees the grant; a wake on a dead address is a harmless spurious one. */
        atomic_store(&n->granted, 1);
        fsgate_futex_wake(&n->granted, 1, 1);
    }
    queue_unlock();
}

/* Out of line and cold, so that the fast path needs no stack frame. */
__attribute__((noinline, cold)) static int acquire_slow(void)
{
    int saved = errno;
    uint64_t waited = 0;
    int r;
    if (mode == FS_PROCESS) {
        r = process_wait(timeout_ns, &waited);
    } else {
        r = fshost_acquire(timeout_ns, &waited);
        if (r == 0) {
            atomic_fetch_add(&pg.word, 1 + OPS_ONE);
        } else if (r == 2) {
            r = 0;
            orphan = 1;   /* the shared state failed us: this call runs ungated */
        }
    }
    if (waited != 0) {
        STAT_ADD(fs_waits, 1);
        STAT_ADD(fs_wait_ns, (int64_t) waited);
    }
    if (r != 0) {
        timed_out(waited);
        depth--;
        errno = EAGAIN;
        return -1;
    }
    errno = saved;
    return 0;
}

int fsgate_acquire(void)
{
    if (unlikely(depth++ != 0))
        return 0;
    if (likely(mode == FS_PROCESS)) {
        uint64_t w = atomic_load_explicit(&pg.word, memory_order_relaxed);
        if (likely((w & INUSE_MASK) < limit)
            && likely(atomic_load_explicit(&pg.nwaiters, memory_order_relaxed) == 0)
            && likely(atomic_compare_exchange_strong(&pg.word, &w, w + 1 + OPS_ONE)))
            return 0;
    } else if (mode == FS_HOST) {
        if (likely(fshost_try())) {
            atomic_fetch_add_explicit(&pg.word, 1 + OPS_ONE, memory_order_relaxed);
            return 0;
        }
    } else {
        orphan = 1;
        return 0;
    }
    return acquire_slow();
}

__attribute__((noinline, cold)) static void release_slow(void)
{
    if (orphan) {
        orphan = 0;
    } else if (mode == FS_PROCESS) {
        /* The token went back in the fast path; sleepers are waiting for it. */
        KEEP_ERRNO(process_handoff());
    } else {
        atomic_fetch_sub(&pg.word, 1);
        KEEP_ERRNO(fshost_release());
    }
    /* Only now: a signal handler that ran before this line saw depth > 0. */
    depth = 0;
}

void fsgate_release(void)
{
    if (unlikely(depth != 1)) {
        depth--;
        return;
    }
    if (likely(mode == FS_PROCESS) && likely(!orphan)) {
        atomic_fetch_sub(&pg.word, 1);
        if (likely(atomic_load(&pg.nwaiters) == 0)) {
            depth = 0;
            return;
        }
    }
    release_slow();
}

void fsgate_sync_stats(void)
{
    uint64_t w = atomic_load_explicit(&pg.word, memory_order_relaxed);
    STAT_SET(fs_in_use, (int64_t) (w & INUSE_MASK));
    STAT_SET(fs_ops, (int64_t) (w >> INUSE_BITS));
}

void fsgate_init(void)
{
    limit = sluice_cfg.fs_max;
    timeout_ns = sluice_cfg.fs_timeout_ns;
    if (limit == 0)
        return;
    if (sluice_cfg.fs_scope == FS_SCOPE_HOST)
        mode = fshost_init(limit, sluice_cfg.fs_key) == 0 ? FS_HOST : FS_OFF;
    else
        mode = FS_PROCESS;
}

void fsgate_atfork_child(void)
{
    /* Other threads did not come along: their tokens, queue nodes and any hold
     * on the queue lock are gone. Keep the operation count. */
    uint64_t ops = atomic_load(&pg.word) & ~INUSE_MASK;
    atomic_store(&pg.word, ops);
    atomic_store(&pg.nwaiters, 0);
    atomic_store(&pg.lock, 0);
    pg.head = pg.tail = NULL;
    if (depth != 0)
        orphan = 1;
    if (mode == FS_HOST)
        fshost_atfork_child();
}
