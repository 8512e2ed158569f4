/* fuzz_parse.c — libFuzzer target for every value form of the settings
 * (shim/parse.c). The first byte picks the form; the rest is the value. Beyond
 * "no crash", it checks what a parser promises: accepted values are in range,
 * and a size or count, printed back, parses to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

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
        if (parse_size(s, &v)) {
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
        uint64_t v;
        if (parse_duration_ns(s, &v) && (v == 0 || v > 86400ULL * 1000000000ULL))
            abort();
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
