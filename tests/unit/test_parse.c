/* test_parse.c — every value form of the spec, good and bad. */
#include <criterion/criterion.h>
#include <string.h>

#include "parse.h"

Test(parse, counts)
{
    uint32_t v = 0;
    cr_assert(parse_count("1", &v) && v == 1);
    cr_assert(parse_count("1000000", &v) && v == 1000000);
    cr_assert(!parse_count("0", &v));
    cr_assert(!parse_count("1000001", &v));
    cr_assert(!parse_count("", &v));
    cr_assert(!parse_count(" 4", &v));
    cr_assert(!parse_count("+4", &v));
    cr_assert(!parse_count("4x", &v));
    cr_assert(!parse_count("-1", &v));
    cr_assert(!parse_count("99999999999999999999", &v));
}

Test(parse, sizes)
{
    uint64_t v = 0;
    cr_assert(parse_size("123", &v) && v == 123);
    cr_assert(parse_size("64K", &v) && v == 65536);
    cr_assert(parse_size("64k", &v) && v == 65536);
    cr_assert(parse_size("2M", &v) && v == 2u << 20);
    cr_assert(parse_size("1G", &v) && v == 1u << 30);
    cr_assert(!parse_size("0", &v));
    cr_assert(!parse_size("64KB", &v));
    cr_assert(!parse_size("K", &v));
    cr_assert(!parse_size("1T", &v));
    cr_assert(!parse_size("-5", &v));
    cr_assert(!parse_size("99999999999999999999G", &v));
    cr_assert(!parse_size("17179869184G", &v));
}

Test(parse, durations)
{
    uint64_t v = 0;
    cr_assert(parse_duration_ns("250ms", &v) && v == 250000000ULL);
    cr_assert(parse_duration_ns("2s", &v) && v == 2000000000ULL);
    cr_assert(parse_duration_ns("1m", &v) && v == 60000000000ULL);
    cr_assert(parse_duration_ns("3", &v) && v == 3000000000ULL);
    cr_assert(parse_duration_ns("0.5", &v) && v == 500000000ULL);
    cr_assert(parse_duration_ns("1.25s", &v) && v == 1250000000ULL);
    cr_assert(!parse_duration_ns("0", &v));
    cr_assert(!parse_duration_ns("0ms", &v));
    cr_assert(!parse_duration_ns("2h", &v));
    cr_assert(!parse_duration_ns("s", &v));
    cr_assert(!parse_duration_ns("1.", &v));
    cr_assert(!parse_duration_ns("2 s", &v));
    cr_assert(!parse_duration_ns("86401", &v));
    cr_assert(!parse_duration_ns("99999999999999999999ms", &v));
}

/* The fraction times the unit used to overflow 64 bits: 0.999999999m became
 * 4.66 s and 0.307445735m 26 ns. */
Test(parse, duration_fractions_of_a_minute_are_exact)
{
    uint64_t v = 0;
    cr_assert(parse_duration_ns("0.999999999m", &v));
    cr_assert_eq(v, 59999999940ULL, "0.999999999m gave %llu ns", (unsigned long long) v);
    cr_assert(parse_duration_ns("0.307445735m", &v));
    cr_assert_eq(v, 18446744100ULL, "0.307445735m gave %llu ns", (unsigned long long) v);
    cr_assert(parse_duration_ns("1439.999999999m", &v) && v == 86399999999940ULL);
    cr_assert(parse_duration_ns("0.999999999ms", &v) && v == 999999ULL);
    cr_assert(parse_duration_ns("86399.999999999s", &v) && v == 86399999999999ULL);
    cr_assert(!parse_duration_ns("1440.000000001m", &v));
    cr_assert(!parse_duration_ns("0.0000001ms", &v));   /* below a nanosecond: zero */
}

Test(parse, sizes_take_no_fractions)
{
    uint64_t v = 0;
    cr_assert(!parse_size("1.5G", &v));
    cr_assert(!parse_size("1.0K", &v));
    cr_assert(parse_size("2047M", &v) && v == 2047ULL << 20);
    cr_assert(parse_size("16777215G", &v) && v == 16777215ULL << 30);
}

Test(parse, bools)
{
    bool b = false;
    cr_assert(parse_bool("1", &b) && b);
    cr_assert(parse_bool("yes", &b) && b);
    cr_assert(parse_bool("0", &b) && !b);
    cr_assert(parse_bool("off", &b) && !b);
    cr_assert(!parse_bool("2", &b));
    cr_assert(!parse_bool("", &b));
}

Test(parse, ports)
{
    uint16_t ports[4];
    uint32_t n = 0;
    cr_assert(parse_ports("8080", ports, 4, &n) && n == 1 && ports[0] == 8080);
    cr_assert(parse_ports("8080,8443", ports, 4, &n) && n == 2 && ports[1] == 8443);
    cr_assert(!parse_ports("", ports, 4, &n));
    cr_assert(!parse_ports("0", ports, 4, &n));
    cr_assert(!parse_ports("65536", ports, 4, &n));
    cr_assert(!parse_ports("80,", ports, 4, &n));
    cr_assert(!parse_ports(",80", ports, 4, &n));
    cr_assert(!parse_ports("80,,81", ports, 4, &n));
    cr_assert(!parse_ports("1,2,3,4,5", ports, 4, &n));
    cr_assert(!parse_ports("http", ports, 4, &n));
}

Test(parse, enums)
{
    static const char *const words[] = { "pause", "shed", NULL };
    cr_assert_eq(parse_enum("pause", words), 0);
    cr_assert_eq(parse_enum("shed", words), 1);
    cr_assert_eq(parse_enum("Shed", words), -1);
    cr_assert_eq(parse_enum("", words), -1);
}

Test(parse, conn_max_takes_a_count_auto_or_auto_with_a_ceiling)
{
    uint32_t n = 0;
    bool is_auto = true;
    cr_assert(parse_conn_max("64", &n, &is_auto));
    cr_assert(n == 64 && !is_auto);
    cr_assert(parse_conn_max("auto", &n, &is_auto));
    cr_assert(n == SLUICE_AUTO_CEILING && is_auto);
    cr_assert(parse_conn_max("auto:200", &n, &is_auto));
    cr_assert(n == 200 && is_auto);
    const char *bad[] = { "auto:", "auto:0", "auto:x", "autox", "Auto", "auto:1000001", " auto", "0", NULL };
    for (int i = 0; bad[i] != NULL; i++)
        cr_assert(!parse_conn_max(bad[i], &n, &is_auto), "'%s'", bad[i]);
}

Test(parse, mem_high_takes_a_size_or_a_percentage)
{
    uint64_t bytes = 1;
    uint32_t pct = 1;
    cr_assert(parse_size_or_percent("300M", &bytes, &pct));
    cr_assert(bytes == 300ull << 20 && pct == 0);
    cr_assert(parse_size_or_percent("85%", &bytes, &pct));
    cr_assert(bytes == 0 && pct == 85);
    const char *bad[] = { "%", "0%", "101%", "85 %", "-5%", "1234567%", "M", "", NULL };
    for (int i = 0; bad[i] != NULL; i++)
        cr_assert(!parse_size_or_percent(bad[i], &bytes, &pct), "'%s'", bad[i]);
}
