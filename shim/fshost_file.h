/* fshost_file.h — the host budgets' state files (fshost_file.c): one small
 * shared file per (user, budget, key) under /dev/shm, made, checked and mapped
 * the same way for the filesystem budget (fshost.c) and the connection budget
 * (connhost.c), plus the robust, process-shared lock they both recover with. */
#ifndef SLUICE_FSHOST_FILE_H
#define SLUICE_FSHOST_FILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"
#include "fshost.h"

/* Every state file opens with this header (fshost_state's first fields). */
struct hostfile_header {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint32_t uid;
    uint32_t limit;
};

/* What one kind of state file is. */
struct hostfile_kind {
    const char *name_fmt;            /* its name in the user's directory, from the key */
    uint64_t magic;
    uint32_t version;
    size_t (*size_for)(uint32_t limit);
    bool fixed_size;                 /* the same size whatever the limit */
    void (*init)(void *mem, uint32_t limit);   /* all but the header, in a fresh file */
    _Atomic int *unusable;           /* set when the state cannot be used */
    _Atomic int *truncated;          /* set by the SIGBUS handler: it shrank */
};

/* Set when the state cannot be used (a refusal, a broken lock, or the SIGBUS
 * handler after a truncation); fshost_truncated: that last case. */
extern _Atomic int fshost_unusable SLUICE_INTERNAL;
extern _Atomic int fshost_truncated SLUICE_INTERNAL;

/* Opens (creating if needed) the state of key for this user and maps it, with
 * its path in state_path; 0 and *out, *len, or -1 and *why (what is wrong). */
int hostfile_map(const struct hostfile_kind *k, uint32_t limit, const char *key,
                 char *state_path, size_t cap, void **out, size_t *len,
                 const char **why) SLUICE_INTERNAL;
/* The filesystem budget's file. */
int fshost_file_map(uint32_t limit, const char *key, char *state_path, size_t cap,
                    struct fshost_state **out, const char **why) SLUICE_INTERNAL;

/* A robust, process-shared mutex in a fresh file. */
void hostfile_init_lock(pthread_mutex_t *m) SLUICE_INTERNAL;
/* Takes it, bounded by FSHOST_LOCK_BOUND_NS: 0; EOWNERDEAD (taken, made
 * consistent: its holder died inside, the caller recovers); or ETIMEDOUT or
 * another error (not taken). */
int hostfile_lock(pthread_mutex_t *m) SLUICE_INTERNAL;

#endif
