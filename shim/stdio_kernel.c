/* stdio_kernel.c — see stdio_kernel.h. The rules follow glibc's file streams
 * (libio): a stream holds its buffer in public fields of struct _IO_FILE, and
 * the flag bits below have kept their values since glibc 2.0. Anything that
 * does not look like a plain byte-oriented, buffered file stream in the mode
 * the call needs (reading, or writing) is answered "reaches the kernel", so the
 * call takes a token as before. */
#include "stdio_kernel.h"

#include "fdtab.h"
#include "gate.h"

#define LIBIO_MAGIC_MASK 0xFFFF0000u
#define LIBIO_MAGIC 0xFBAD0000u
#define LIBIO_UNBUFFERED 0x0002u
#define LIBIO_LINE_BUF 0x0200u
#define LIBIO_CURRENTLY_PUTTING 0x0800u
#define LIBIO_IS_FILEBUF 0x2000u

/* A byte stream of fopen/fdopen with a buffer: the only kind we predict. */
static bool plain_file_stream(const FILE *f)
{
    unsigned flags = (unsigned) f->_flags;
    return (flags & LIBIO_MAGIC_MASK) == LIBIO_MAGIC && (flags & LIBIO_IS_FILEBUF)
           && !(flags & LIBIO_UNBUFFERED) && f->_mode <= 0 && f->_IO_buf_base != NULL;
}

static bool reading_reaches_kernel(FILE *f, const struct stdio_call *c)
{
    if (f->_flags & LIBIO_CURRENTLY_PUTTING)
        return true;                          /* a switch from writing flushes */
    size_t have = f->_IO_read_ptr != NULL && f->_IO_read_end > f->_IO_read_ptr
                      ? (size_t) (f->_IO_read_end - f->_IO_read_ptr) : 0;
    switch (c->op) {
    case SC_GETC:
        return have == 0;
    case SC_READ:
        return c->len > have;
    case SC_LINE: {
        size_t scan = have < c->len ? have : c->len;
        if (scan != 0 && memchr(f->_IO_read_ptr, c->ch, scan) != NULL)
            return false;
        return have < c->len;
    }
    default:
        return true;
    }
}

static bool writing_reaches_kernel(FILE *f, const struct stdio_call *c)
{
    if (c->op == SC_FLUSH)                    /* only pending output reaches the file */
        return f->_IO_write_ptr > f->_IO_write_base;
    if (!(f->_flags & LIBIO_CURRENTLY_PUTTING) || f->_IO_write_ptr == NULL)
        return true;                          /* the first write sets the buffer up */
    if (c->op == SC_PUTC && c->ch == EOF)
        return f->_IO_write_ptr > f->_IO_write_base;
    if (c->len == 0)
        return false;
    if (f->_flags & LIBIO_LINE_BUF) {
        /* Line buffered: a newline flushes, and so does a full buffer. */
        size_t room = f->_IO_buf_end > f->_IO_write_ptr ? (size_t) (f->_IO_buf_end - f->_IO_write_ptr) : 0;
        if (c->len > room || c->op == SC_FORMAT)
            return true;
        if (c->op == SC_PUTC)
            return c->ch == '\n';
        return memchr(c->data, '\n', c->len) != NULL;
    }
    size_t room = f->_IO_write_end > f->_IO_write_ptr ? (size_t) (f->_IO_write_end - f->_IO_write_ptr) : 0;
    return c->len > room;
}

bool stdio_reaches_kernel(FILE *f, const struct stdio_call *c)
{
    if (c->op == SC_KERNEL || !plain_file_stream(f))
        return true;
    switch (c->op) {
    case SC_GETC:
    case SC_READ:
    case SC_LINE:
        return reading_reaches_kernel(f, c);
    default:
        return writing_reaches_kernel(f, c);
    }
}

size_t stdio_format_length(FILE *f, const char *fmt, va_list ap)
{
    /* Only worth a second formatting when the answer could be "no": a fully
     * buffered file stream, already writing, with room in its buffer. Read
     * without the stream's lock: a wrong guess only costs a token. */
    if (f == NULL || fmt == NULL || !(gates_on() & GATE_FS) || !plain_file_stream(f)
        || (f->_flags & (LIBIO_LINE_BUF | LIBIO_CURRENTLY_PUTTING)) != LIBIO_CURRENTLY_PUTTING
        || f->_IO_write_end <= f->_IO_write_ptr)
        return SIZE_MAX;
    int fd = fileno_unlocked(f);
    if (fd < 0 || fdtab_kind_fast(fd) != FD_FILE)
        return SIZE_MAX;
    va_list copy;
    va_copy(copy, ap);
    int saved = errno;
    int n = vsnprintf(NULL, 0, fmt, copy);
    errno = saved;
    va_end(copy);
    return n < 0 ? SIZE_MAX : (size_t) n;
}
