/* wrap_stdio.c — the stdio calls symbols.def cannot write by itself: opening,
 * reopening and closing streams, and the variadic fprintf. glibc's streams call
 * the kernel directly, so every stdio call that can reach it is wrapped here or
 * in wrap_table.c (the list is in the README). */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include <stdarg.h>

#include "fdtab.h"
#include "gate.h"

static FILE *gated_fopen(const char *path, const char *mode,
                         FILE *(*real_call)(const char *, const char *))
{
    struct pass p;
    if (gate_enter_open(&p, AT_FDCWD, path, mode != NULL && mode[0] == 'r' ? O_RDONLY : O_WRONLY) < 0)
        return NULL;
    FILE *f = real_call(path, mode);
    gate_leave_open(&p, f != NULL ? fileno(f) : -1);
    return f;
}

SLUICE_PUBLIC FILE *fopen(const char *path, const char *mode)
{
    if (likely(gates_on() == 0))
        return REAL(fopen)(path, mode);
    return gated_fopen(path, mode, REAL(fopen));
}

SLUICE_PUBLIC FILE *fopen64(const char *path, const char *mode)
{
    if (likely(gates_on() == 0))
        return REAL(fopen64)(path, mode);
    return gated_fopen(path, mode, REAL(fopen64));
}

/* freopen closes the stream's descriptor and opens another, maybe the same number. */
static FILE *gated_freopen(const char *path, const char *mode, FILE *stream,
                           FILE *(*real_call)(const char *, const char *, FILE *))
{
    int old = stream != NULL ? fileno(stream) : -1;
    uint32_t held = (old >= 0 && path != NULL) ? fdtab_forget(old) : 0;
    struct pass p;
    if (gate_enter_open(&p, AT_FDCWD, path, O_RDONLY) < 0) {
        if (held != 0)
            KEEP_ERRNO(fdtab_restore(old, held));
        return NULL;
    }
    FILE *f = real_call(path, mode, stream);
    gate_leave_open(&p, f != NULL ? fileno(f) : -1);
    if (held != 0)
        fdtab_release(held);
    return f;
}

SLUICE_PUBLIC FILE *freopen(const char *path, const char *mode, FILE *stream)
{
    if (likely(gates_on() == 0))
        return REAL(freopen)(path, mode, stream);
    return gated_freopen(path, mode, stream, REAL(freopen));
}

SLUICE_PUBLIC FILE *freopen64(const char *path, const char *mode, FILE *stream)
{
    if (likely(gates_on() == 0))
        return REAL(freopen64)(path, mode, stream);
    return gated_freopen(path, mode, stream, REAL(freopen64));
}

SLUICE_PUBLIC FILE *fdopen(int fd, const char *mode)
{
    return REAL(fdopen)(fd, mode);
}

/* fclose flushes (a write to the file) and closes the descriptor (which may end
 * a connection of an fdopen'ed socket). */
SLUICE_PUBLIC int fclose(FILE *stream)
{
    if (likely(gates_on() == 0))
        return REAL(fclose)(stream);
    int fd = fileno(stream);
    struct pass p;
    /* As a descriptor, not a stream: the stream will not exist to unlock. A
     * refused gate (EAGAIN, EINTR) does not stop a close: it only goes
     * ungated, and the program sees the errno of the close alone. */
    int saved = errno;
    int gated = fd >= 0 && gate_enter_fd(&p, fd, IO_OUT, 0) == 0;
    errno = saved;
    uint32_t held = fd >= 0 ? fdtab_forget(fd) : 0;
    int r = REAL(fclose)(stream);
    if (gated)
        gate_leave(&p, r);
    if (held != 0)
        fdtab_release(held);
    return r;
}

SLUICE_PUBLIC int fprintf(FILE *stream, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(stream, fmt, ap);
    va_end(ap);
    return r;
}

SLUICE_PUBLIC int __fprintf_chk(FILE *stream, int flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = __vfprintf_chk(stream, flag, fmt, ap);
    va_end(ap);
    return r;
}
