/* log.c — sluice's only voice: one line per event on stderr, prefixed
 * "sluice[PID]: ". Async-signal-safe (a tiny formatter on the stack, one real
 * write), so gates may log from any context; never touches errno or stdout. */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "real.h"

struct out {
    char *buf;
    size_t len, cap;
};

static void put_char(struct out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len++] = c;
}

static void put_str(struct out *o, const char *s)
{
    if (s == NULL)
        s = "(null)";
    while (*s)
        put_char(o, *s++);
}

static void put_unsigned(struct out *o, unsigned long long v, unsigned base)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    while (n > 0)
        put_char(o, digits[--n]);
}

static void put_signed(struct out *o, long long v)
{
    if (v < 0) {
        put_char(o, '-');
        put_unsigned(o, 0ULL - (unsigned long long) v, 10);
    } else {
        put_unsigned(o, (unsigned long long) v, 10);
    }
}

/* Supports %s %c %d %i %u %x %p %% with the l, ll and z length modifiers. */
static void format(struct out *o, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put_char(o, *fmt);
            continue;
        }
        fmt++;
        int longs = 0;
        while (*fmt == 'l' || *fmt == 'z') {
            longs = (*fmt == 'z') ? 2 : longs + 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': put_str(o, va_arg(ap, const char *)); break;
        case 'c': put_char(o, (char) va_arg(ap, int)); break;
        case 'd': case 'i':
            put_signed(o, longs >= 2 ? va_arg(ap, long long)
                        : longs == 1 ? va_arg(ap, long) : va_arg(ap, int));
            break;
        case 'u': case 'x':
            put_unsigned(o, longs >= 2 ? va_arg(ap, unsigned long long)
                          : longs == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned),
                         *fmt == 'x' ? 16 : 10);
            break;
        case 'p':
            put_str(o, "0x");
            put_unsigned(o, (uintptr_t) va_arg(ap, void *), 16);
            break;
        case '%': put_char(o, '%'); break;
        case '\0': return;
        default: put_char(o, '%'); put_char(o, *fmt); break;
        }
    }
}

void sluice_log(enum log_level level, const char *fmt, ...)
{
    if (level > sluice_cfg.log_level)
        return;
    int saved = errno;
    char line[512];
    struct out o = { line, 0, sizeof line - 1 };
    put_str(&o, "sluice[");
    put_unsigned(&o, (unsigned long long) getpid(), 10);
    put_str(&o, "]: ");
    va_list ap;
    va_start(ap, fmt);
    format(&o, fmt, ap);
    va_end(ap);
    line[o.len++] = '\n';
    const char *p = line;
    size_t left = o.len;
    while (left > 0) {
        ssize_t n = REAL(write)(STDERR_FILENO, p, left);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        p += n;
        left -= (size_t) n;
    }
    errno = saved;
}
