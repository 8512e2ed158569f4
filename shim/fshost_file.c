/* fshost_file.c — the host budget's state file: the user's directory, making
 * the file (pages allocated first), opening and checking it, mapping it, and
 * surviving its truncation under the mapping. The budget's logic on top of the
 * mapping is fshost.c's (see its opening comment for the rules). */
#include "fshost_file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"

_Atomic int fshost_unusable;
_Atomic int fshost_truncated;
static struct fshost_state *guarded;     /* the mapping the SIGBUS handler answers for */

/* --- SIGBUS from a truncated state file ---------------------------------------------- */

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    char *addr = si != NULL ? (char *) si->si_addr : NULL;
    char *base = (char *) guarded;
    if (base != NULL && addr >= base && addr < base + sizeof *guarded) {
        /* Ours: the pages went away. Anonymous zeros in their place let the
         * interrupted access finish; the gate is off from here on. */
        mmap(base, sizeof *guarded, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        atomic_store(&fshost_unusable, 1);
        atomic_store(&fshost_truncated, 1);
        return;
    }
    /* Not ours: the default disposition back. A fault re-runs its access on
     * return and ends the program as it would have; a SIGBUS sent by someone
     * (kill, sigqueue) is sent again. */
    signal(sig, SIG_DFL);
    if (si == NULL || si->si_code <= 0)
        raise(sig);
    (void) ctx;
}

/* Only when SIGBUS has its default disposition: a program's own handler (it
 * maps files of its own) is left alone, and so is an ignored SIGBUS. */
static void guard_against_truncation(struct fshost_state *s)
{
    guarded = s;
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
static int create_state(int dfd, const char *name, uint32_t limit)
{
    char tmp[128];
    tmp[0] = '\0';
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
        err = posix_fallocate(fd, 0, sizeof(struct fshost_state));
    struct fshost_state *s = MAP_FAILED;
    if (err == 0) {
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s == MAP_FAILED)
            err = errno;
    }
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
        /* No fence needed before the magic: nobody can open the file until
         * the linkat below names it, and that system call comes after. */
        s->magic = HOST_MAGIC;
        munmap(s, sizeof *s);
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

int fshost_file_map(uint32_t limit, const char *key, char *state_path, size_t cap,
                    struct fshost_state **out, const char **why)
{
    char name[96];
    snprintf(name, sizeof name, FSHOST_FILE_FMT, key);
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
        int err = create_state(dfd, name, limit);
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
    if (fstat(fd, &sb) != 0)
        bad = strerror(errno);
    else if (!S_ISREG(sb.st_mode))
        bad = "not a regular file";
    else if (sb.st_uid != getuid())
        bad = "owned by another user";
    else if ((sb.st_mode & 07777) != 0600)
        bad = "its mode is not 0600";
    else if (sb.st_size != (off_t) sizeof(struct fshost_state))
        bad = "wrong size (another version, or damaged; remove it)";
    else if (posix_fallocate(fd, 0, sizeof(struct fshost_state)) == ENOSPC)
        bad = "no room for its pages (the tmpfs is full)";
    struct fshost_state *s = MAP_FAILED;
    if (bad == NULL) {
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s == MAP_FAILED)
            bad = strerror(errno);
    }
    REAL(close)(fd);
    if (bad == NULL) {
        /* From the first touch on, a truncation must not kill the program. */
        guard_against_truncation(s);
    }
    if (bad == NULL && (s->magic != HOST_MAGIC || s->version != HOST_VERSION
                        || s->size != sizeof *s))
        bad = "bad header (another version, or damaged; remove it)";
    else if (bad == NULL && (s->uid != (uint32_t) getuid() || s->limit == 0
                             || s->limit > 1000000))
        bad = "damaged header (remove it)";
    if (bad == NULL && atomic_load(&fshost_unusable))
        bad = "it shrank while being opened";
    if (bad != NULL) {
        if (s != MAP_FAILED && !atomic_load(&fshost_truncated)) {
            guarded = NULL;
            munmap(s, sizeof *s);
        }
        *why = bad;
        return -1;
    }
    *out = s;
    return 0;
}
