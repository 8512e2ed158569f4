/* fshost.c — host scope of the filesystem semaphore: one budget for every
 * process of a user that names the same SLUICE_FS_KEY.
 *
 * The state is a small file, /dev/shm/sluice-fs-UID-KEY (the same place for
 * every process of the user, whatever its environment), mapped MAP_SHARED. It
 * is built in an unnamed O_TMPFILE of mode 0600 (or under a temporary name
 * created O_CREAT|O_EXCL|O_NOFOLLOW) and published with a link, so nobody ever
 * maps a half-made file; it is
 * opened with O_NOFOLLOW and refused (one error line, the program runs on
 * ungated) unless it is a regular file of this user, mode 0600, of the exact
 * size, with our magic, version and uid in its header.
 *
 * Crash-proofing: the table is guarded by a robust, process-shared mutex, held
 * only for a few loads and stores (a holder killed inside it hands the next
 * locker EOWNERDEAD, which recounts everything from the records). Tokens are
 * held outside the mutex, so each process has a holder record (pid, start time
 * from /proc/PID/stat, tokens held). Waiters sleep on a shared futex word with a
 * 50 ms bound; a waiter that has waited that long checks the records and takes
 * back the tokens of processes that are gone (kill(pid, 0) fails, or the pid
 * now belongs to a process started at another time).
 *
 * Fairness: a caller that finds the budget full (or others already waiting)
 * takes a ticket in a table of waiting threads; only the lowest live ticket may
 * take a freed token, so waiters of every process are served in arrival order.
 * A waiter whose process is stopped (^Z, SIGSTOP, a debugger) is passed over
 * once a check sees it stopped, and takes its place back when it runs again.
 * Lock acquisition is bounded in time: a mutex that stays locked for seconds
 * (corrupted, or left by a frozen process) turns the gate off with one line
 * rather than hanging the program. */
#include "fshost.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "procstat.h"
#include "real.h"
#include "sys.h"

static struct host_state *st;
static char state_path[SLUICE_PATH_MAX];
static _Atomic int unusable;
static int32_t my_pid;       /* 0: not known yet (or a forked child) */
static uint64_t my_start;
static int my_rec = -1;

static void broken(const char *what)
{
    if (!atomic_exchange(&unusable, 1))
        log_error("SLUICE_FS_SCOPE=host: %s: %s; running without the filesystem gate",
                  state_path, what);
}

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
 * stopped now (a job-control stop or a debugger). */
static bool alive(int32_t pid, uint64_t start, bool *stopped)
{
    *stopped = false;
    if (pid == my_pid)
        return start == my_start;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return false;
    char state;
    uint64_t now_start = start_time(pid, &state);
    *stopped = state == 'T' || state == 't';
    return now_start == 0 || now_start == start;
}

static void know_myself(void)
{
    if (my_pid != 0)
        return;
    char state;
    my_start = start_time(getpid(), &state);
    my_pid = (int32_t) getpid();
    my_rec = -1;
}

/* Drops the records of processes that are gone and recounts the totals from
 * the records. Returns how many tokens came back. Under the lock. */
static uint32_t reap(void)
{
    uint32_t in_use = 0, nwaiting = 0;
    for (int i = 0; i < NHOLDERS; i++) {
        struct holder *h = &st->holders[i];
        if (h->pid == 0)
            continue;
        bool stopped;
        if (h->held != 0 && !alive(h->pid, h->start, &stopped)) {
            h->held = 0;
            h->pid = 0;
        }
        in_use += h->held;
    }
    for (int i = 0; i < NWAITING; i++) {
        struct waiting *w = &st->waiting[i];
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
    uint32_t back = st->in_use > in_use ? st->in_use - in_use : 0;
    st->in_use = in_use;
    st->nwaiting = nwaiting;
    return back;
}

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
        /* Its holder died inside: the totals may be half-updated. */
        pthread_mutex_consistent(&st->lock);
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

/* This process's holder record, claimed if needed. Under the lock. */
static struct holder *my_holder(void)
{
    if (my_rec >= 0 && st->holders[my_rec].pid == my_pid && st->holders[my_rec].start == my_start)
        return &st->holders[my_rec];
    for (int pass = 0; pass < 2; pass++) {
        int idle = -1;
        for (int i = 0; i < NHOLDERS; i++) {
            struct holder *h = &st->holders[i];
            if (h->pid == 0 || h->held == 0) {   /* a record without tokens is free to take */
                idle = i;
                if (h->pid == 0)
                    break;
            }
        }
        if (idle >= 0) {
            st->holders[idle].pid = my_pid;
            st->holders[idle].start = my_start;
            st->holders[idle].held = 0;
            my_rec = idle;
            return &st->holders[idle];
        }
        reap();
    }
    return NULL;
}

static bool first_in_line(uint64_t ticket)
{
    for (int i = 0; i < NWAITING; i++)
        if (st->waiting[i].pid != 0 && st->waiting[i].ticket < ticket && !st->waiting[i].stopped)
            return false;
    return true;
}

static void wake_waiters_locked(bool *wake)
{
    if (st->nwaiting != 0) {
        atomic_fetch_add(&st->wake_seq, 1);
        *wake = true;
    }
}

static int too_crowded(const char *what)
{
    static _Atomic int said;
    host_unlock();
    if (!atomic_exchange(&said, 1))
        log_warn("SLUICE_FS_SCOPE=host: more than %d %s share the key; the excess runs ungated",
                 what[0] == 'p' ? NHOLDERS : NWAITING, what);
    return 2;
}

/* A thread cancelled (pthread_cancel) in its wait for a token: its place in
 * line is given up, and the next in line is told to look. */
struct host_wait {
    struct waiting *w;
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
        place->w->pid = 0;
        st->nwaiting--;
    }
    bool wake = false;
    if (st->in_use < st->limit)
        wake_waiters_locked(&wake);
    host_unlock();
    if (wake)
        sys_futex_wake(&st->wake_seq, INT_MAX, 0);
}

/* The gated calls are cancellation points: so is the wait for a token. (A
 * separate frame, so that nothing of the caller lives across its setjmp.) */
static void host_sleep(struct host_wait *place)
{
    pthread_cleanup_push(host_wait_cancelled, place);
    sys_futex_wait_cancellable(&st->wake_seq, place->seq, place->until, 0);
    pthread_cleanup_pop(0);
}

int fshost_acquire(uint64_t timeout_ns, uint64_t *waited_ns)
{
    *waited_ns = 0;
    if (atomic_load_explicit(&unusable, memory_order_relaxed))
        return 2;
    know_myself();
    if (host_lock() != 0)
        return 2;
    struct holder *h = my_holder();
    if (h == NULL)
        return too_crowded("processes");
    if (st->nwaiting == 0 && st->in_use < st->limit) {
        st->in_use++;
        h->held++;
        host_unlock();
        return 0;
    }

    struct waiting *w = NULL;
    for (int i = 0; i < NWAITING && w == NULL; i++)
        if (st->waiting[i].pid == 0)
            w = &st->waiting[i];
    if (w == NULL)
        return too_crowded("waiting threads");
    uint64_t ticket = ++st->next_ticket;
    w->pid = my_pid;
    w->start = my_start;
    w->ticket = ticket;
    w->stopped = 0;
    st->nwaiting++;

    uint64_t start = sys_mono_ns();
    uint64_t deadline = timeout_ns != 0 ? start + timeout_ns : 0;
    uint64_t last_check = start;
    int result;
    for (;;) {
        uint32_t seq = atomic_load(&st->wake_seq);
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
        if (w->pid != my_pid || w->ticket != ticket) {
            result = 2;                  /* our place was lost: never seen, but never hang */
            break;
        }
        w->stopped = 0;                  /* running again: back in line */
        h = my_holder();
        if (h != NULL && st->in_use < st->limit && first_in_line(ticket)) {
            w->pid = 0;
            st->nwaiting--;
            st->in_use++;
            h->held++;
            result = 0;
            break;
        }
        now = sys_mono_ns();
        if (deadline != 0 && now >= deadline) {
            w->pid = 0;
            st->nwaiting--;
            result = 1;
            break;
        }
        if (now - last_check >= FSHOST_REAP_AFTER_NS) {
            last_check = now;
            reap();
        }
    }
    /* The next in line may be able to go now (tokens left, or we were the head). */
    bool wake = false;
    if (st->in_use < st->limit)
        wake_waiters_locked(&wake);
    host_unlock();
    if (wake)
        sys_futex_wake(&st->wake_seq, INT_MAX, 0);
    *waited_ns = sys_mono_ns() - start + 1;
    return result;
}

void fshost_release(void)
{
    if (atomic_load_explicit(&unusable, memory_order_relaxed) || host_lock() != 0)
        return;
    struct holder *h = my_rec >= 0 ? &st->holders[my_rec] : NULL;
    if (h != NULL && h->pid == my_pid && h->start == my_start && h->held > 0) {
        h->held--;
        if (st->in_use > 0)
            st->in_use--;
    }
    bool wake = false;
    wake_waiters_locked(&wake);
    host_unlock();
    if (wake)
        sys_futex_wake(&st->wake_seq, INT_MAX, 0);
}

void fshost_atfork_child(void)
{
    my_pid = 0;
    my_rec = -1;
}

/* Builds a fresh state in an unnamed file (O_TMPFILE) and links it into place,
 * so that a process killed half-way leaves nothing behind; where O_TMPFILE is
 * not supported, under a private name instead. EEXIST from the link means
 * another process won the race, which is fine. */
static int create_state(uint32_t limit)
{
    char tmp[SLUICE_PATH_MAX + 32];
    tmp[0] = '\0';
    int fd = REAL(open)("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(tmp, sizeof tmp, "%s.new.%d", state_path, (int) getpid());
        unlink(tmp);
        fd = REAL(open)(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
    }
    int ok = fchmod(fd, 0600) == 0 && ftruncate(fd, sizeof(struct host_state)) == 0;
    struct host_state *s = ok ? mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                              : MAP_FAILED;
    if (s != MAP_FAILED) {
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&s->lock, &attr);
        pthread_mutexattr_destroy(&attr);
        s->version = HOST_VERSION;
        s->size = sizeof *s;
        s->uid = (uint32_t) getuid();
        s->limit = limit;
        atomic_thread_fence(memory_order_release);
        s->magic = HOST_MAGIC;
        munmap(s, sizeof *s);
    } else {
        ok = 0;
    }
    int r = -1;
    if (ok && tmp[0] == '\0') {
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        r = linkat(AT_FDCWD, self, AT_FDCWD, state_path, AT_SYMLINK_FOLLOW) == 0 || errno == EEXIST
            ? 0 : -1;
    } else if (ok) {
        r = link(tmp, state_path) == 0 || errno == EEXIST ? 0 : -1;
    }
    KEEP_ERRNO(REAL(close)(fd));
    if (tmp[0] != '\0')
        KEEP_ERRNO(unlink(tmp));
    return r;
}

int fshost_init(uint32_t limit, const char *key)
{
    snprintf(state_path, sizeof state_path, "/dev/shm/sluice-fs-%u-%s", (unsigned) getuid(), key);
    int fd = -1;
    for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
        fd = REAL(open)(state_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0)
            break;
        if (errno == ELOOP) {
            broken("it is a symbolic link");
            return -1;
        }
        if (errno != ENOENT) {
            broken(strerror(errno));
            return -1;
        }
        if (create_state(limit) != 0) {
            broken(strerror(errno));
            return -1;
        }
    }
    if (fd < 0) {
        broken("it keeps disappearing");
        return -1;
    }
    struct stat sb;
    const char *bad = NULL;
    if (fstat(fd, &sb) != 0)
        bad = strerror(errno);
    else if (!S_ISREG(sb.st_mode))
        bad = "not a regular file";
    else if (sb.st_uid != getuid())
        bad = "owned by another user";
    else if ((sb.st_mode & 07777) != 0600)
        bad = "its mode is not 0600";
    else if (sb.st_size != (off_t) sizeof(struct host_state))
        bad = "wrong size (another version, or damaged; remove it)";
    struct host_state *s = MAP_FAILED;
    if (bad == NULL) {
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s == MAP_FAILED)
            bad = strerror(errno);
    }
    REAL(close)(fd);
    if (bad == NULL && (s->magic != HOST_MAGIC || s->version != HOST_VERSION
                        || s->size != sizeof *s))
        bad = "bad header (another version, or damaged; remove it)";
    else if (bad == NULL && (s->uid != (uint32_t) getuid() || s->limit == 0
                             || s->limit > 1000000))
        bad = "damaged header (remove it)";
    if (bad != NULL) {
        if (s != MAP_FAILED)
            munmap(s, sizeof *s);
        broken(bad);
        return -1;
    }
    st = s;
    /* Records under our pid and start time are from before an exec of this
     * same process: whatever they held, nobody here holds it now. */
    know_myself();
    if (host_lock() != 0)
        return -1;
    for (int i = 0; i < NHOLDERS; i++)
        if (st->holders[i].pid == my_pid && st->holders[i].start == my_start)
            st->holders[i].pid = 0, st->holders[i].held = 0;
    for (int i = 0; i < NWAITING; i++)
        if (st->waiting[i].pid == my_pid && st->waiting[i].start == my_start)
            st->waiting[i].pid = 0;
    reap();
    host_unlock();
    if (s->limit != limit)
        log_warn("SLUICE_FS_MAX=%u: key '%s' already has a budget of %u, which applies",
                 (unsigned) limit, key, (unsigned) s->limit);
    return 0;
}
