/* fshost_file.h — the host budget's state file (fshost_file.c). */
#ifndef SLUICE_FSHOST_FILE_H
#define SLUICE_FSHOST_FILE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "fshost.h"

/* Set when the state cannot be used (a refusal, a broken lock, or the SIGBUS
 * handler after a truncation); fshost_truncated: that last case. */
extern _Atomic int fshost_unusable SLUICE_INTERNAL;
extern _Atomic int fshost_truncated SLUICE_INTERNAL;

/* Opens (creating if needed) the state of key for this user and maps it, with
 * its path in state_path; 0 and *out, or -1 and *why (what is wrong with it). */
int fshost_file_map(uint32_t limit, const char *key, char *state_path, size_t cap,
                    struct fshost_state **out, const char **why) SLUICE_INTERNAL;

#endif
