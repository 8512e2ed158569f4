/* cgroupmem.h — the memory cgroup the process lives in: its limit and its
 * usage (v2 memory.max and memory.current; v1 memory.limit_in_bytes and
 * memory.usage_in_bytes), found from /proc/self/cgroup and
 * /proc/self/mountinfo. Nothing allocated; each read opens and closes a file. */
#ifndef SLUICE_CGROUPMEM_H
#define SLUICE_CGROUPMEM_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

#define CGROUPMEM_PATH_MAX 512

struct cgroupmem {
    int version;                            /* 1 or 2; 0: none found */
    uint64_t limit;                         /* the tightest limit; 0: none */
    char usage_path[CGROUPMEM_PATH_MAX];    /* usage of the cgroup whose limit binds */
    char v2_dir[CGROUPMEM_PATH_MAX];        /* the process's own v2 cgroup ("" if none) */
};

/* Finds the process's memory cgroup and the tightest limit among it and its
 * ancestors. False if no memory cgroup can be read. */
bool cgroupmem_find(struct cgroupmem *m) SLUICE_INTERNAL;
/* Memory in use now (bytes); 0 if it cannot be read. */
uint64_t cgroupmem_usage(const struct cgroupmem *m) SLUICE_INTERNAL;
/* The process's resident memory from /proc/self/statm (bytes), for a mark
 * given in bytes where no cgroup can be read; 0 if unknown. */
uint64_t cgroupmem_rss(void) SLUICE_INTERNAL;

#endif
