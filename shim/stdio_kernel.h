/* stdio_kernel.h — whether a stdio call on a file stream will reach the kernel.
 * A buffered getc, fputs or fread served from (or into) the stream's buffer is
 * not a file operation; only a refill, a flush, an open or a close is. Each
 * wrapped stdio function describes its call with stdio_call_NAME (same
 * parameters as NAME); stdio_reaches_kernel reads the stream's buffer pointers
 * (public fields of glibc's struct _IO_FILE) with the stream locked. */
#ifndef SLUICE_STDIO_KERNEL_H
#define SLUICE_STDIO_KERNEL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "common.h"

enum stdio_op {
    SC_KERNEL,      /* always reaches it (or we cannot tell) */
    SC_GETC,        /* one byte in */
    SC_READ,        /* len bytes in */
    SC_LINE,        /* bytes in up to ch (the delimiter) or len bytes */
    SC_WRITE,       /* len bytes of data out */
    SC_PUTC,        /* the byte ch out; EOF: flush */
    SC_FORMAT,      /* len bytes out whose content is not known here (SIZE_MAX: unknown length) */
    SC_FLUSH,       /* what is pending out */
};

struct stdio_call {
    enum stdio_op op;
    int ch;
    const void *data;
    size_t len;
};

/* With the stream locked. True when unsure. */
bool stdio_reaches_kernel(FILE *f, const struct stdio_call *c) SLUICE_INTERNAL;
/* The length vfprintf will write, or SIZE_MAX; costs a second formatting, so
 * only for a stream that is a file (the caller checks the gate first). */
size_t stdio_format_length(FILE *f, const char *fmt, va_list ap) SLUICE_INTERNAL;

static inline size_t stdio_mul(size_t a, size_t b)
{
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

#define SC(o, c, d, l) ((struct stdio_call) { (o), (c), (d), (l) })
#define stdio_call_fread(ptr, size, n, stream) SC(SC_READ, 0, NULL, stdio_mul(size, n))
#define stdio_call_fread_unlocked stdio_call_fread
#define stdio_call___fread_chk(ptr, ptrlen, size, n, stream) SC(SC_READ, 0, NULL, stdio_mul(size, n))
#define stdio_call___fread_unlocked_chk stdio_call___fread_chk
/* fgets(s, n): at most n - 1 bytes; n <= 1 reads nothing. */
#define stdio_call_fgets(s, n, stream) \
    ((n) <= 1 ? SC(SC_READ, 0, NULL, 0) : SC(SC_LINE, '\n', NULL, (size_t) (n) - 1))
#define stdio_call_fgets_unlocked stdio_call_fgets
#define stdio_call___fgets_chk(s, size, n, stream) stdio_call_fgets(s, n, stream)
#define stdio_call_fgetc(stream) SC(SC_GETC, 0, NULL, 1)
#define stdio_call_getc stdio_call_fgetc
#define stdio_call___uflow stdio_call_fgetc
#define stdio_call___underflow stdio_call_fgetc
#define stdio_call_getline(line, cap, stream) SC(SC_LINE, '\n', NULL, SIZE_MAX)
#define stdio_call_getdelim(line, cap, delim, stream) SC(SC_LINE, (unsigned char) (delim), NULL, SIZE_MAX)
#define stdio_call_fwrite(ptr, size, n, stream) SC(SC_WRITE, 0, (ptr), stdio_mul(size, n))
#define stdio_call_fwrite_unlocked stdio_call_fwrite
#define stdio_call_fputs(s, stream) SC(SC_WRITE, 0, (s), strlen(s))
#define stdio_call_fputs_unlocked stdio_call_fputs
#define stdio_call_fputc(c, stream) SC(SC_PUTC, (unsigned char) (c), NULL, 1)
#define stdio_call_putc stdio_call_fputc
#define stdio_call___overflow(stream, c) SC(SC_PUTC, (c) == EOF ? EOF : (unsigned char) (c), NULL, 1)
#define stdio_call_fflush(stream) SC(SC_FLUSH, 0, NULL, 0)
#define stdio_call_fflush_unlocked stdio_call_fflush
#define stdio_call_vfprintf(stream, fmt, ap) SC(SC_FORMAT, 0, NULL, stdio_format_length(stream, fmt, ap))
/* glibc's seek may use the buffer, or may flush and read a block: unsure. */
#define stdio_call_fseek(stream, offset, whence) SC(SC_KERNEL, 0, NULL, 0)
#define stdio_call_fseeko stdio_call_fseek
#define stdio_call_fseeko64 stdio_call_fseek
#define stdio_call___vfprintf_chk(stream, flag, fmt, ap) stdio_call_vfprintf(stream, fmt, ap)

#endif
