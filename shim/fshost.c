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
 * arrival order. A waiter that has waited that long checks the records: the
 * tokens of a process that is gone (see alive()) are subtracted from the count.
 * If it died between its two updates (its record says a thread was inside),
 * its share is ambiguous by one: then a recount raises a flag that sends every
 * operation to the lock, waits for the live processes' "inside" counts to fall
 * to zero, and sets the count to the sum of the live records.
 *
 * A waiter whose process is stopped (^Z, SIGSTOP, a debugger) is passed over
 * once a check sees it stopped, and takes its place back when it runs again.
 * Lock acquisition is bounded in time: a mutex that stays locked for seconds
 * (corrupted, or left by a frozen process) turns the gate off with one line.
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
#include "log.h"
#include "procstat.h"
#include "real.h"
#include "sys.h"

static struct fshost_state *st;
static char state_path[SLUICE_PATH_MAX];
static uint32_t limit_local;           /* the budget, copied out of the state at init */
static int32_t my_pid;                 /* 0: not known yet (or a forked child) */
static uint64_t my_start;
static struct fshost_holder *_Atomic me;      /* this process's record once claimed */

static void broken(const char *what)
{
    if (!atomic_exchange(&fshost_unusable, 1))
        log_error("SLUICE_FS_SCOPE=host: %s: %s; running without the filesystem gate",
                  state_path, what);
}

static void say_if_truncated(void)
{
    static _Atomic int said;
    if (atomic_load(&fshost_truncated) && !atomic_exchange(&said, 1))
        log_error("SLUICE_FS_SCOPE=host: %s: the state file shrank under us (truncated?); "
                  "running without the filesystem gate", state_path);
}

/* --- who is alive ------------------------------------------------------------------------ */

/* Field 22 of /proc/PID/stat: when the process started (0 if unreadable);
 * *state gets field 3 (R, S, T for stopped, t for a tracing stop...). */
static uint64_t start_time(int32_t pid, char *state)
{
    char path[64], buf[1024];
    *state = '?';
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    const char *p = procstat_fields(path, buf, sizeof buf);   /* field 3 */
    if (p == NULL)
        return 0;
    *state = *p;
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    return p != NULL ? strtoull(p, NULL, 10) : 0;
}

/* Whether pid is still the process that started at start; *stopped: it is
 * stopped now (a job-control stop or a debugger).
 *   - No such process (ESRCH): gone.
 *   - Its start time readable: alive exactly when it matches (a recycled pid
 *     started later). A record made without a start time (/proc unreadable to
 *     its owner) is matched by pid alone.
 *   - Unreadable (/proc mounted with hidepid, or not mounted): a process we may
 *     signal is taken as alive (members are processes of this user); one we may
 *     not signal (EPERM) belongs to another user now, so the pid was recycled:
 *     gone. The one case this misjudges is a member that changed its user after
 *     joining, checked by a member that may not signal it, with /proc hidden:
 *     its tokens come back early (the budget is exceeded for a while; nothing
 *     is lost for good), which is safer than a recycled pid holding tokens for
 *     ever. */
static bool alive(int32_t pid, uint64_t start, bool *stopped)
{
    *stopped = false;
    if (pid <= 0)
        return false;
    if (pid == my_pid)
        return start == my_start;
    int k = kill(pid, 0);
    int kerr = errno;
    if (k != 0 && kerr == ESRCH)
        return false;
    char state;
    uint64_t now_start = start_time(pid, &state);
    *stopped = state == 'T' || state == 't';
    if (now_start != 0)
        return start == 0 || now_start == start;
    return k == 0;
}

static void know_myself(void)
{
    if (my_pid != 0)
        return;
    char state;
    my_start = start_time(getpid(), &state);
    my_pid = (int32_t) getpid();
    atomic_store(&me, NULL);
}

/* --- the count word ---------------------------------------------------------------------- */

/* Takes n tokens back from the count, never below zero. */
static void count_sub_in_use(uint32_t n)
{
    uint64_t c = atomic_load(&st->count);
    for (;;) {
        uint32_t take = HOST_LOW(c) < n ? HOST_LOW(c) : n;
        if (take == 0 || atomic_compare_exchange_weak(&st->count, &c, c - take))
            return;
    }
}

/* Sets one half of the count, keeping the other. Under the lock. */
static void count_set(bool high, uint32_t value)
{
    uint64_t c = atomic_load(&st->count);
    for (;;) {
        uint64_t want = high ? ((uint64_t) value << 32) | HOST_LOW(c)
                             : (c & ~UINT64_C(0xffffffff)) | value;
        if (atomic_compare_exchange_weak(&st->count, &c, want))
            return;
    }
}

static void wake_waiters(void)
{
    atomic_fetch_add(&st->wake_seq, 1);
    sys_futex_wake(&st->wake_seq, INT_MAX, 0);
}

/* --- the lock and recovery ------------------------------------------------------------- */

static void reap(void);
static void update_head_since(void);

static int host_lock(void)
{
    int r = pthread_mutex_trylock(&st->lock);
    if (r == EBUSY) {
        struct timespec ts;
        uint64_t deadline = sys_mono_ns() + FSHOST_LOCK_BOUND_NS;
        ts.tv_sec = (time_t) (deadline / 1000000000u);
        ts.tv_nsec = (long) (deadline % 1000000000u);
        r = pthread_mutex_clocklock(&st->lock, CLOCK_MONOTONIC, &ts);
    }
    if (r == EOWNERDEAD) {
        /* Its holder died inside: the tables may be half-updated. */
        pthread_mutex_consistent(&st->lock);
        atomic_store(&st->recount, 0);
        reap();
        return 0;
    }
    if (r == 0)
        return 0;
    broken(r == ETIMEDOUT ? "its lock stayed taken for 3 seconds" : "its lock is unusable");
    return -1;
}

static void host_unlock(void)
{
    pthread_mutex_unlock(&st->lock);
}

static void free_record(struct fshost_holder *h)
{
    atomic_store(&h->word, 0);
    atomic_store(&h->pid, 0);
    h->start = 0;
}

/* Some dead process died between its two updates. Stop the fast path, wait for
 * the live members to be outside theirs, and set the count to what the live
 * records hold. If a live member stays inside for FSHOST_QUIESCE_NS (stopped
 * there), the dead records' tokens are subtracted instead: the count may then
 * be one too low for each thread that died inside (the budget is exceeded by
 * that much; nothing is held for ever). Under the lock. */
static void recount(void)
{
    atomic_store(&st->recount, 1);
    uint64_t deadline = sys_mono_ns() + FSHOST_QUIESCE_NS;
    bool quiet = true;
    for (int i = 0; i < FSHOST_NHOLDERS && quiet; i++) {
        struct fshost_holder *h = &st->holders[i];
        while (atomic_load(&h->pid) != 0 && HOST_HIGH(atomic_load(&h->word)) != 0) {
            bool stopped;
            if (!alive(atomic_load(&h->pid), h->start, &stopped))
                break;
            if (sys_mono_ns() >= deadline) {
                quiet = false;            /* a member stopped inside: subtract instead */
                break;
            }
            sched_yield();
        }
    }
    uint32_t sum = 0;
    for (int i = 0; i < FSHOST_NHOLDERS; i++) {
        struct fshost_holder *h = &st->holders[i];
        int32_t pid = atomic_load(&h->pid);
        bool stopped;
        if (pid == 0)
            continue;
        if (!alive(pid, h->start, &stopped)) {
            if (!quiet)
                count_sub_in_use(HOST_LOW(atomic_load(&h->word)));
            free_record(h);
        } else {
            sum += HOST_LOW(atomic_load(&h->word));
        }
    }
    if (quiet)
        count_set(false, sum);
    atomic_store(&st->recount, 0);
}

/* Drops the records of processes that are gone, giving their tokens back, and
 * recounts the waiters. Under the lock. */
static void reap(void)
{
    bool ambiguous = false;
    for (int i = 0; i < FSHOST_NHOLDERS; i++) {
        struct fshost_holder *h = &st->holders[i];
        int32_t pid = atomic_load(&h->pid);
        bool stopped;
        if (pid == 0 || alive(pid, h->start, &stopped))
            continue;
        uint64_t w = atomic_load(&h->word);
        if (HOST_HIGH(w) != 0) {
            ambiguous = true;             /* died between its two updates */
            continue;
        }
        count_sub_in_use(HOST_LOW(w));
        free_record(h);
    }
    uint32_t nwaiting = 0;
    for (int i = 0; i < FSHOST_NWAITING; i++) {
        struct fshost_waiting *w = &st->waiting[i];
        if (w->pid == 0)
            continue;
        bool stopped;
        if (!alive(w->pid, w->start, &stopped)) {
            w->pid = 0;
        } else {
            /* A stopped waiter keeps its place but must not hold up the line. */
            w->stopped = stopped;
            nwaiting++;
        }
    }
    count_set(true, nwaiting);
    update_head_since();
    if (ambiguous)
        recount();
    if (HOST_LOW(atomic_load(&st->count)) < st->limit && nwaiting != 0)
        wake_waiters();
}

/* This process's holder record, claimed if needed. Under the lock. */
static struct fshost_holder *my_holder(void)
{
    struct fshost_holder *h = atomic_load(&me);
    if (h != NULL)
        return h;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < FSHOST_NHOLDERS; i++) {
            h = &st->holders[i];
            if (atomic_load(&h->pid) == 0) {
                h->start = my_start;
                atomic_store(&h->word, 0);
                atomic_store(&h->pid, my_pid);
                atomic_store(&me, h);
                return h;
            }
        }
        reap();
    }
    return NULL;
}

/* Since when the longest waiting running thread waits (0: nobody). Under the lock. */
static void update_head_since(void)
{
    uint64_t oldest = 0;
    for (int i = 0; i < FSHOST_NWAITING; i++) {
        const struct fshost_waiting *w = &st->waiting[i];
        if (w->pid != 0 && !w->stopped && (oldest == 0 || w->since < oldest))
            oldest = w->since;
    }
    atomic_store(&st->head_since, oldest);
}

static bool first_in_line(uint64_t ticket)
{
    for (int i = 0; i < FSHOST_NWAITING; i++)
        if (st->waiting[i].pid != 0 && st->waiting[i].ticket < ticket && !st->waiting[i].stopped)
            return false;
    return true;
}

static int too_crowded(const char *what)
{
    static _Atomic int said;
    host_unlock();
    if (!atomic_exchange(&said, 1))
        log_warn("SLUICE_FS_SCOPE=host: more than %d %s share the key; the excess runs ungated",
                 what[0] == 'p' ? FSHOST_NHOLDERS : FSHOST_NWAITING, what);
    return 2;
}

/* --- acquire and release ------------------------------------------------------------ */

bool fshost_try(void)
{
    struct fshost_holder *h = atomic_load_explicit(&me, memory_order_relaxed);
    if (unlikely(h == NULL) || unlikely(atomic_load_explicit(&fshost_unusable, memory_order_relaxed)))
        return false;
    /* Inside first (and a token noted), then look for a recount: a recount
     * raises its flag first, then looks at us (both sequentially consistent),
     * so one of the two sees the other. */
    atomic_fetch_add(&h->word, HOST_HIGH_ONE + 1);
    if (likely(atomic_load(&st->recount) == 0)) {
        uint64_t c = atomic_load_explicit(&st->count, memory_order_relaxed);
        while (HOST_LOW(c) < limit_local) {
            if (HOST_HIGH(c) != 0) {
                /* Others wait: pass them only while the longest has not waited long. */
                uint64_t since = atomic_load_explicit(&st->head_since, memory_order_relaxed);
                if (since != 0 && sys_mono_ns() - since >= FSHOST_OVERTAKE_NS)
                    break;
            }
            if (atomic_compare_exchange_weak(&st->count, &c, c + 1)) {
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
    uint64_t c = atomic_load(&st->count);
    while (HOST_LOW(c) < st->limit) {
        uint64_t want = c + 1 - (was_waiting && HOST_HIGH(c) != 0 ? HOST_HIGH_ONE : 0);
        if (atomic_compare_exchange_weak(&st->count, &c, want)) {
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
    if (host_lock() != 0)
        return;
    if (place->w->pid == my_pid && place->w->ticket == place->ticket) {
        uint64_t c = atomic_load(&st->count);
        while (HOST_HIGH(c) != 0 && !atomic_compare_exchange_weak(&st->count, &c, c - HOST_HIGH_ONE))
            ;
        place->w->pid = 0;
    }
    update_head_since();
    bool wake = HOST_HIGH(atomic_load(&st->count)) != 0
                && HOST_LOW(atomic_load(&st->count)) < st->limit;
    host_unlock();
    if (wake)
        wake_waiters();
}

/* The gated calls are cancellation points: so is the wait for a token. (A
 * frame of its own, so that nothing of the caller lives across its setjmp.) */
static void host_sleep(struct host_wait *place)
{
    pthread_cleanup_push(host_wait_cancelled, place);
    sys_futex_wait_cancellable(&st->wake_seq, place->seq, place->until, 0);
    pthread_cleanup_pop(0);
}

int fshost_acquire(uint64_t timeout_ns, uint64_t *waited_ns)
{
    *waited_ns = 0;
    if (atomic_load_explicit(&fshost_unusable, memory_order_relaxed)) {
        say_if_truncated();
        return 2;
    }
    know_myself();
    if (host_lock() != 0)
        return 2;
    struct fshost_holder *h = my_holder();
    if (h == NULL)
        return too_crowded("processes");
    if (HOST_HIGH(atomic_load(&st->count)) == 0 && take_locked(h, false)) {
        host_unlock();
        return 0;
    }

    struct fshost_waiting *w = NULL;
    for (int i = 0; i < FSHOST_NWAITING && w == NULL; i++)
        if (st->waiting[i].pid == 0)
            w = &st->waiting[i];
    if (w == NULL)
        return too_crowded("waiting threads");
    uint64_t ticket = ++st->next_ticket;
    w->pid = my_pid;
    w->start = my_start;
    w->ticket = ticket;
    w->stopped = 0;
    uint64_t start = sys_mono_ns();
    w->since = start;
    atomic_fetch_add(&st->count, HOST_HIGH_ONE);
    update_head_since();

    uint64_t deadline = timeout_ns != 0 ? start + timeout_ns : 0;
    uint64_t last_check = start;
    int result;
    for (;;) {
        /* Read before looking at the count: a release after our look bumps it. */
        uint32_t seq = atomic_load(&st->wake_seq);
        if (first_in_line(ticket) && take_locked(h, true)) {
            w->pid = 0;
            result = 0;
            break;
        }
        host_unlock();
        uint64_t now = sys_mono_ns();
        uint64_t until = last_check + FSHOST_REAP_AFTER_NS;
        if (deadline != 0 && deadline < until)
            until = deadline;
        if (until > now) {
            struct host_wait place = { w, ticket, seq, until };
            host_sleep(&place);
        }
        if (host_lock() != 0)
            return 2;
        if (atomic_load(&fshost_unusable) || w->pid != my_pid || w->ticket != ticket) {
            result = 2;                  /* our place was lost: never seen, but never hang */
            break;
        }
        if (w->stopped) {
            w->stopped = 0;              /* running again: back in line */
            update_head_since();
        }
        now = sys_mono_ns();
        if (deadline != 0 && now >= deadline) {
            /* A last look: the token may have come with the deadline. */
            if (first_in_line(ticket) && take_locked(h, true)) {
                result = 0;
            } else {
                uint64_t c = atomic_load(&st->count);
                while (HOST_HIGH(c) != 0
                       && !atomic_compare_exchange_weak(&st->count, &c, c - HOST_HIGH_ONE))
                    ;
                result = 1;
            }
            w->pid = 0;
            break;
        }
        if (now - last_check >= FSHOST_REAP_AFTER_NS) {
            last_check = now;
            reap();
        }
    }
    update_head_since();
    /* The next in line may be able to go now (tokens left, or we were the head). */
    bool wake = result != 2 && HOST_HIGH(atomic_load(&st->count)) != 0
                && HOST_LOW(atomic_load(&st->count)) < st->limit;
    host_unlock();
    if (wake)
        wake_waiters();
    say_if_truncated();
    *waited_ns = sys_mono_ns() - start + 1;
    return result;
}

/* A release while a recount runs: wait for it (it holds the lock). */
static void release_locked(struct fshost_holder *h)
{
    if (host_lock() != 0)
        return;
    if (HOST_LOW(atomic_load(&h->word)) != 0) {
        atomic_fetch_sub(&h->word, 1);
        count_sub_in_use(1);
    }
    bool wake = HOST_HIGH(atomic_load(&st->count)) != 0;
    host_unlock();
    if (wake)
        wake_waiters();
}

void fshost_release(void)
{
    struct fshost_holder *h = atomic_load_explicit(&me, memory_order_relaxed);
    if (h == NULL || atomic_load_explicit(&fshost_unusable, memory_order_relaxed))
        return;
    atomic_fetch_add(&h->word, HOST_HIGH_ONE);
    if (unlikely(atomic_load(&st->recount) != 0)) {
        atomic_fetch_sub(&h->word, HOST_HIGH_ONE);
        KEEP_ERRNO(release_locked(h));
        return;
    }
    uint64_t c = atomic_load_explicit(&st->count, memory_order_relaxed);
    while (HOST_LOW(c) != 0 && !atomic_compare_exchange_weak(&st->count, &c, c - 1))
        ;
    atomic_fetch_sub(&h->word, HOST_HIGH_ONE + 1);
    if (unlikely(HOST_HIGH(c) != 0))
        KEEP_ERRNO(wake_waiters());
}

void fshost_atfork_child(void)
{
    /* The parent's record is the parent's: the child claims its own. */
    my_pid = 0;
    atomic_store(&me, NULL);
}

int fshost_init(uint32_t limit, const char *key)
{
    struct fshost_state *s = NULL;
    const char *why = NULL;
    if (fshost_file_map(limit, key, state_path, sizeof state_path, &s, &why) != 0) {
        broken(why);
        return -1;
    }
    st = s;
    limit_local = s->limit;
    /* Records under our pid and start time are from before an exec of this
     * same process: whatever they held, nobody here holds it now. */
    know_myself();
    if (host_lock() != 0)
        return -1;
    for (int i = 0; i < FSHOST_NHOLDERS; i++) {
        struct fshost_holder *h = &st->holders[i];
        if (atomic_load(&h->pid) == my_pid && h->start == my_start) {
            if (HOST_HIGH(atomic_load(&h->word)) == 0) {
                count_sub_in_use(HOST_LOW(atomic_load(&h->word)));
                free_record(h);
            } else {
                atomic_store(&h->pid, -1);    /* gone for certain: the recount drops it */
            }
        }
    }
    for (int i = 0; i < FSHOST_NWAITING; i++)
        if (st->waiting[i].pid == my_pid && st->waiting[i].start == my_start)
            st->waiting[i].pid = 0;
    reap();
    my_holder();                               /* so the first operation is a fast one */
    host_unlock();
    if (s->limit != limit)
        log_warn("SLUICE_FS_MAX=%u: key '%s' already has a budget of %u, which applies",
                 (unsigned) limit, key, (unsigned) s->limit);
    return 0;
}
