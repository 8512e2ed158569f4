/* fshost_recover.c — the host budget's shared state as this process sees it
 * (the mapping, this process's pid, start time and record), who is alive, the
 * count word's slow-path updates, and the lock with crash recovery
 * (fshost.c takes and gives tokens with them).
 *
 * Claiming a record, waiting and recovery are under a robust, process-shared
 * mutex. A waiter that has waited 50 ms checks the records: the tokens of a
 * process that is gone (see fshost_alive()) are subtracted from the count. If it died
 * between its two updates (its record says a thread was inside), its share is
 * ambiguous by one: then a recount raises a flag that sends every operation to
 * the lock, waits for the live processes' "inside" counts to fall to zero, and
 * sets the count to the sum of the live records. A waiter whose process is
 * stopped is marked so at each check, and passed over by the line.
 *
 * Lock acquisition is bounded in time: a mutex that stays locked for seconds
 * (corrupted, or left by a frozen process) turns the gate off with one line. */
#include "fshost_recover.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fshost_file.h"
#include "log.h"
#include "procstat.h"
#include "sys.h"

struct fshost_state *fshost_st;
char fshost_state_path[SLUICE_PATH_MAX];
int32_t fshost_my_pid;
uint64_t fshost_my_start;
struct fshost_holder *_Atomic fshost_me;

void fshost_broken(const char *what)
{
    if (!atomic_exchange(&fshost_unusable, 1))
        log_error("SLUICE_FS_SCOPE=host: %s: %s; running without the filesystem gate",
                  fshost_state_path, what);
}

/* --- who is alive ------------------------------------------------------------------------ */

/* Field 22 of /proc/PID/stat: when the process started (0 if unreadable);
 * *state gets field 3 (R, S, T for stopped, t for a tracing stop...). */
uint64_t fshost_start_time(int32_t pid, char *state)
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
 *   - No such process (ESRCH), or a zombie (dead, not yet reaped): gone.
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
bool fshost_alive(int32_t pid, uint64_t start, bool *stopped)
{
    *stopped = false;
    if (pid <= 0)
        return false;
    if (pid == fshost_my_pid)
        return start == fshost_my_start;
    int k = kill(pid, 0);
    int kerr = errno;
    if (k != 0 && kerr == ESRCH)
        return false;
    char state;
    uint64_t now_start = fshost_start_time(pid, &state);
    *stopped = state == 'T' || state == 't';
    if (state == 'Z' || state == 'X')
        return false;   /* a zombie holds nothing: its parent has not reaped it yet */
    if (now_start != 0)
        return start == 0 || now_start == start;
    return k == 0;
}

void fshost_know_myself(void)
{
    if (fshost_my_pid != 0)
        return;
    char state;
    fshost_my_start = fshost_start_time(getpid(), &state);
    fshost_my_pid = (int32_t) getpid();
    atomic_store(&fshost_me, NULL);
}

/* --- the count word ---------------------------------------------------------------------- */

/* Takes n tokens back from the count, never below zero. */
void fshost_count_sub_in_use(uint32_t n)
{
    uint64_t c = atomic_load(&fshost_st->count);
    for (;;) {
        uint32_t take = HOST_LOW(c) < n ? HOST_LOW(c) : n;
        if (take == 0 || atomic_compare_exchange_weak(&fshost_st->count, &c, c - take))
            return;
    }
}

/* Sets one half of the count, keeping the other. Under the lock. */
static void count_set(bool high, uint32_t value)
{
    uint64_t c = atomic_load(&fshost_st->count);
    for (;;) {
        uint64_t want = high ? ((uint64_t) value << 32) | HOST_LOW(c)
                             : (c & ~UINT64_C(0xffffffff)) | value;
        if (atomic_compare_exchange_weak(&fshost_st->count, &c, want))
            return;
    }
}

void fshost_wake_waiters(void)
{
    atomic_fetch_add(&fshost_st->wake_seq, 1);
    sys_futex_wake(&fshost_st->wake_seq, INT_MAX, 0);
}

/* --- the lock and recovery ------------------------------------------------------------- */

int fshost_lock(void)
{
    int r = hostfile_lock(&fshost_st->lock);
    if (r == EOWNERDEAD) {
        /* Its holder died inside: the tables may be half-updated. */
        atomic_store(&fshost_st->recount, 0);
        fshost_reap();
        return 0;
    }
    if (r == 0)
        return 0;
    fshost_broken(r == ETIMEDOUT ? "its lock stayed taken for 3 seconds" : "its lock is unusable");
    return -1;
}

void fshost_unlock(void)
{
    pthread_mutex_unlock(&fshost_st->lock);
}

void fshost_free_record(struct fshost_holder *h)
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
    atomic_store(&fshost_st->recount, 1);
    uint64_t deadline = sys_mono_ns() + FSHOST_QUIESCE_NS;
    bool quiet = true;
    for (int i = 0; i < FSHOST_NHOLDERS && quiet; i++) {
        struct fshost_holder *h = &fshost_st->holders[i];
        while (atomic_load(&h->pid) != 0 && HOST_HIGH(atomic_load(&h->word)) != 0) {
            bool stopped;
            if (!fshost_alive(atomic_load(&h->pid), h->start, &stopped))
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
        struct fshost_holder *h = &fshost_st->holders[i];
        int32_t pid = atomic_load(&h->pid);
        bool stopped;
        if (pid == 0)
            continue;
        if (!fshost_alive(pid, h->start, &stopped)) {
            if (!quiet)
                fshost_count_sub_in_use(HOST_LOW(atomic_load(&h->word)));
            fshost_free_record(h);
        } else {
            sum += HOST_LOW(atomic_load(&h->word));
        }
    }
    if (quiet)
        count_set(false, sum);
    atomic_store(&fshost_st->recount, 0);
}

/* Drops the records of processes that are gone, giving their tokens back, and
 * recounts the waiters. Under the lock. */
void fshost_reap(void)
{
    bool ambiguous = false;
    for (int i = 0; i < FSHOST_NHOLDERS; i++) {
        struct fshost_holder *h = &fshost_st->holders[i];
        int32_t pid = atomic_load(&h->pid);
        bool stopped;
        if (pid == 0 || fshost_alive(pid, h->start, &stopped))
            continue;
        uint64_t w = atomic_load(&h->word);
        if (HOST_HIGH(w) != 0) {
            ambiguous = true;             /* died between its two updates */
            continue;
        }
        fshost_count_sub_in_use(HOST_LOW(w));
        fshost_free_record(h);
    }
    uint32_t nwaiting = 0;
    for (int i = 0; i < FSHOST_NWAITING; i++) {
        struct fshost_waiting *w = &fshost_st->waiting[i];
        if (w->pid == 0)
            continue;
        bool stopped;
        if (!fshost_alive(w->pid, w->start, &stopped)) {
            w->pid = 0;
        } else {
            /* A stopped waiter keeps its place but must not hold up the line. */
            w->stopped = stopped;
            nwaiting++;
        }
    }
    count_set(true, nwaiting);
    fshost_update_head_since();
    if (ambiguous)
        recount();
    if (HOST_LOW(atomic_load(&fshost_st->count)) < fshost_st->limit && nwaiting != 0)
        fshost_wake_waiters();
}

/* This process's holder record, claimed if needed. Under the lock. */
struct fshost_holder *fshost_my_holder(void)
{
    struct fshost_holder *h = atomic_load(&fshost_me);
    if (h != NULL)
        return h;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < FSHOST_NHOLDERS; i++) {
            h = &fshost_st->holders[i];
            if (atomic_load(&h->pid) == 0) {
                h->start = fshost_my_start;
                atomic_store(&h->word, 0);
                atomic_store(&h->pid, fshost_my_pid);
                atomic_store(&fshost_me, h);
                return h;
            }
        }
        fshost_reap();
    }
    return NULL;
}

/* Since when the longest waiting running thread waits (0: nobody). Under the lock. */
void fshost_update_head_since(void)
{
    uint64_t oldest = 0;
    for (int i = 0; i < FSHOST_NWAITING; i++) {
        const struct fshost_waiting *w = &fshost_st->waiting[i];
        if (w->pid != 0 && !w->stopped && (oldest == 0 || w->since < oldest))
            oldest = w->since;
    }
    atomic_store(&fshost_st->head_since, oldest);
}
