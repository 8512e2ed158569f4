/* parse.c — the value forms of the spec (see parse.h). Strict: no leading
 * spaces or signs, no trailing junk, overflow is an error. */
#include "parse.h"

#include <bsd/stdlib.h>
#include <string.h>
#include <strings.h>

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool parse_uint_range(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    if (s == NULL || !all_digits(s, strlen(s)))
        return false;
    const char *err = NULL;
    long long v = strtonum(s, min, max, &err);
    if (err != NULL)
        return false;
    *out = (uint32_t) v;
    return true;
}

bool parse_count(const char *s, uint32_t *out)
{
    return parse_uint_range(s, 1, SLUICE_COUNT_MAX, out);
}

/* Leading digits of s as an unsigned 64-bit value; false on none or overflow. */
static bool leading_u64(const char *s, size_t *used, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned) (s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *used = i;
    *out = v;
    return i > 0;
}

bool parse_size(const char *s, uint64_t *out)
{
    size_t used;
    uint64_t v;
    if (s == NULL || !leading_u64(s, &used, &v) || v == 0)
        return false;
    const char *unit = s + used;
    unsigned shift = 0;
    if (*unit != '\0') {
        switch (*unit) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        default: return false;
        }
        if (unit[1] != '\0')
            return false;
    }
    if (v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

bool parse_conn_max(const char *s, uint32_t *out, bool *is_auto)
{
    if (s == NULL)
        return false;
    if (strcmp(s, "auto") == 0) {
        *out = SLUICE_AUTO_CEILING;
        *is_auto = true;
        return true;
    }
    if (strncmp(s, "auto:", 5) == 0) {
        if (!parse_count(s + 5, out))
            return false;
        *is_auto = true;
        return true;
    }
    if (!parse_count(s, out))
        return false;
    *is_auto = false;
    return true;
}

bool parse_size_or_percent(const char *s, uint64_t *bytes, uint32_t *percent)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n >= 2 && s[n - 1] == '%') {
        char digits[8];
        if (n - 1 >= sizeof digits)
            return false;
        memcpy(digits, s, n - 1);
        digits[n - 1] = '\0';
        if (!parse_uint_range(digits, 1, 100, percent))
            return false;
        *bytes = 0;
        return true;
    }
    if (!parse_size(s, bytes))
        return false;
    *percent = 0;
    return true;
}

bool parse_duration_ns(const char *s, uint64_t *out)
{
    size_t used;
    uint64_t whole;
    if (s == NULL || !leading_u64(s, &used, &whole))
        return false;
    const char *p = s + used;
    /* Up to nine decimals: 0.5, 1.25s. */
    uint64_t frac = 0, frac_scale = 1;
    if (*p == '.') {
        p++;
        int digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits >= 9)
                return false;
            frac = frac * 10 + (uint64_t) (*p - '0');
            frac_scale *= 10;
        }
        if (digits == 0)
            return false;
    }
    uint64_t unit_ns;
    if (*p == '\0' || strcmp(p, "s") == 0)
        unit_ns = 1000000000ULL;
    else if (strcmp(p, "ms") == 0)
        unit_ns = 1000000ULL;
    else if (strcmp(p, "m") == 0)
        unit_ns = 60ULL * 1000000000ULL;
    else
        return false;
    /* Bound: a day is plenty for any wait sluice adds. Exact: the fraction
     * times the unit needs up to 66 bits (0.999999999m), so 128-bit arithmetic;
     * what is below a nanosecond is dropped. */
    const uint64_t max_ns = 86400ULL * 1000000000ULL;
    if (whole > max_ns / unit_ns)
        return false;
    unsigned __int128 ns = (unsigned __int128) whole * unit_ns
                           + (unsigned __int128) frac * unit_ns / frac_scale;
    if (ns == 0 || ns > max_ns)
        return false;
    *out = (uint64_t) ns;
    return true;
}

bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "1", "yes", "true", "on", NULL };
    static const char *const no[] = { "0", "no", "false", "off", NULL };
    if (s == NULL)
        return false;
    for (int i = 0; yes[i] != NULL; i++)
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
    for (int i = 0; no[i] != NULL; i++)
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    return false;
}

bool parse_ports(const char *s, uint16_t *ports, uint32_t cap, uint32_t *n)
{
    if (s == NULL || *s == '\0')
        return false;
    uint32_t count = 0;
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len > 5 || !all_digits(p, len) || count == cap)
            return false;
        unsigned v = 0;
        for (size_t i = 0; i < len; i++)
            v = v * 10 + (unsigned) (p[i] - '0');
        if (v == 0 || v > 65535)
            return false;
        ports[count++] = (uint16_t) v;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    *n = count;
    return true;
}

int parse_enum(const char *s, const char *const *words)
{
    if (s == NULL)
        return -1;
    for (int i = 0; words[i] != NULL; i++)
        if (strcmp(s, words[i]) == 0)
            return i;
    return -1;
}
