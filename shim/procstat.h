/* procstat.h — reading a /proc/.../stat file without allocating: the fields
 * that follow the command name (which may hold anything, even ')'). */
#ifndef SLUICE_PROCSTAT_H
#define SLUICE_PROCSTAT_H

#include <stddef.h>
#include "common.h"

/* Reads path into buf (cap bytes) and returns a pointer to field 3 (the state
 * letter), or NULL if the file cannot be read or is not a stat file. */
const char *procstat_fields(const char *path, char *buf, size_t cap) SLUICE_INTERNAL;

#endif
