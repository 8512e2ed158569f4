/* parse.h — the value forms of the spec (counts, sizes, durations, enums, port
 * lists), pure functions shared by the library and its tests. No allocation. */
#ifndef SLUICE_PARSE_H
#define SLUICE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLUICE_COUNT_MAX 1000000u

/* Each returns true and stores the value on success, false on a malformed or
 * out-of-range string (the caller names the variable in its message). */
bool parse_count(const char *s, uint32_t *out);             /* 1..1,000,000 */
bool parse_uint_range(const char *s, uint32_t min, uint32_t max, uint32_t *out);
bool parse_size(const char *s, uint64_t *out);              /* 123, 64K, 1M, 2G; > 0 */
/* A count, or auto (ceiling SLUICE_AUTO_CEILING), or auto:COUNT. */
#define SLUICE_AUTO_CEILING 1000u
bool parse_conn_max(const char *s, uint32_t *out, bool *is_auto);
/* A size (bytes 0) or PERCENT% from 1 to 100 (percent 0 when a size). */
bool parse_size_or_percent(const char *s, uint64_t *bytes, uint32_t *percent);
bool parse_duration_ns(const char *s, uint64_t *out);       /* 250ms, 2s, 1m, 3 (s); > 0 */
bool parse_bool(const char *s, bool *out);                  /* 1/0, yes/no, true/false, on/off */
bool parse_ports(const char *s, uint16_t *ports, uint32_t cap, uint32_t *n); /* 8080,8443 */
/* Index of s in the NULL-terminated list words, or -1. */
int parse_enum(const char *s, const char *const *words);

#endif
