/* log.c — sluice's only voice: one line per event on stderr, prefixed
 * "sluice[PID]: ". Async-signal-safe (a tiny formatter on the stack, one real
 * write), so gates may log from any context; never touches errno or stdout.
 * What a message quotes is escaped and bounded by logfmt.c. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <unistd.h>

#include "logfmt.h"
#include "real.h"

static _Atomic int level_shown = SLUICE_LOG_WARN;

void log_set_level(enum log_level level)
{
    atomic_store_explicit(&level_shown, (int) level, memory_order_relaxed);
}

void sluice_log(enum log_level level, const char *fmt, ...)
{
    if ((int) level > atomic_load_explicit(&level_shown, memory_order_relaxed))
        return;
    int saved = errno;
    char line[1024];
    size_t len = 0;
    for (const char *s = "sluice["; *s; s++)
        line[len++] = *s;
    char digits[24];
    int ndigits = 0;
    for (unsigned long long pid = (unsigned long long) getpid(); ndigits == 0 || pid != 0; pid /= 10)
        digits[ndigits++] = (char) ('0' + pid % 10);
    while (ndigits > 0)
        line[len++] = digits[--ndigits];
    line[len++] = ']';
    line[len++] = ':';
    line[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    len += log_format(line + len, sizeof line - 1 - len, fmt, ap);
    va_end(ap);
    line[len++] = '\n';
    const char *p = line;
    size_t left = len;
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
