/* statsfile.c — the stats file on disk (see statsfile.h). Why it is built so:
 *
 * - Readers (node_exporter's textfile collector) must only ever see a whole
 *   file, so every write is a fresh inode renamed over the target. The inode is
 *   made unnamed (O_TMPFILE) and has a name only between linkat and renameat:
 *   a process killed while writing leaves nothing behind. Where O_TMPFILE is
 *   missing, a named temp file (O_EXCL|O_NOFOLLOW) is the fallback.
 * - Temp names carry the writer's pid and start time (NAME.tmp.PID.START.RAND):
 *   the first write of every later writer of the same path removes those of
 *   writers that are gone (killed between link and rename, or mid-fallback).
 * - The directory is opened once, at start-up: a later chdir, or a privilege
 *   drop that loses search access to the directory's parents, does not move or
 *   lose the file. Every write checks it is still the same directory.
 * - A process dropping root (nginx and apache workers) cannot replace a file
 *   root created in a sticky directory (EPERM), so the file is handed to the
 *   uid the process is changing to (fchown, while still privileged; see
 *   wrap_cred.c). No write runs across the change. Where the new uid cannot
 *   create files in the directory, no atomic rewrite is possible (rename needs
 *   write access to the directory): one line says so and what to do, and the
 *   file is left as it was rather than rewritten in place, half-written to a
 *   reader.
 * - Without %p several processes can share the path (an exec'd child inherits
 *   the setting): the file's first line names its writer (pid, start time), and
 *   a process writes only while that writer is itself, gone, or younger: it
 *   takes over when an older writer ends (nginx's binary upgrade).
 * Every failure is said once per process, naming the file.
 * Who writes the file (this process's identity, the header line, an older
 * writer, temp names and the sweep of dead writers' temp files) is
 * statsfile_writers.c's. */
#include "statsfile.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fdtab.h"
#include "gate.h"
#include "log.h"
#include "real.h"
#include "statsfile_writers.h"

/* Error-checking: a signal handler that changes uid on a thread in the middle
 * of a write (the exit write runs on the program's thread) gets EDEADLK, not a
 * deadlock, and goes on without the lock. */
static pthread_mutex_t file_lock = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static __thread bool cred_holds_lock;

static char template_abs[SLUICE_PATH_MAX];  /* the setting, made absolute at start-up */
static bool has_pid;                        /* %p in it */
static bool pid_in_dir;                     /* %p in its directory part */
static char dir_path[SLUICE_PATH_MAX];      /* this process's directory */
static char name[256];                      /* this process's file name in it */
static char shown[SLUICE_PATH_MAX];         /* the whole path, for messages */
static int dir_fd = -1;                     /* O_PATH, opened at start-up */
static dev_t dir_dev;
static ino_t dir_ino;
static pid_t resolved_for;                  /* the pid dir_path and name are for */

static uid_t start_euid;
static dev_t last_dev;                      /* the file this process put in place */
static ino_t last_ino;
static bool swept;                          /* dead writers' temp files removed */
static bool finished;                       /* the exit write is done */
static bool yielded;                        /* has let an older writer be (said once) */
static _Atomic int warned;

#define SAY_ONCE(...) \
    do { \
        if (!atomic_exchange(&warned, 1)) \
            log_warn(__VA_ARGS__); \
    } while (0)

static void know_myself(void)
{
    statsfile_know_myself();
    start_euid = geteuid();
}

/* The template with %p as pid (%% as %); false if it does not fit. */
static bool expand(const char *tpl, pid_t pid, char *out, size_t cap)
{
    char digits[16];
    snprintf(digits, sizeof digits, "%d", (int) pid);
    size_t o = 0;
    for (const char *s = tpl; *s; s++) {
        const char *piece = s;
        size_t plen = 1;
        if (s[0] == '%' && s[1] == 'p') {
            piece = digits;
            plen = strlen(digits);
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            s++;
        }
        if (o + plen + 1 > cap)
            return false;
        memcpy(out + o, piece, plen);
        o += plen;
    }
    out[o] = '\0';
    return o > 0;
}

static void make_template(void)
{
    const char *set = sluice_cfg.stats_path;
    char cwd[SLUICE_PATH_MAX];
    bool relative = set[0] != '/' && getcwd(cwd, sizeof cwd) != NULL;
    if (!relative
        || (size_t) snprintf(template_abs, sizeof template_abs, "%s/%s", cwd, set)
               >= sizeof template_abs)
        snprintf(template_abs, sizeof template_abs, "%s", set);
    const char *slash = strrchr(template_abs, '/');
    for (const char *s = template_abs; *s; s++) {
        if (s[0] == '%' && (s[1] == 'p' || s[1] == '%')) {
            if (s[1] == 'p') {
                has_pid = true;
                pid_in_dir = pid_in_dir || (slash != NULL && s < slash);
            }
            s++;
        }
    }
}

static void drop_dir(void)
{
    if (dir_fd >= 0) {
        if (gates_on() != 0)
            fdtab_close_own(dir_fd);
        else
            REAL(close)(dir_fd);
    }
    dir_fd = -1;
}

static void open_dir(void)
{
    dir_fd = REAL(open)(dir_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (dir_fd >= 0 && fstat(dir_fd, &st) == 0) {
        dir_dev = st.st_dev;
        dir_ino = st.st_ino;
        /* A program that closes every descriptor must not take this one. */
        if (gates_on() != 0)
            fdtab_own(dir_fd);
    }
}

/* Directory and name for this process; the directory opened if new. */
static void resolve(void)
{
    char path[SLUICE_PATH_MAX];
    bool new_dir = dir_fd < 0 || pid_in_dir;
    resolved_for = getpid();
    name[0] = '\0';
    if (!expand(template_abs, resolved_for, path, sizeof path))
        return;
    snprintf(shown, sizeof shown, "%s", path);
    char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    size_t len = strlen(base);
    if (len >= sizeof name)
        return;
    memcpy(name, base, len + 1);
    if (!new_dir)
        return;
    if (slash == NULL)
        snprintf(dir_path, sizeof dir_path, ".");
    else if (slash == path)
        snprintf(dir_path, sizeof dir_path, "/");
    else
        snprintf(dir_path, sizeof dir_path, "%.*s", (int) (slash - path), path);
    drop_dir();
    open_dir();
}

/* dir_fd is still our directory (the program may have closed the number and
 * got it back for something else: then it is the program's, left alone), and
 * still the one at the path: one removed, or replaced by another, is left for
 * the path's (when the path can still be reached: after a privilege drop it
 * may not be, and the descriptor is what keeps the file going). */
static bool dir_usable(void)
{
    struct stat st, at_path;
    if (dir_fd >= 0
        && (fstat(dir_fd, &st) != 0 || st.st_dev != dir_dev || st.st_ino != dir_ino))
        dir_fd = -1;
    else if (dir_fd >= 0
             && (st.st_nlink == 0
                 || (stat(dir_path, &at_path) == 0
                     && (at_path.st_dev != dir_dev || at_path.st_ino != dir_ino))))
        drop_dir();
    if (dir_fd < 0)
        open_dir();
    return dir_fd >= 0 && name[0] != '\0';
}

void statsfile_start(void)
{
    pthread_mutex_lock(&file_lock);
    if (template_abs[0] == '\0') {
        make_template();
        know_myself();
    }
    if (resolved_for != getpid())
        resolve();
    pthread_mutex_unlock(&file_lock);
}

/* A new file with the text, named tmp in the directory; its descriptor. */
static int write_temp(const char *text, size_t len, char *tmp, size_t cap, const char **step)
{
    bool unnamed = true;
    *step = "cannot create a file in";
    int fd = REAL(openat)(dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        unnamed = false;
        for (int attempt = 0; attempt < 8; attempt++) {
            statsfile_temp_name(name, tmp, cap);
            fd = REAL(openat)(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                              0600);
            if (fd >= 0 || errno != EEXIST)
                break;
        }
    }
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = REAL(write)(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t) n;
    }
    if (done == len && unnamed) {
        *step = "cannot name a file in";
        char self[64];
        snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
        for (int attempt = 0; attempt < 8; attempt++) {
            statsfile_temp_name(name, tmp, cap);
            /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (root); /proc does not. */
            if (linkat(fd, "", dir_fd, tmp, AT_EMPTY_PATH) == 0
                || (errno != EEXIST
                    && linkat(AT_FDCWD, self, dir_fd, tmp, AT_SYMLINK_FOLLOW) == 0))
                return fd;
            if (errno != EEXIST)
                break;
        }
    } else if (done == len) {
        return fd;
    } else {
        *step = "cannot write a file in";
        if (errno == 0)
            errno = EIO;
    }
    int err = errno;
    if (!unnamed)
        unlinkat(dir_fd, tmp, 0);
    REAL(close)(fd);
    errno = err;
    return -1;
}

static void say_cannot_create(const char *step)
{
    int err = errno;
    uid_t now = geteuid();
    if (now != start_euid && (err == EACCES || err == EPERM))
        SAY_ONCE("SLUICE_STATS: %s is no longer updated: this process changed to uid %u, "
                 "which cannot create files in %s (%s); make that directory writable by uid %u "
                 "(a sticky world-writable one such as /tmp will do)",
                 shown, (unsigned) now, dir_path, strerror(err), (unsigned) now);
    else
        SAY_ONCE("SLUICE_STATS: %s is not updated: %s %s (%s)", shown, step, dir_path,
                 strerror(err));
}

static void say_cannot_replace(void)
{
    int err = errno;
    struct stat st;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        SAY_ONCE("SLUICE_STATS: %s is not updated: a directory is at that path (%s); "
                 "remove it or choose another path", shown, strerror(err));
    else if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid != geteuid())
        SAY_ONCE("SLUICE_STATS: %s is not updated: cannot replace it (%s); it belongs to "
                 "uid %u and this process runs as uid %u: remove it or choose another path",
                 shown, strerror(err), (unsigned) st.st_uid, (unsigned) geteuid());
    else
        SAY_ONCE("SLUICE_STATS: %s is not updated: cannot replace it (%s)", shown, strerror(err));
}

void statsfile_write(const char *text, size_t len, bool final)
{
    int saved = errno;
    if (pthread_mutex_lock(&file_lock) != 0) {
        errno = saved;
        return;   /* a write interrupted on this thread by a handler that exits */
    }
    if (finished || template_abs[0] == '\0')
        goto out;
    finished = final;
    if (resolved_for != getpid())
        resolve();
    if (!dir_usable()) {
        if (name[0] == '\0')
            SAY_ONCE("SLUICE_STATS: %s: the path is too long", sluice_cfg.stats_path);
        else
            SAY_ONCE("SLUICE_STATS: %s is not written: cannot open %s (%s)", shown, dir_path,
                     strerror(errno));
        goto out;
    }
    if (!has_pid && statsfile_older_writer_lives(dir_fd, name)) {
        if (!yielded)
            log_debug("SLUICE_STATS: %s is written by an older process; this one writes it "
                      "only after that one ends (use %%p for a file of its own)", shown);
        yielded = true;
        goto out;
    }
    if (!swept) {
        swept = true;
        statsfile_sweep_dead_temps(dir_fd, template_abs);
    }
    char tmp[sizeof name + 64];
    const char *step;
    int fd = write_temp(text, len, tmp, sizeof tmp, &step);
    if (fd < 0) {
        say_cannot_create(step);
        goto out;
    }
    struct stat st;
    bool known = fstat(fd, &st) == 0;
    if (renameat(dir_fd, tmp, dir_fd, name) == 0) {
        last_dev = known ? st.st_dev : 0;
        last_ino = known ? st.st_ino : 0;
    } else {
        say_cannot_replace();
        unlinkat(dir_fd, tmp, 0);
    }
    REAL(close)(fd);
out:
    pthread_mutex_unlock(&file_lock);
    errno = saved;
}

void statsfile_cred_begin(uid_t new_euid)
{
    int saved = errno;
    cred_holds_lock = pthread_mutex_lock(&file_lock) == 0;
    struct stat st;
    if (new_euid == (uid_t) -1 || last_ino == 0 || resolved_for != getpid() || dir_fd < 0
        || fstat(dir_fd, &st) != 0 || st.st_dev != dir_dev || st.st_ino != dir_ino)
        goto out;
    /* Only the very file this process put there: never one planted since. */
    int fd = REAL(openat)(dir_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) == 0 && st.st_dev == last_dev && st.st_ino == last_ino
        && st.st_uid != new_euid)
        (void) fchownat(fd, "", new_euid, (gid_t) -1, AT_EMPTY_PATH);
    REAL(close)(fd);
out:
    errno = saved;
}

void statsfile_cred_end(void)
{
    if (cred_holds_lock)
        KEEP_ERRNO(pthread_mutex_unlock(&file_lock));
    cred_holds_lock = false;
}

void statsfile_atfork_child(bool writes)
{
    /* The parent's writer may have held the lock at the fork. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&file_lock, &attr);
    pthread_mutexattr_destroy(&attr);
    last_dev = 0;
    last_ino = 0;
    if (!writes)
        return;   /* most children exec at once: no /proc read for them */
    know_myself();
    swept = false;
    finished = false;
    yielded = false;
    atomic_store(&warned, 0);
}
