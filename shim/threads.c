/* threads.c — keeps sluice's own threads from keeping a process alive. glibc
 * ends a process when its last thread returns or calls pthread_exit (it calls
 * exit(0) then), but it counts our threads as the program's: a program whose
 * main thread calls pthread_exit, or a child forked from a worker thread whose
 * thread then returns (Python's os.fork() in a thread), would live on forever
 * with only sluice inside, deaf to every signal our threads block. So our
 * threads look now and then whether any thread of the program's is left, and
 * end the process as glibc would have when none is. */
#include "threads.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "procstat.h"
#include "real.h"
#include "sys.h"

#define OWN_MAX 8
static _Atomic pid_t own[OWN_MAX];

void threads_adopt_self(void)
{
    pid_t me = sys_gettid();
    for (int i = 0; i < OWN_MAX; i++) {
        pid_t none = 0;
        if (atomic_compare_exchange_strong(&own[i], &none, me))
            return;
    }
}

struct start {
    void *(*fn)(void *);
    _Atomic uint32_t running;
};

static void *trampoline(void *arg)
{
    struct start *st = arg;
    void *(*fn)(void *) = st->fn;
    threads_adopt_self();
    atomic_store(&st->running, 1);
    /* The starter may have seen the store and returned: its frame is gone and
     * the wake only names the address (at worst a spurious wake of a later
     * waiter there, which every futex waiter tolerates). st is not read again. */
    sys_futex_wake(&st->running, 1, true);
    return fn(NULL);
}

bool threads_start(void *(*fn)(void *), size_t stack_size)
{
    int saved = errno;
    struct start st = { .fn = fn, .running = 0 };
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (stack_size != 0)
        pthread_attr_setstacksize(&attr, stack_size);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    bool started = pthread_create(&t, &attr, trampoline, &st) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    while (started && atomic_load(&st.running) == 0)
        sys_futex_wait(&st.running, 0, 0, true);
    errno = saved;
    return started;
}

void threads_atfork_child(void)
{
    for (int i = 0; i < OWN_MAX; i++)
        atomic_store(&own[i], 0);
}

static bool is_ours(pid_t tid)
{
    for (int i = 0; i < OWN_MAX; i++)
        if (atomic_load(&own[i]) == tid)
            return true;
    return false;
}

/* The state letter of a /proc stat file ('R', 'S', 'Z', ...), 0 if unknown. */
static char state_of(const char *path)
{
    char buf[512];
    const char *p = procstat_fields(path, buf, sizeof buf);
    return p != NULL ? *p : 0;
}

static bool ended(char state)
{
    return state == 'Z' || state == 'X';
}

struct dirent64_raw {
    unsigned long long ino;
    long long off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

bool threads_only_ours_left(void)
{
    /* The main thread is never ours; while it lives, the program does. */
    char leader = state_of("/proc/self/stat");
    if (leader == 0 || !ended(leader))
        return false;
    int dir = REAL(open)("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return false;
    pid_t self = getpid();
    bool alone = true;
    char buf[4096];
    for (;;) {
        long n = REAL(syscall)(SYS_getdents64, (long) dir, (long) buf, (long) sizeof buf);
        if (n <= 0) {
            if (n < 0)
                alone = false;   /* cannot tell: the program may live */
            break;
        }
        for (long off = 0; off < n && alone;) {
            struct dirent64_raw *d = (struct dirent64_raw *) (buf + off);
            off += d->reclen;
            if (d->name[0] < '0' || d->name[0] > '9')
                continue;
            pid_t tid = (pid_t) atoi(d->name);
            if (tid == self || is_ours(tid))
                continue;
            char path[64];
            snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int) tid);
            char st = state_of(path);
            if (st != 0 && !ended(st))
                alone = false;
        }
        if (!alone)
            break;
    }
    REAL(close)(dir);
    return alone;
}

void threads_exit_if_only_ours(void)
{
    if (threads_only_ours_left())
        exit(0);
}
