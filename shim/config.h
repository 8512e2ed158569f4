/* config.h — every SLUICE_* setting, parsed once when the library loads into an
 * immutable struct (kept across fork, since nginx wipes its workers' environment). */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common.h"
#include "log.h"

enum conn_mode { CONN_PAUSE = 0, CONN_SHED };
enum conn_idle { CONN_IDLE_HOLD = 0, CONN_IDLE_FREE };
enum shed_kind { SHED_HTTP503 = 0, SHED_HTTP429, SHED_CLOSE, SHED_RESET };
enum fs_scope { FS_SCOPE_PROCESS = 0, FS_SCOPE_HOST };
enum conn_scope { CONN_SCOPE_PROCESS = 0, CONN_SCOPE_HOST };

#define SLUICE_MAX_PORTS 64
#define SLUICE_PATH_MAX 4096
#define SLUICE_KEY_MAX 128

/* A value of 0 means "off" for every count, size and duration below. */
struct sluice_config {
    uint32_t conn_max;               /* SLUICE_CONN_MAX (with auto: the ceiling) */
    bool conn_auto;                  /* SLUICE_CONN_MAX=auto[:CEILING] */
    uint64_t mem_high;               /* SLUICE_MEM_HIGH in bytes (0: not given so) */
    uint32_t mem_high_pct;           /* SLUICE_MEM_HIGH in % of the cgroup limit */
    enum conn_mode conn_mode;        /* SLUICE_CONN_MODE */
    enum conn_idle conn_idle;        /* SLUICE_CONN_IDLE */
    enum shed_kind shed;             /* SLUICE_SHED */
    uint32_t retry_after_s;          /* SLUICE_RETRY_AFTER (default 1) */
    uint32_t backlog;                /* SLUICE_BACKLOG */
    bool retry_after_auto;           /* SLUICE_RETRY_AFTER=auto */
    uint64_t queue_timeout_ns;       /* SLUICE_QUEUE_TIMEOUT */
    uint32_t queue_max;              /* SLUICE_QUEUE_MAX */
    bool queue_lifo;                 /* SLUICE_QUEUE_ORDER=lifo (default fifo) */
    uint16_t ports[SLUICE_MAX_PORTS];/* SLUICE_CONN_PORTS */
    uint32_t nports;                 /* 0: every TCP and UNIX stream listener */
    enum conn_scope conn_scope;      /* SLUICE_CONN_SCOPE */
    char conn_key[SLUICE_KEY_MAX];   /* SLUICE_CONN_KEY (default "default") */

    uint64_t write_high;             /* SLUICE_WRITE_HIGH, bytes */
    uint64_t write_timeout_ns;       /* SLUICE_WRITE_TIMEOUT */
    bool hold_reads;                 /* SLUICE_HOLD_READS */

    uint32_t fs_max;                 /* SLUICE_FS_MAX */
    enum fs_scope fs_scope;          /* SLUICE_FS_SCOPE */
    char fs_key[SLUICE_KEY_MAX];     /* SLUICE_FS_KEY (default "default") */
    uint64_t fs_timeout_ns;          /* SLUICE_FS_TIMEOUT (0: wait) */

    char stats_path[SLUICE_PATH_MAX];/* SLUICE_STATS, as given (%p unexpanded) */
    uint64_t stats_interval_ns;      /* SLUICE_STATS_INTERVAL (default 1s) */
    enum log_level log_level;        /* SLUICE_LOG (default warn) */
    bool strict;                     /* SLUICE_STRICT */
};

/* The settings in force. Filled once by config_load(); read-only after. */
extern struct sluice_config sluice_cfg SLUICE_INTERNAL;

/* Parses the environment into sluice_cfg. Allocates nothing (it may run before
 * malloc is ready, inside another library's constructor). Each bad value gets one
 * stderr line and stays off, or keeps its default (a bad SLUICE_FS_KEY or
 * SLUICE_CONN_KEY with host scope turns that gate off); a misspelt SLUICE_* name gets a line too.
 * With SLUICE_STRICT=1 either makes the process exit with status 2. */
void config_load(void) SLUICE_INTERNAL;

#define GATE_CONN  0x1u
#define GATE_DRAIN 0x2u
#define GATE_FS    0x4u

/* Which gates are on; written once at start-up (init.c), read by every wrapper. */
extern _Atomic unsigned sluice_gates SLUICE_INTERNAL;

static inline unsigned gates_on(void)
{
    return atomic_load_explicit(&sluice_gates, memory_order_relaxed);
}

#endif
