/* wrap_file.c — opens of files by name, and the calls that move data between
 * two descriptors (sendfile, copy_file_range, splice). Opens take a filesystem
 * token; a new descriptor's number is forgotten before it is used. */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include <stdarg.h>

#include "fdtab.h"
#include "gate.h"

/* open's third argument exists only when the flags ask to create a file. */
static inline int wants_mode(int flags)
{
    return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

#define OPEN_MODE(flags, last) \
    mode_t mode = 0; \
    if (wants_mode(flags)) { \
        va_list ap; \
        va_start(ap, last); \
        mode = (mode_t) va_arg(ap, int); \
        va_end(ap); \
    }

/* Forward an open through the gates. `call` is the real call expression. */
#define GATED_OPEN(dirfd, path, flags, call) \
    do { \
        if (likely(gates_on() == 0)) \
            return call; \
        struct pass p; \
        if (gate_enter_open(&p, dirfd, path, flags) < 0) \
            return -1; \
        int fd_ = call; \
        gate_leave_open(&p, fd_); \
        return fd_; \
    } while (0)

SLUICE_PUBLIC int open(const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    GATED_OPEN(AT_FDCWD, path, flags, REAL(open)(path, flags, mode));
}

SLUICE_PUBLIC int open64(const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    GATED_OPEN(AT_FDCWD, path, flags, REAL(open64)(path, flags, mode));
}

SLUICE_PUBLIC int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    GATED_OPEN(dirfd, path, flags, REAL(openat)(dirfd, path, flags, mode));
}

SLUICE_PUBLIC int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_MODE(flags, flags);
    GATED_OPEN(dirfd, path, flags, REAL(openat64)(dirfd, path, flags, mode));
}

SLUICE_PUBLIC int __open_2(const char *path, int flags)
{
    GATED_OPEN(AT_FDCWD, path, flags, REAL(__open_2)(path, flags));
}

SLUICE_PUBLIC int __open64_2(const char *path, int flags)
{
    GATED_OPEN(AT_FDCWD, path, flags, REAL(__open64_2)(path, flags));
}

SLUICE_PUBLIC int __openat_2(int dirfd, const char *path, int flags)
{
    GATED_OPEN(dirfd, path, flags, REAL(__openat_2)(dirfd, path, flags));
}

SLUICE_PUBLIC int __openat64_2(int dirfd, const char *path, int flags)
{
    GATED_OPEN(dirfd, path, flags, REAL(__openat64_2)(dirfd, path, flags));
}

SLUICE_PUBLIC int creat(const char *path, mode_t mode)
{
    GATED_OPEN(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, REAL(creat)(path, mode));
}

SLUICE_PUBLIC int creat64(const char *path, mode_t mode)
{
    GATED_OPEN(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, REAL(creat64)(path, mode));
}

/* Data from in_fd to out_fd in one call: the output side is asked first, since
 * waiting for a socket to drain must never happen while holding a file token. */
#define GATED_TRANSFER(in_fd, out_fd, call) \
    do { \
        if (likely(gates_on() == 0)) \
            return call; \
        struct pass out_pass, in_pass; \
        if (gate_enter_fd(&out_pass, out_fd, IO_OUT, 0) < 0) \
            return -1; \
        if (gate_enter_fd(&in_pass, in_fd, IO_IN, 0) < 0) { \
            gate_leave(&out_pass, -1); \
            return -1; \
        } \
        ssize_t r_ = call; \
        gate_leave(&in_pass, (long) r_); \
        gate_leave(&out_pass, (long) r_); \
        return r_; \
    } while (0)

SLUICE_PUBLIC ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    GATED_TRANSFER(in_fd, out_fd, REAL(sendfile)(out_fd, in_fd, offset, count));
}

SLUICE_PUBLIC ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    GATED_TRANSFER(in_fd, out_fd, REAL(sendfile64)(out_fd, in_fd, offset, count));
}

SLUICE_PUBLIC ssize_t copy_file_range(int fd_in, off64_t *off_in, int fd_out, off64_t *off_out,
                                      size_t len, unsigned int flags)
{
    GATED_TRANSFER(fd_in, fd_out, REAL(copy_file_range)(fd_in, off_in, fd_out, off_out, len, flags));
}

SLUICE_PUBLIC ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out,
                             size_t len, unsigned int flags)
{
    GATED_TRANSFER(fd_in, fd_out, REAL(splice)(fd_in, off_in, fd_out, off_out, len, flags));
}
