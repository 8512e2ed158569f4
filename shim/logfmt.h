/* logfmt.h — the formatter behind sluice's log lines, kept pure (no I/O, no
 * globals) so that tests and the fuzzer can check it directly. */
#ifndef SLUICE_LOGFMT_H
#define SLUICE_LOGFMT_H

#include <stdarg.h>
#include <stddef.h>

/* Escaped output of one %s argument is kept to this many bytes; a longer one is
 * cut and ends with "...(N bytes)", N its full length before escaping. */
#define LOGFMT_ARG_MAX 160

/* Formats fmt into buf (at most cap bytes, not terminated) and returns the
 * length. Supports %s %.*s %c %d %i %u %x %p %% with the l, ll and z length
 * modifiers. The format is trusted; every %s and %c argument is not: bytes
 * outside printable ASCII and the backslash are escaped (\n \r \t \\ \xHH), so
 * a line can never be split, coloured or forged by what it quotes. A line that
 * would not fit ends with "...(cut)". Async-signal-safe. */
size_t log_format(char *buf, size_t cap, const char *fmt, va_list ap)
    __attribute__((visibility("hidden")));

#endif
