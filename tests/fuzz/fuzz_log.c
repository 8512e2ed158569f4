/* fuzz_log.c — libFuzzer target for the log formatter (shim/logfmt.c): whatever
 * a message quotes, the line holds only printable ASCII, never exceeds its
 * buffer, always keeps the message's own words after the quoted value, and an
 * uncut value unescapes to exactly the input. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logfmt.h"

static size_t format(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_format(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Unescapes s[0..n) into out; false on a malformed escape. */
static bool unescape(const char *s, size_t n, char *out, size_t *outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[k++] = s[i];
            continue;
        }
        if (++i >= n)
            return false;
        switch (s[i]) {
        case '\\': out[k++] = '\\'; break;
        case 'n': out[k++] = '\n'; break;
        case 'r': out[k++] = '\r'; break;
        case 't': out[k++] = '\t'; break;
        case 'x':
            if (i + 2 >= n || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
                return false;
            out[k++] = (char) (hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
            break;
        default: return false;
        }
    }
    *outlen = k;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char value[4097];
    memcpy(value, data + 1, size - 1);
    value[size - 1] = '\0';
    size_t vlen = strlen(value);
    static const char tail[] = "' is not valid: expected a whole number; it stays off";
    char line[1024];
    size_t cap = data[0] & 1 ? sizeof line : 200 + data[0];   /* also lines that must be cut */
    size_t n = data[0] & 2 ? format(line, cap, "X='%.*s%s", (int) (vlen / 2), value, tail)
                           : format(line, cap, "X='%s%s", value, tail);
    if (data[0] & 2)
        vlen /= 2;
    if (n > cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) line[i] < 0x20 || (unsigned char) line[i] >= 0x7f)
            abort();
    if (cap < 3 + LOGFMT_ARG_MAX + sizeof tail - 1 + 8) {
        /* A line too small for the message may be cut, but says so. */
        if (n == cap && memcmp(line + n - 8, "...(cut)", 8) != 0)
            abort();
        return 0;
    }
    /* The message's own words always survive. */
    size_t tl = sizeof tail - 1;
    if (n < 3 + tl || memcmp(line + n - tl, tail, tl) != 0 || memcmp(line, "X='", 3) != 0)
        abort();
    const char *quoted = line + 3;
    size_t qlen = n - 3 - tl;
    if (qlen > LOGFMT_ARG_MAX)
        abort();
    const char *marker = NULL;
    for (size_t i = 0; i + 4 <= qlen; i++)
        if (memcmp(quoted + i, "...(", 4) == 0)
            marker = quoted + i;   /* the last one: a value may hold "...(" too */
    char back[4097];
    size_t blen;
    if (unescape(quoted, qlen, back, &blen) && blen == vlen && memcmp(back, value, vlen) == 0)
        return 0;   /* whole and exact */
    /* Otherwise it was cut: a prefix of the value, then "...(N bytes)". */
    if (marker == NULL)
        abort();
    char expect[32];
    size_t el = 0;
    char digits[24];
    int nd = 0;
    for (size_t v = vlen; nd == 0 || v != 0; v /= 10)
        digits[nd++] = (char) ('0' + v % 10);
    memcpy(expect, "...(", 4);
    el = 4;
    while (nd > 0)
        expect[el++] = digits[--nd];
    memcpy(expect + el, " bytes)", 7);
    el += 7;
    if ((size_t) (quoted + qlen - marker) != el || memcmp(marker, expect, el) != 0)
        abort();
    if (!unescape(quoted, (size_t) (marker - quoted), back, &blen) || blen > vlen
        || memcmp(back, value, blen) != 0)
        abort();
    return 0;
}
