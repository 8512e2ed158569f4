/* fshost.c — host scope of the filesystem semaphore: one budget for every
 * process of a user that names the same SLUICE_FS_KEY.
 *
 * Where (the file itself is fshost_file.c's): /dev/shm/sluice-UID/fs-KEY. The directory is the user's own (created
 * mode 0700, opened without following links, refused unless it is a directory
 * of this user that nobody else may write), so another user cannot plant or
 * squat on a key's name. The file is built in an unnamed O_TMPFILE of mode 0600
 * (or under a temporary name created O_EXCL) with its pages allocated first
 * (posix_fallocate: a full tmpfs is a refusal with one line, not a SIGBUS
 * later), and published with a link, so nobody ever maps a half-made file. It
 * is refused (one line, the program runs on ungated) unless it is a regular
 * file of this user, mode 0600, of the exact size, with our magic, version and
 * uid in its header.
 *
 * The fast path takes no lock and makes no system call: the shared count word
 * holds the tokens in use and the number of waiters; a token is one add on this
 * process's own holder record (tokens held, and "a thread is between the two
 * updates") and one compare-and-swap on the count, while a token is free. A
 * release is the reverse, and wakes sleepers only when the count says there
 * are some.
 *
 * Fairness, bounded: a newcomer may take a free token while others wait, but
 * only until the longest waiting (running) thread has waited FSHOST_OVERTAKE_NS
 * (2 ms); from then on newcomers queue behind it. Strict order at every token
 * is a convoy on a busy machine: each freed token idles until the next in line
 * gets a CPU, and with SLUICE_FS_MAX=2 under make -j8 on two cores that cost
 * 15% of the build's time; overtaking for at most 2 ms costs nothing measurable
 * and still lets nobody starve.
 *
 * Everything else is under a robust, process-shared mutex: claiming a record
 * (once per process), waiting, and crash recovery. Waiters take tickets in a
 * table and sleep on a shared futex word with a 50 ms bound; only the lowest
 * live ticket may take a freed token, so waiters of every process are served in
 * arrival order. Who is alive, the lock, and the recovery from members that
 * died (a waiter that has waited 50 ms checks the records) are
 * fshost_recover.c's.
 *
 * A waiter whose process is stopped (^Z, SIGSTOP, a debugger) is passed over
 * once a check sees it stopped, and takes its place back when it runs again.
 *
 * A same-user process can truncate the file under the members' mappings; the
 * next touch of a vanished page raises SIGBUS. A handler (installed only when
 * SIGBUS has no handler of the program's) recognises a fault inside the
 * mapping, puts anonymous memory in its place so the access completes, and
 * turns the gate off; the next operation says so in one line. Faults elsewhere
 * go to the disposition that was there before. */
#include "fshost.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fshost_file.h"
#include "fshost_recover.h"
#include "log.h"
#include "procstat.h"
#include "real.h"
#include "sys.h"

static uint32_t limit_local;           /* the budget, copied out of the state at init */

static void say_if_truncated(void)
{
    static _Atomic int said;
    if (atomic_load(&fshost_truncated) && !atomic_exchange(&said, 1))
        log_error("SLUICE_FS_SCOPE=host: %s: the state file shrank under us (truncated?); "
                  "running without the filesystem gate", fshost_state_path);
}


static bool first_in_line(uint64_t ticket)
{
    for (int i = 0; i < FSHOST_NWAITING; i++)
        if (fshost_st->waiting[i].pid != 0 && fshost_st->waiting[i].ticket < ticket
            && !fshost_st->waiting[i].stopped)
            return false;
    return true;
}

static int too_crowded(const char *what)
{
    static _Atomic int said;
    fshost_unlock();
    if (!atomic_exchange(&said, 1))
        log_warn("SLUICE_FS_SCOPE=host: more than %d %s share the key; the excess runs ungated",
                 what[0] == 'p' ? FSHOST_NHOLDERS : FSHOST_NWAITING, what);
    return 2;
}

/* --- acquire and release ------------------------------------------------------------ */

bool fshost_try(void)
{
    struct fshost_holder *h = atomic_load_explicit(&fshost_me, memory_order_relaxed);
    if (unlikely(h == NULL) || unlikely(atomic_load_explicit(&fshost_unusable, memory_order_relaxed)))
        return false;
    /* Inside first (and a token noted), then look for a recount: a recount
     * raises its flag first, then looks at us (both sequentially consistent),
     * so one of the two sees the other. */
    atomic_fetch_add(&h->word, HOST_HIGH_ONE + 1);
    if (likely(atomic_load(&fshost_st->recount) == 0)) {
        uint64_t c = atomic_load_explicit(&fshost_st->count, memory_order_relaxed);
        while (HOST_LOW(c) < limit_local) {
            if (HOST_HIGH(c) != 0) {
                /* Others wait: pass them only while the longest has not waited long. */
                uint64_t since = atomic_load_explicit(&fshost_st->head_since, memory_order_relaxed);
                if (since != 0 && sys_mono_ns() - since >= FSHOST_OVERTAKE_NS)
                    break;
            }
            if (atomic_compare_exchange_weak(&fshost_st->count, &c, c + 1)) {
                atomic_fetch_sub(&h->word, HOST_HIGH_ONE);
                return true;
            }
        }
    }
    atomic_fetch_sub(&h->word, HOST_HIGH_ONE + 1);
    return false;
}

/* Under the lock, with a free token and our turn: take it. */
static bool take_locked(struct fshost_holder *h, bool was_waiting)
{
    uint64_t c = atomic_load(&fshost_st->count);
    while (HOST_LOW(c) < fshost_st->limit) {
        uint64_t want = c + 1 - (was_waiting && HOST_HIGH(c) != 0 ? HOST_HIGH_ONE : 0);
        if (atomic_compare_exchange_weak(&fshost_st->count, &c, want)) {
            atomic_fetch_add(&h->word, 1);
            return true;
        }
    }
    return false;
}

/* A thread cancelled (pthread_cancel) in its wait for a token gives up its
 * place in line as a timeout does, and the next in line is told to look. */
struct host_wait {
    struct fshost_waiting *w;
    uint64_t ticket;
    uint32_t seq;                        /* wake_seq as last seen */
    uint64_t until;
};

static void host_wait_cancelled(void *arg)
{
    struct host_wait *place = arg;
    if (fshost_lock() != 0)
        return;
    if (place->w->pid == fshost_my_pid && place->w->ticket == place->ticket) {
        uint64_t c = atomic_load(&fshost_st->count);
        while (HOST_HIGH(c) != 0
               && !atomic_compare_exchange_weak(&fshost_st->count, &c, c - HOST_HIGH_ONE))
            ;
        place->w->pid = 0;
    }
    fshost_update_head_since();
    bool wake = HOST_HIGH(atomic_load(&fshost_st->count)) != 0
                && HOST_LOW(atomic_load(&fshost_st->count)) < fshost_st->limit;
    fshost_unlock();
    if (wake)
        fshost_wake_waiters();
}

/* The gated calls are cancellation points: so is the wait for a token. (A
 * frame of its own, so that nothing of the caller lives across its setjmp.) */
static void host_sleep(struct host_wait *place)
{
    pthread_cleanup_push(host_wait_cancelled, place);
    sys_futex_wait_cancellable(&fshost_st->wake_seq, place->seq, place->until, 0);
    pthread_cleanup_pop(0);
}

int fshost_acquire(uint64_t timeout_ns, uint64_t *waited_ns)
{
    *waited_ns = 0;
    if (atomic_load_explicit(&fshost_unusable, memory_order_relaxed)) {
        say_if_truncated();
        return 2;
    }
    fshost_know_myself();
    if (fshost_lock() != 0)
        return 2;
    struct fshost_holder *h = fshost_my_holder();
    if (h == NULL)
        return too_crowded("processes");
    if (HOST_HIGH(atomic_load(&fshost_st->count)) == 0 && take_locked(h, false)) {
        fshost_unlock();
        return 0;
    }

    struct fshost_waiting *w = NULL;
    for (int i = 0; i < FSHOST_NWAITING && w == NULL; i++)
        if (fshost_st->waiting[i].pid == 0)
            w = &fshost_st->waiting[i];
    if (w == NULL)
        return too_crowded("waiting threads");
    uint64_t ticket = ++fshost_st->next_ticket;
    w->pid = fshost_my_pid;
    w->start = fshost_my_start;
    w->ticket = ticket;
    w->stopped = 0;
    uint64_t start = sys_mono_ns();
    w->since = start;
    atomic_fetch_add(&fshost_st->count, HOST_HIGH_ONE);
    fshost_update_head_since();

    uint64_t deadline = timeout_ns != 0 ? start + timeout_ns : 0;
    uint64_t last_check = start;
    int result;
    for (;;) {
        /* Read before looking at the count: a release after our look bumps it. */
        uint32_t seq = atomic_load(&fshost_st->wake_seq);
        if (first_in_line(ticket) && take_locked(h, true)) {
            w->pid = 0;
            result = 0;
            break;
        }
        fshost_unlock();
        uint64_t now = sys_mono_ns();
        uint64_t until = last_check + FSHOST_REAP_AFTER_NS;
        if (deadline != 0 && deadline < until)
            until = deadline;
        if (until > now) {
            struct host_wait place = { w, ticket, seq, until };
            host_sleep(&place);
        }
        if (fshost_lock() != 0)
            return 2;
        if (atomic_load(&fshost_unusable) || w->pid != fshost_my_pid || w->ticket != ticket) {
            result = 2;                  /* our place was lost: never seen, but never hang */
            break;
        }
        if (w->stopped) {
            w->stopped = 0;              /* running again: back in line */
            fshost_update_head_since();
        }
        now = sys_mono_ns();
        if (deadline != 0 && now >= deadline) {
            /* A last look: the token may have come with the deadline. */
            if (first_in_line(ticket) && take_locked(h, true)) {
                result = 0;
            } else {
                uint64_t c = atomic_load(&fshost_st->count);
                while (HOST_HIGH(c) != 0
                       && !atomic_compare_exchange_weak(&fshost_st->count, &c, c - HOST_HIGH_ONE))
                    ;
                result = 1;
            }
            w->pid = 0;
            break;
        }
        if (now - last_check >= FSHOST_REAP_AFTER_NS) {
            last_check = now;
            fshost_reap();
        }
    }
    fshost_update_head_since();
    /* The next in line may be able to go now (tokens left, or we were the head). */
    bool wake = result != 2 && HOST_HIGH(atomic_load(&fshost_st->count)) != 0
                && HOST_LOW(atomic_load(&fshost_st->count)) < fshost_st->limit;
    fshost_unlock();
    if (wake)
        fshost_wake_waiters();
    say_if_truncated();
    *waited_ns = sys_mono_ns() - start + 1;
    return result;
}

/* A release while a recount runs: wait for it (it holds the lock). */
static void release_locked(struct fshost_holder *h)
{
    if (fshost_lock() != 0)
        return;
    if (HOST_LOW(atomic_load(&h->word)) != 0) {
        atomic_fetch_sub(&h->word, 1);
        fshost_count_sub_in_use(1);
    }
    bool wake = HOST_HIGH(atomic_load(&fshost_st->count)) != 0;
    fshost_unlock();
    if (wake)
        fshost_wake_waiters();
}

void fshost_release(void)
{
    struct fshost_holder *h = atomic_load_explicit(&fshost_me, memory_order_relaxed);
    if (h == NULL || atomic_load_explicit(&fshost_unusable, memory_order_relaxed))
        return;
    atomic_fetch_add(&h->word, HOST_HIGH_ONE);
    if (unlikely(atomic_load(&fshost_st->recount) != 0)) {
        atomic_fetch_sub(&h->word, HOST_HIGH_ONE);
        KEEP_ERRNO(release_locked(h));
        return;
    }
    uint64_t c = atomic_load_explicit(&fshost_st->count, memory_order_relaxed);
    while (HOST_LOW(c) != 0 && !atomic_compare_exchange_weak(&fshost_st->count, &c, c - 1))
        ;
    atomic_fetch_sub(&h->word, HOST_HIGH_ONE + 1);
    if (unlikely(HOST_HIGH(c) != 0))
        KEEP_ERRNO(fshost_wake_waiters());
}

void fshost_atfork_child(void)
{
    /* The parent's record is the parent's: the child claims its own. */
    fshost_my_pid = 0;
    atomic_store(&fshost_me, NULL);
}

int fshost_init(uint32_t limit, const char *key)
{
    struct fshost_state *s = NULL;
    const char *why = NULL;
    if (fshost_file_map(limit, key, fshost_state_path, sizeof fshost_state_path, &s, &why) != 0) {
        fshost_broken(why);
        return -1;
    }
    fshost_st = s;
    limit_local = s->limit;
    /* Records under our pid and start time are from before an exec of this
     * same process: whatever they held, nobody here holds it now. */
    fshost_know_myself();
    if (fshost_lock() != 0)
        return -1;
    for (int i = 0; i < FSHOST_NHOLDERS; i++) {
        struct fshost_holder *h = &fshost_st->holders[i];
        if (atomic_load(&h->pid) == fshost_my_pid && h->start == fshost_my_start) {
            if (HOST_HIGH(atomic_load(&h->word)) == 0) {
                fshost_count_sub_in_use(HOST_LOW(atomic_load(&h->word)));
                fshost_free_record(h);
            } else {
                atomic_store(&h->pid, -1);    /* gone for certain: the recount drops it */
            }
        }
    }
    for (int i = 0; i < FSHOST_NWAITING; i++)
        if (fshost_st->waiting[i].pid == fshost_my_pid
            && fshost_st->waiting[i].start == fshost_my_start)
            fshost_st->waiting[i].pid = 0;
    fshost_reap();
    fshost_my_holder();                               /* so the first operation is a fast one */
    fshost_unlock();
    if (s->limit != limit)
        log_warn("SLUICE_FS_MAX=%u: key '%s' already has a budget of %u, which applies",
                 (unsigned) limit, key, (unsigned) s->limit);
    return 0;
}
