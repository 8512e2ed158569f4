/* fuzz_parse.c — libFuzzer target for every value form of the settings
 * (shim/parse.c). The first byte picks the form; the rest is the value. Beyond
 * "no crash", it checks what a parser promises: accepted values are in range,
 * a size or count printed back parses to itself, and sizes and durations agree
 * exactly with a reference that does its arithmetic on decimal digit strings
 * (no machine integer can overflow there), accepting and rejecting the same. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* Decimal numbers as digit strings, most significant first, no leading zeros
 * ("" is zero). */
#define BIG 128

static void big_trim(char *d)
{
    size_t z = 0;
    while (d[z] == '0')
        z++;
    memmove(d, d + z, strlen(d + z) + 1);
}

/* d *= m (m < 2^40), in place; false if it would not fit. */
static bool big_mul(char *d, uint64_t m)
{
    char out[BIG + 1];
    size_t n = strlen(d), k = BIG;
    out[k] = '\0';
    uint64_t carry = 0;
    for (size_t i = n; i > 0; i--) {
        uint64_t v = (uint64_t) (d[i - 1] - '0') * m + carry;
        if (k == 0)
            return false;
        out[--k] = (char) ('0' + v % 10);
        carry = v / 10;
    }
    for (; carry != 0; carry /= 10) {
        if (k == 0)
            return false;
        out[--k] = (char) ('0' + carry % 10);
    }
    memmove(d, out + k, BIG - k + 1);
    big_trim(d);
    return true;
}

/* a <= b, both trimmed. */
static bool big_le(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? la < lb : strcmp(a, b) <= 0;
}

static uint64_t big_u64(const char *d)
{
    uint64_t v = 0;
    for (; *d; d++)
        v = v * 10 + (uint64_t) (*d - '0');
    return v;
}

/* The spec's duration form, exactly: digits, up to nine decimals, a unit of
 * s, ms or m (none: seconds); truncated to whole ns; 1 ns to one day. */
static bool ref_duration(const char *s, uint64_t *out)
{
    char num[BIG + 1];
    size_t k = 0, i = 0, decimals = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (k == 0 && s[i] == '0')
            continue;   /* leading zeros */
        if (k >= 60)
            return false;
        num[k++] = s[i];
    }
    if (i == 0)
        return false;
    if (s[i] == '.') {
        i++;
        for (; s[i] >= '0' && s[i] <= '9'; i++, decimals++) {
            if (decimals >= 9)
                return false;
            num[k++] = s[i];
        }
        if (decimals == 0)
            return false;
    }
    num[k] = '\0';
    const char *unit = s + i;
    uint64_t unit_ns = strcmp(unit, "") == 0 || strcmp(unit, "s") == 0 ? 1000000000ULL
                     : strcmp(unit, "ms") == 0 ? 1000000ULL
                     : strcmp(unit, "m") == 0 ? 60000000000ULL : 0;
    if (unit_ns == 0)
        return false;
    big_trim(num);
    if (!big_mul(num, unit_ns))
        return false;
    size_t n = strlen(num);   /* divide by 10^decimals: drop digits */
    num[n > decimals ? n - decimals : 0] = '\0';
    big_trim(num);
    if (num[0] == '\0' || !big_le(num, "86400000000000"))
        return false;
    *out = big_u64(num);
    return true;
}

/* The spec's size form: digits and an optional K, M or G (either case). */
static bool ref_size(const char *s, uint64_t *out)
{
    char num[BIG + 1];
    size_t i = 0, k = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (k == 0 && s[i] == '0')
            continue;   /* leading zeros */
        if (k >= 60)
            return false;
        num[k++] = s[i];
    }
    if (i == 0)
        return false;
    num[k] = '\0';
    uint64_t mult = 1;
    if (s[i] != '\0') {
        switch (s[i]) {
        case 'K': case 'k': mult = 1ULL << 10; break;
        case 'M': case 'm': mult = 1ULL << 20; break;
        case 'G': case 'g': mult = 1ULL << 30; break;
        default: return false;
        }
        if (s[i + 1] != '\0')
            return false;
    }
    big_trim(num);
    if (!big_mul(num, mult))
        return false;
    if (num[0] == '\0' || !big_le(num, "18446744073709551615"))
        return false;
    *out = big_u64(num);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 256)
        return 0;
    char s[257];
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    char back[64];
    switch (data[0] % 6) {
    case 0: {
        uint32_t v;
        if (parse_count(s, &v)) {
            if (v < 1 || v > SLUICE_COUNT_MAX)
                abort();
            snprintf(back, sizeof back, "%u", v);
            uint32_t again;
            if (!parse_count(back, &again) || again != v)
                abort();
        }
        break;
    }
    case 1: {
        uint64_t v;
        uint64_t ref = 0;
        bool ok = parse_size(s, &v), ref_ok = ref_size(s, &ref);
        if (ok != ref_ok || (ok && v != ref))
            abort();
        if (ok) {
            if (v == 0)
                abort();
            snprintf(back, sizeof back, "%llu", (unsigned long long) v);
            uint64_t again;
            if (!parse_size(back, &again) || again != v)
                abort();
        }
        break;
    }
    case 2: {
        uint64_t v, ref = 0;
        bool ok = parse_duration_ns(s, &v), ref_ok = ref_duration(s, &ref);
        if (ok != ref_ok || (ok && v != ref))
            abort();
        if (ok) {
            if (v == 0 || v > 86400ULL * 1000000000ULL)
                abort();
            /* Printed back in seconds and in milliseconds, it parses to itself. */
            uint64_t again;
            snprintf(back, sizeof back, "%llu.%09llus", (unsigned long long) (v / 1000000000ULL),
                     (unsigned long long) (v % 1000000000ULL));
            if (!parse_duration_ns(back, &again) || again != v)
                abort();
            snprintf(back, sizeof back, "%llu.%06llums", (unsigned long long) (v / 1000000ULL),
                     (unsigned long long) (v % 1000000ULL));
            if (!parse_duration_ns(back, &again) || again != v)
                abort();
        }
        break;
    }
    case 3: {
        bool b;
        (void) parse_bool(s, &b);
        break;
    }
    case 4: {
        uint16_t ports[8];
        uint32_t n = 99;
        if (parse_ports(s, ports, 8, &n)) {
            if (n == 0 || n > 8)
                abort();
            for (uint32_t i = 0; i < n; i++)
                if (ports[i] == 0)
                    abort();
        }
        break;
    }
    default: {
        static const char *const words[] = { "pause", "shed", NULL };
        int i = parse_enum(s, words);
        if (i >= 0 && strcmp(s, words[i]) != 0)
            abort();
        break;
    }
    }
    return 0;
}
