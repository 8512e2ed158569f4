/* logfmt.c — formats one log line (see logfmt.h). Owns the escaping of what a
 * message quotes: values, variable names and paths come from the user, and a
 * newline or terminal escape in them must not reach the program's log raw.
 * Everything outside printable ASCII is escaped, valid UTF-8 included: a log
 * line stays plain ASCII whatever the locale, and no C1 control or bidi
 * override can hide inside a multi-byte sequence. */
#include "logfmt.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char cut_marker[] = "...(cut)";

struct out {
    char *buf;
    size_t len, cap;     /* cap excludes the room kept for cut_marker */
    bool cut;
};

static void put_char(struct out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len++] = c;
    else
        o->cut = true;
}

static void put_literal(struct out *o, const char *s)
{
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

/* The escaped form of byte c into unit (not terminated); returns its length. */
static size_t escape_byte(unsigned char c, char unit[4])
{
    if (c >= 0x20 && c < 0x7f && c != '\\') {
        unit[0] = (char) c;
        return 1;
    }
    unit[0] = '\\';
    switch (c) {
    case '\\': unit[1] = '\\'; return 2;
    case '\n': unit[1] = 'n'; return 2;
    case '\r': unit[1] = 'r'; return 2;
    case '\t': unit[1] = 't'; return 2;
    default:
        unit[1] = 'x';
        unit[2] = "0123456789abcdef"[c >> 4];
        unit[3] = "0123456789abcdef"[c & 15];
        return 4;
    }
}

/* An untrusted string of n bytes, escaped; cut with a marker naming its
 * length when its escaped form exceeds LOGFMT_ARG_MAX, so that the rest of
 * the message (the "expected ..." part) always has room. */
static void put_quoted(struct out *o, const char *s, size_t n)
{
    char unit[4];
    size_t escaped = 0;
    for (size_t i = 0; i < n && escaped <= LOGFMT_ARG_MAX; i++)
        escaped += escape_byte((unsigned char) s[i], unit);
    /* Room for "...(" + 20 digits + " bytes)". */
    size_t keep = escaped <= LOGFMT_ARG_MAX ? LOGFMT_ARG_MAX : LOGFMT_ARG_MAX - 31;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = escape_byte((unsigned char) s[i], unit);
        if (used + k > keep)
            break;
        for (size_t j = 0; j < k; j++)
            put_char(o, unit[j]);
        used += k;
    }
    if (escaped > LOGFMT_ARG_MAX) {
        put_literal(o, "...(");
        put_unsigned(o, (unsigned long long) n, 10);
        put_literal(o, " bytes)");
    }
}

size_t log_format(char *buf, size_t cap, const char *fmt, va_list ap)
{
    size_t room = cap > sizeof cut_marker - 1 ? cap - (sizeof cut_marker - 1) : 0;
    struct out o = { buf, 0, room, false };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put_char(&o, *fmt);
            continue;
        }
        fmt++;
        bool precision = false;
        if (fmt[0] == '.' && fmt[1] == '*') {
            precision = true;
            fmt += 2;
        }
        int longs = 0;
        while (*fmt == 'l' || *fmt == 'z') {
            longs = (*fmt == 'z') ? 2 : longs + 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            int max = precision ? va_arg(ap, int) : -1;
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                put_literal(&o, "(null)");
            else
                put_quoted(&o, s, max >= 0 ? strnlen(s, (size_t) max) : strlen(s));
            break;
        }
        case 'c': {
            char c = (char) va_arg(ap, int);
            put_quoted(&o, &c, 1);
            break;
        }
        case 'd': case 'i':
            put_signed(&o, longs >= 2 ? va_arg(ap, long long)
                         : longs == 1 ? va_arg(ap, long) : va_arg(ap, int));
            break;
        case 'u': case 'x':
            put_unsigned(&o, longs >= 2 ? va_arg(ap, unsigned long long)
                           : longs == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned),
                         *fmt == 'x' ? 16 : 10);
            break;
        case 'p':
            put_literal(&o, "0x");
            put_unsigned(&o, (uintptr_t) va_arg(ap, void *), 16);
            break;
        case '%': put_char(&o, '%'); break;
        case '\0': fmt--; break;
        default: put_char(&o, '%'); put_char(&o, *fmt); break;
        }
    }
    if (o.cut) {
        o.cap = cap;
        put_literal(&o, cut_marker);
    }
    return o.len;
}
