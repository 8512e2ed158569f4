/* gate.c — picks the gate for one call by the kind of its descriptor, so that
 * wrappers stay a few lines and gates never call each other's internals. */
#include "gate.h"

#include "conn.h"
#include "drain.h"
#include "fdtab.h"
#include "fsgate.h"
#include "idle.h"

int gate_enter_fd(struct pass *p, int fd, enum io_dir dir, int msgflags)
{
    unsigned gates = gates_on();
    enum fd_kind kind = fdtab_kind(fd);
    p->fd = fd;
    p->dir = (unsigned char) dir;
    p->kind = (unsigned char) kind;
    p->fs_token = 0;
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
            return (gates & GATE_DRAIN) ? drain_before_write(fd, msgflags) : 0;
        if (dir == IO_IN) {
            if ((gates & GATE_DRAIN) && drain_before_read(fd, msgflags) < 0)
                return -1;
            if (kind == FD_CONN && (gates & GATE_CONN) && idle_on())
                return idle_before_read(fd, msgflags);
        }
        return 0;
    default:
        return 0;
    }
}

int gate_enter_stream(struct pass *p, FILE *stream, enum io_dir dir)
{
    int fd = stream != NULL ? fileno_unlocked(stream) : -1;
    if (fd < 0) {
        /* A stream with no descriptor (fmemopen, open_memstream): nothing to gate. */
        p->fd = -1;
        p->kind = FD_OTHER;
        p->dir = (unsigned char) dir;
        p->fs_token = 0;
        return 0;
    }
    return gate_enter_fd(p, fd, dir, 0);
}

int gate_enter_open(struct pass *p, int dirfd, const char *path, int flags)
{
    (void) dirfd;
    (void) path;
    (void) flags;
    p->fd = -1;
    p->kind = FD_FILE;
    p->dir = IO_IN;
    p->fs_token = 0;
    if (gates_on() & GATE_FS) {
        if (fsgate_acquire() < 0)
            return -1;
        p->fs_token = 1;
    }
    return 0;
}

void gate_leave(struct pass *p, long result)
{
    int saved = errno;
    if (p->fs_token) {
        fsgate_release();
    } else if (p->kind == FD_CONN || p->kind == FD_STREAM) {
        unsigned gates = gates_on();
        bool idle = p->kind == FD_CONN && (gates & GATE_CONN) && idle_on();
        if (p->dir == IO_OUT) {
            if (gates & GATE_DRAIN)
                drain_after_write(p->fd, result);
            if (idle)
                idle_after_write(p->fd, result);
        } else if (p->dir == IO_IN && idle) {
            idle_after_read(p->fd, result);
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
    int saved = errno;
    fdtab_reborn(fd);
    struct fdent *e = fdtab_get(fd);
    if (e != NULL) {
        atomic_store(&e->kind, FD_CONN);
        fdtab_set_nonblock(fd, (accept_flags & SOCK_NONBLOCK) != 0);
    }
    if (gates_on() & GATE_DRAIN)
        drain_adopt(fd);
    errno = saved;
}
