/* fshost_file.c — the host budgets' state files: the user's directory, making
 * a file (pages allocated first), opening and checking it, mapping it, and
 * surviving its truncation under the mapping; and the robust lock they share.
 * One kind of file per budget (struct hostfile_kind): the filesystem budget's
 * (fshost.c, see its opening comment for the rules) and the connection
 * budget's (connhost.c). */
#include "fshost_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "real.h"
#include "sys.h"

_Atomic int fshost_unusable;
_Atomic int fshost_truncated;

/* The mappings the SIGBUS handler answers for: one per kind of budget. */
#define GUARDED_MAX 2
static struct {
    char *_Atomic base;
    size_t len;
    const struct hostfile_kind *kind;
} guarded[GUARDED_MAX];

/* --- SIGBUS from a truncated state file ---------------------------------------------- */

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    char *addr = si != NULL ? (char *) si->si_addr : NULL;
    for (int i = 0; i < GUARDED_MAX; i++) {
        char *base = atomic_load(&guarded[i].base);
        if (base != NULL && addr >= base && addr < base + guarded[i].len) {
            /* Ours: the pages went away. Anonymous zeros in their place let the
             * interrupted access finish; the gate is off from here on. */
            mmap(base, guarded[i].len, PROT_READ | PROT_WRITE,
                 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            atomic_store(guarded[i].kind->unusable, 1);
            atomic_store(guarded[i].kind->truncated, 1);
            return;
        }
    }
    /* Not ours: the default disposition back. A fault re-runs its access on
     * return and ends the program as it would have; a SIGBUS sent by someone
     * (kill, sigqueue) is sent again. */
    signal(sig, SIG_DFL);
    if (si == NULL || si->si_code <= 0)
        raise(sig);
    (void) ctx;
}

/* Only when SIGBUS has its default disposition (or is ours already): a
 * program's own handler (it maps files of its own) is left alone, and so is an
 * ignored SIGBUS. */
static void guard_against_truncation(const struct hostfile_kind *k, void *s, size_t len)
{
    for (int i = 0; i < GUARDED_MAX; i++) {
        if (guarded[i].kind == k || (guarded[i].kind == NULL && atomic_load(&guarded[i].base) == NULL)) {
            guarded[i].len = len;
            guarded[i].kind = k;
            atomic_store(&guarded[i].base, (char *) s);
            break;
        }
    }
    struct sigaction cur;
    if (sigaction(SIGBUS, NULL, &cur) != 0)
        return;
    if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

static void unguard(const struct hostfile_kind *k)
{
    for (int i = 0; i < GUARDED_MAX; i++)
        if (guarded[i].kind == k)
            atomic_store(&guarded[i].base, NULL);
}

/* --- the state file ------------------------------------------------------------------ */

/* The user's directory, created if missing; a descriptor, or -1 after one line. */
static int open_user_dir(const char **why)
{
    char path[64];
    snprintf(path, sizeof path, FSHOST_DIR_FMT, (unsigned) getuid());
    if (mkdir(path, 0700) == 0) {
        /* Ours (others cannot replace an entry of ours in the sticky /dev/shm):
         * 0700 whatever the umask, so that we can use it. */
        chmod(path, 0700);
    } else if (errno != EEXIST) {
        *why = strerror(errno);
        return -1;
    }
    int dfd = REAL(open)(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        *why = errno == ELOOP || errno == ENOTDIR ? "its directory is not a directory of ours"
                                                  : strerror(errno);
        return -1;
    }
    struct stat sb;
    const char *bad = NULL;
    if (fstat(dfd, &sb) != 0)
        bad = strerror(errno);
    else if (sb.st_uid != getuid())
        bad = "its directory is owned by another user";
    else if (sb.st_mode & 0077)
        bad = "its directory is open to other users (want mode 0700)";
    if (bad != NULL) {
        REAL(close)(dfd);
        *why = bad;
        return -1;
    }
    return dfd;
}

/* Builds a fresh state in an unnamed file (O_TMPFILE) and links it into place,
 * so that a process killed half-way leaves nothing behind; where O_TMPFILE is
 * not supported, under a private name instead. EEXIST from the link means
 * another process won the race, which is fine. Returns 0, or an errno value. */
static int create_state(const struct hostfile_kind *k, int dfd, const char *name, uint32_t limit)
{
    char tmp[128];
    tmp[0] = '\0';
    size_t size = k->size_for(limit);
    int fd = REAL(openat)(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(tmp, sizeof tmp, "%s.new.%d", name, (int) getpid());
        unlinkat(dfd, tmp, 0);
        fd = REAL(openat)(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return errno;
    }
    int err = 0;
    if (fchmod(fd, 0600) != 0)
        err = errno;
    /* Every page allocated now: a full tmpfs says ENOSPC here, not SIGBUS later. */
    if (err == 0)
        err = posix_fallocate(fd, 0, (off_t) size);
    void *m = MAP_FAILED;
    if (err == 0) {
        m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            err = errno;
    }
    if (m != MAP_FAILED) {
        k->init(m, limit);
        struct hostfile_header *h = m;
        h->version = k->version;
        h->size = (uint32_t) size;
        h->uid = (uint32_t) getuid();
        h->limit = limit;
        /* No fence needed before the magic: nobody can open the file until
         * the linkat below names it, and that system call comes after. */
        h->magic = k->magic;
        munmap(m, size);
    }
    if (err == 0 && tmp[0] == '\0') {
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        if (linkat(AT_FDCWD, self, dfd, name, AT_SYMLINK_FOLLOW) != 0 && errno != EEXIST)
            err = errno;
    } else if (err == 0) {
        if (linkat(dfd, tmp, dfd, name, 0) != 0 && errno != EEXIST)
            err = errno;
    }
    REAL(close)(fd);
    if (tmp[0] != '\0')
        unlinkat(dfd, tmp, 0);
    return err;
}

#define LIMIT_MOST 1000000u

/* The header of a mapped state, checked; NULL, or what is wrong with it. */
static const char *check_header(const struct hostfile_kind *k, const struct hostfile_header *h, size_t len)
{
    if (h->magic != k->magic || h->version != k->version || h->size != len)
        return "bad header (another version, or damaged; remove it)";
    if (h->uid != (uint32_t) getuid() || h->limit == 0 || h->limit > LIMIT_MOST)
        return "damaged header (remove it)";
    if (k->size_for(h->limit) != len)
        return "wrong size (another version, or damaged; remove it)";
    return NULL;
}

int hostfile_map(const struct hostfile_kind *k, uint32_t limit, const char *key,
                 char *state_path, size_t cap, void **out, size_t *len_out, const char **why)
{
    char name[96];
    snprintf(name, sizeof name, k->name_fmt, key);
    snprintf(state_path, cap, FSHOST_DIR_FMT "/%s", (unsigned) getuid(), name);
    int dfd = open_user_dir(why);
    if (dfd < 0)
        return -1;
    int fd = -1;
    for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
        fd = REAL(openat)(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd >= 0)
            break;
        if (errno == ELOOP) {
            REAL(close)(dfd);
            *why = "it is a symbolic link";
            return -1;
        }
        if (errno != ENOENT) {
            int err = errno;
            REAL(close)(dfd);
            *why = strerror(err);
            return -1;
        }
        int err = create_state(k, dfd, name, limit);
        if (err != 0) {
            REAL(close)(dfd);
            *why = err == ENOSPC ? "no room to create it (the tmpfs is full)" : strerror(err);
            return -1;
        }
    }
    REAL(close)(dfd);
    if (fd < 0) {
        *why = "it keeps disappearing";
        return -1;
    }
    struct stat sb;
    const char *bad = NULL;
    size_t len = 0;
    if (fstat(fd, &sb) != 0)
        bad = strerror(errno);
    else if (!S_ISREG(sb.st_mode))
        bad = "not a regular file";
    else if (sb.st_uid != getuid())
        bad = "owned by another user";
    else if ((sb.st_mode & 07777) != 0600)
        bad = "its mode is not 0600";
    else if (k->fixed_size ? sb.st_size != (off_t) k->size_for(limit)
                           : sb.st_size < (off_t) k->size_for(1) || sb.st_size > (off_t) k->size_for(LIMIT_MOST))
        bad = "wrong size (another version, or damaged; remove it)";
    else if (posix_fallocate(fd, 0, sb.st_size) == ENOSPC)
        bad = "no room for its pages (the tmpfs is full)";
    void *s = MAP_FAILED;
    if (bad == NULL) {
        len = (size_t) sb.st_size;
        s = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s == MAP_FAILED)
            bad = strerror(errno);
    }
    REAL(close)(fd);
    if (bad == NULL) {
        /* From the first touch on, a truncation must not kill the program. */
        guard_against_truncation(k, s, len);
        bad = check_header(k, s, len);
    }
    if (bad == NULL && atomic_load(k->unusable))
        bad = "it shrank while being opened";
    if (bad != NULL) {
        if (s != MAP_FAILED && !atomic_load(k->truncated)) {
            unguard(k);
            munmap(s, len);
        }
        *why = bad;
        return -1;
    }
    *out = s;
    *len_out = len;
    return 0;
}

/* --- the filesystem budget's file ---------------------------------------------------- */

_Static_assert(offsetof(struct fshost_state, limit) == offsetof(struct hostfile_header, limit),
               "the filesystem state opens with the common header");

static size_t fs_size(uint32_t limit)
{
    (void) limit;
    return sizeof(struct fshost_state);
}

static void fs_init(void *mem, uint32_t limit)
{
    (void) limit;
    hostfile_init_lock(&((struct fshost_state *) mem)->lock);
}

static const struct hostfile_kind fs_kind = {
    FSHOST_FILE_FMT, HOST_MAGIC, HOST_VERSION, fs_size, true, fs_init,
    &fshost_unusable, &fshost_truncated,
};

int fshost_file_map(uint32_t limit, const char *key, char *state_path, size_t cap,
                    struct fshost_state **out, const char **why)
{
    void *m = NULL;
    size_t len = 0;
    if (hostfile_map(&fs_kind, limit, key, state_path, cap, &m, &len, why) != 0)
        return -1;
    *out = m;
    return 0;
}

/* --- the lock ------------------------------------------------------------------------ */

void hostfile_init_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
}

int hostfile_lock(pthread_mutex_t *m)
{
    int r = pthread_mutex_trylock(m);
    if (r == EBUSY) {
        uint64_t deadline = sys_mono_ns() + FSHOST_LOCK_BOUND_NS;
        struct timespec ts = sys_ns_ts(deadline);
        r = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
    }
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(m);
    return r;
}
