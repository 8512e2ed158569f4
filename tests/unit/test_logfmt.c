/* test_logfmt.c — log lines quote user input escaped and bounded: one line,
 * printable ASCII, the message's own words never lost. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "logfmt.h"

static char line[1024];

static const char *fmt_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_format(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    line[n] = '\0';
    return line;
}

Test(logfmt, control_bytes_and_escapes_are_escaped)
{
    cr_assert_str_eq(fmt_line("X='%s' bad", "5\nsluice[1]: all gates on\x1b[31m"),
                     "X='5\\nsluice[1]: all gates on\\x1b[31m' bad");
    cr_assert_str_eq(fmt_line("%s", "a\tb\rc\\d\x7f\xc3\xa9"), "a\\tb\\rc\\\\d\\x7f\\xc3\\xa9");
    cr_assert_str_eq(fmt_line("name %.*s!", 6, "SLUICE_X=1"), "name SLUICE!");
    cr_assert_str_eq(fmt_line("%d %u %x %s %%", -3, 7u, 255u, "ok"), "-3 7 ff ok %");
}

Test(logfmt, a_long_value_is_cut_with_its_length_and_the_rest_survives)
{
    size_t n = 131000;
    char *big = malloc(n + 1);
    memset(big, '9', n);
    big[n] = '\0';
    const char *out = fmt_line("SLUICE_CONN_MAX='%s' is not valid: expected a whole number; stays off", big);
    cr_assert(strstr(out, "...(131000 bytes)'") != NULL, "[%s]", out);
    cr_assert(strstr(out, "' is not valid: expected a whole number; stays off") != NULL, "[%s]", out);
    cr_assert_lt(strlen(out), 300);
    /* Escaped bytes count toward the bound; an escape is never split. */
    memset(big, '\n', n);
    out = fmt_line("v='%s' expected X", big);
    cr_assert(strstr(out, "\\n...(131000 bytes)' expected X") != NULL, "[%s]", out);
    free(big);
}

static const char *fmt_cap(size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = log_format(line, cap, fmt, ap);
    va_end(ap);
    cr_assert_leq(n, cap);
    line[n] = '\0';
    return line;
}

Test(logfmt, a_line_that_cannot_fit_says_it_was_cut)
{
    const char *out = fmt_cap(40, "%s and then %s", "0123456789012345678901234567890123456789", "more");
    cr_assert_eq(strlen(out), 40);
    cr_assert(strcmp(out + 40 - 8, "...(cut)") == 0, "[%s]", out);
    cr_assert_str_eq(fmt_cap(40, "short %s", "ok"), "short ok");
}
