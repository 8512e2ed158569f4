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

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fshost.h"
#include "log.h"
#include "stats.h"
#include "sys.h"

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

static void queue_lock(void)
{
    uint32_t c = 0;
    if (atomic_compare_exchange_strong(&pg.lock, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(&pg.lock, 2);
    while (c != 0) {
        sys_futex_wait(&pg.lock, 2, 0, 1);
        c = atomic_exchange(&pg.lock, 2);
    }
}

static void queue_unlock(void)
{
    if (atomic_exchange(&pg.lock, 0) == 2)
        sys_futex_wake(&pg.lock, 1, 1);
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

static void process_handoff(void);

/* A waiter was cancelled (pthread_cancel) while queued: out of the queue, and
 * a token handed to it meanwhile goes on to the next. */
static void process_wait_cancelled(void *arg)
{
    struct waiter *self = arg;
    queue_lock();
    bool granted = atomic_load(&self->granted) != 0;
    if (!granted)
        unlink_waiter(self);
    queue_unlock();
    if (granted) {
        atomic_fetch_sub(&pg.word, 1);
        if (atomic_load(&pg.nwaiters) != 0)
            process_handoff();
    }
}

/* Sleeps queued until granted (0) or the deadline (1: out of the queue). */
static int sleep_in_queue(struct waiter *self, uint64_t deadline)
{
    while (atomic_load(&self->granted) == 0) {
        if (sys_futex_wait_cancellable(&self->granted, 0, deadline, 1) != ETIMEDOUT)
            continue;
        queue_lock();
        bool granted = atomic_load(&self->granted) != 0;
        if (!granted)
            unlink_waiter(self);
        queue_unlock();
        return granted ? 0 : 1;
    }
    return 0;
}

/* The gated calls are cancellation points: so is the wait in the queue. A
 * separate frame, so that nothing of the caller lives across its setjmp. */
static int sleep_in_queue_cancellable(struct waiter *self, uint64_t deadline)
{
    volatile int r = 0;
    pthread_cleanup_push(process_wait_cancelled, self);
    r = sleep_in_queue(self, deadline);
    pthread_cleanup_pop(0);
    return r;
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

    uint64_t start = sys_mono_ns();
    int r = sleep_in_queue_cancellable(&self, timeout != 0 ? start + timeout : 0);
    *waited_ns = sys_mono_ns() - start + 1;
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
        sys_futex_wake(&n->granted, 1, 1);
    }
    queue_unlock();
}

/* The thread was cancelled in its wait: it holds no token, its call is over. */
static void acquire_cancelled(void *unused)
{
    (void) unused;
    depth = 0;
}

/* The wait of either scope, with depth reset if the thread is cancelled in it
 * (it then holds no token: thread_gone must not give one back). */
static int wait_cancellable(uint64_t *waited)
{
    volatile int r = 0;
    pthread_cleanup_push(acquire_cancelled, NULL);
    r = mode == FS_PROCESS ? process_wait(timeout_ns, waited) : fshost_acquire(timeout_ns, waited);
    pthread_cleanup_pop(0);
    return r;
}

/* Out of line and cold, so that the fast path needs no stack frame. */
__attribute__((noinline, cold)) static int acquire_slow(void)
{
    int saved = errno;
    uint64_t waited = 0;
    int r;
    r = wait_cancellable(&waited);
    if (mode != FS_PROCESS) {
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

/* A thread that ends inside a gated call gives its token back: the real calls
 * are cancellation points, so a pthread_cancel (or a pthread_exit in a signal
 * handler) can end it there, token in hand, and nobody else could return it.
 * A key's destructor runs at every end of a thread that has armed it; it
 * finds the thread's depth still in place (thread-local storage outlives it). */
static pthread_key_t exit_key;
static _Atomic bool exit_key_made;
static __thread uint8_t exit_armed;

static void thread_gone(void *unused)
{
    (void) unused;
    if (depth != 0) {
        depth = 1;
        fsgate_release();
    }
}

__attribute__((noinline, cold)) static void arm_thread_exit(void)
{
    exit_armed = 1;
    if (atomic_load_explicit(&exit_key_made, memory_order_acquire))
        KEEP_ERRNO(pthread_setspecific(exit_key, &exit_armed));
}

int fsgate_acquire(void)
{
    if (unlikely(!exit_armed))
        arm_thread_exit();
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
    stats_on_render(fsgate_sync_stats);
    if (pthread_key_create(&exit_key, thread_gone) == 0)
        atomic_store_explicit(&exit_key_made, true, memory_order_release);
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
