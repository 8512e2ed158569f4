/* gate.c — picks the gate for one call by the kind of its descriptor, so that
 * wrappers stay a few lines and gates never call each other's internals. */
#include "gate.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "drain.h"
#include "fdtab.h"
#include "fsgate.h"
#include "idle.h"

int gate_enter_fd(struct pass *p, int fd, enum io_dir dir, int msgflags)
{
    unsigned gates = gates_on();
    enum fd_kind kind;
    struct fdent *e = fdtab_entry_fast(fd, &kind);
    p->ent = e;
    p->fd = fd;
    p->dir = (unsigned char) dir;
    p->kind = (unsigned char) kind;
    p->fs_token = 0;
    p->stream_locked = NULL;
    switch (kind) {
    case FD_FILE:
        if (gates & GATE_FS) {
            if (fsgate_acquire() < 0)
                return -1;
            p->fs_token = 1;
        }
        return 0;
    case FD_CONN:
    case FD_STREAM:
        if (dir == IO_OUT)
            return (gates & GATE_DRAIN) ? drain_before_write(fd, e, msgflags) : 0;
        if (dir == IO_IN) {
            if ((gates & GATE_DRAIN) && drain_before_read(fd, e, msgflags) < 0)
                return -1;
            if (kind == FD_CONN && (gates & GATE_CONN) && idle_on())
                return idle_before_read(fd, e, msgflags);
        }
        return 0;
    default:
        return 0;
    }
}

static void unlock_stream(void *stream)
{
    funlockfile(stream);
}

/* A thread that ends inside a gated stdio call (cancelled in the real call,
 * whose read or write is a cancellation point) must not leave the stream
 * locked by a thread that is gone: glibc's own cleanup undoes only its own
 * lock. The stream held now is remembered per thread, and a key's destructor,
 * armed once per thread, lets it go. */
static pthread_key_t stream_key;
static pthread_once_t stream_key_once = PTHREAD_ONCE_INIT;
static _Atomic bool stream_key_made;
static __thread FILE *stream_held;
static __thread uint8_t stream_armed;

static void stream_gone(void *unused)
{
    (void) unused;
    FILE *f = stream_held;
    stream_held = NULL;
    if (f != NULL)
        funlockfile(f);
}

static void make_stream_key(void)
{
    if (pthread_key_create(&stream_key, stream_gone) == 0)
        atomic_store(&stream_key_made, true);
}

/* stream is locked for the call p: remembered until gate_leave. */
static void hold_stream(struct pass *p, FILE *stream)
{
    if (unlikely(!stream_armed)) {
        stream_armed = 1;
        pthread_once(&stream_key_once, make_stream_key);
        if (atomic_load(&stream_key_made))
            pthread_setspecific(stream_key, &stream_armed);
    }
    p->stream_locked = stream;
    p->outer_stream = stream_held;
    stream_held = stream;
}

/* gate_enter_fd with stream locked: a thread cancelled while it waits for a
 * token lets the stream go. (A frame of its own for the cleanup's setjmp.) */
static int enter_fd_stream_locked(struct pass *p, int fd, enum io_dir dir, FILE *stream)
{
    volatile int r = 0;
    pthread_cleanup_push(unlock_stream, stream);
    r = gate_enter_fd(p, fd, dir, 0);
    pthread_cleanup_pop(0);
    return r;
}

int gate_enter_stream(struct pass *p, FILE *stream, enum io_dir dir, const struct stdio_call *call)
{
    int fd = stream != NULL ? fileno_unlocked(stream) : -1;
    enum fd_kind kind = fd >= 0 ? fdtab_kind_fast(fd) : FD_OTHER;
    if (kind != FD_FILE && kind != FD_CONN && kind != FD_STREAM) {
        /* No gate cares (a tty, a pipe, /dev/null), or a stream with no
         * descriptor at all (fmemopen, open_memstream). */
        p->fd = -1;
        p->ent = NULL;
        p->kind = FD_OTHER;
        p->dir = (unsigned char) dir;
        p->fs_token = 0;
        p->stream_locked = NULL;
        return 0;
    }
    /* Lock order: the stream, then the token. The real call locks the stream
     * anyway; taking a token first would let a thread wait for the stream while
     * holding a token that the stream's holder (flockfile) waits for. */
    bool lock = (gates_on() & GATE_FS) && kind == FD_FILE;
    if (!lock)
        return gate_enter_fd(p, fd, dir, 0);
    flockfile(stream);
    if (!stdio_reaches_kernel(stream, call)) {
        /* Served from the buffer: no file operation, no token. The stream
         * stays locked so that nobody empties or fills it meanwhile. */
        p->fd = fd;
        p->ent = NULL;
        p->kind = FD_FILE;
        p->dir = (unsigned char) dir;
        p->fs_token = 0;
        hold_stream(p, stream);
        return 0;
    }
    int r = enter_fd_stream_locked(p, fd, dir, stream);
    if (r < 0)
        KEEP_ERRNO(funlockfile(stream));
    else
        KEEP_ERRNO(hold_stream(p, stream));
    return r;
}

/* Whether opening path is filesystem I/O worth a token. Opening a FIFO waits
 * for the other end and opening a device can wait on the device: a token held
 * through that would stall every file operation of the budget (or deadlock a
 * program whose other end opens the FIFO). One fstatat tells them apart; a path
 * that does not exist yet is a file about to be created. */
static bool open_is_file_io(int dirfd, const char *path, int flags)
{
    if (flags & O_PATH)
        return false;
    /* These cannot wait on a FIFO's peer: no need to look first (the look
     * costs about half as much as the open and close it guards). */
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL) || (flags & O_TMPFILE) == O_TMPFILE
        || (flags & (O_NONBLOCK | O_DIRECTORY)) != 0)
        return true;
    if (path == NULL)
        return true;
    struct stat st;
    int saved = errno;
    int r = fstatat(dirfd, path, &st, (flags & O_NOFOLLOW) ? AT_SYMLINK_NOFOLLOW : 0);
    errno = saved;
    if (r != 0)
        return true;
    return !(S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode));
}

int gate_enter_open(struct pass *p, int dirfd, const char *path, int flags)
{
    p->fd = -1;
    p->ent = NULL;
    p->kind = FD_FILE;
    p->dir = IO_IN;
    p->fs_token = 0;
    p->stream_locked = NULL;
    if ((gates_on() & GATE_FS) && open_is_file_io(dirfd, path, flags)) {
        if (fsgate_acquire() < 0)
            return -1;
        p->fs_token = 1;
    }
    return 0;
}

void gate_leave_slow(struct pass *p, long result)
{
    int saved = errno;
    if (p->fs_token || p->stream_locked != NULL) {
        if (p->fs_token)
            fsgate_release();
        if (p->stream_locked != NULL) {
            stream_held = p->outer_stream;
            funlockfile(p->stream_locked);
        }
    } else if (p->kind == FD_CONN || p->kind == FD_STREAM) {
        unsigned gates = gates_on();
        bool idle = p->kind == FD_CONN && (gates & GATE_CONN) && idle_on();
        if (p->dir == IO_OUT) {
            if (gates & GATE_DRAIN)
                drain_after_write(p->fd, p->ent, result);
            if (idle)
                idle_after_write(p->fd, p->ent, result);
        } else if (p->dir == IO_IN && idle) {
            idle_after_read(p->fd, p->ent, result);
        }
    }
    errno = saved;
}

void gate_leave_open(struct pass *p, int fd)
{
    int saved = errno;
    if (p->fs_token)
        fsgate_release();
    if (fd >= 0)
        fdtab_reborn(fd);
    errno = saved;
}

void gate_accepted(int fd, int accept_flags)
{
    fdtab_accepted(fd, accept_flags);
}
