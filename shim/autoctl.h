/* autoctl.h — SLUICE_CONN_MAX=auto's arithmetic, with no input or output of
 * its own: fed a sample now and then (requests in service, memory in use,
 * requests finished and their service times, pressure), it answers the limit
 * to keep. autolimit.c gathers the samples; the unit tests feed synthetic ones. */
#ifndef SLUICE_AUTOCTL_H
#define SLUICE_AUTOCTL_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

#define AUTOCTL_LEVELS 64          /* memory peaks remembered per requests in service */
#define AUTOCTL_START 2            /* requests admitted before any evidence */

enum autoctl_reason {
    AUTO_REASON_START = 0,         /* nothing learnt yet */
    AUTO_REASON_MEMORY,            /* the memory mark */
    AUTO_REASON_LATENCY,           /* service times (grows or shrinks) */
    AUTO_REASON_PRESSURE,          /* a PSI event cut it */
};

struct autoctl_sample {
    uint64_t now_ns;
    uint32_t busy;                 /* requests in service now */
    uint64_t usage;                /* memory in use (bytes); 0: memory signal off */
    uint64_t done;                 /* requests finished since the last sample */
    uint64_t done_ns;              /* their service times, summed */
    bool pressure;                 /* a pressure event since the last sample */
};

struct autoctl {
    uint32_t ceiling;              /* the most it may ever be */
    uint64_t mark;                 /* memory mark in bytes; 0: off */
    /* out */
    uint32_t limit;
    enum autoctl_reason reason;
    uint64_t request_bytes;        /* learnt memory per request (0: not yet) */
    uint64_t noload_ns, latency_ns;/* no-load and current service time */
    uint32_t mem_cap;              /* what memory allows (0: no bound) */
    /* memory: peak usage per requests in service, in two windows */
    uint64_t baseline;
    uint64_t peak[2][AUTOCTL_LEVELS + 1];
    uint64_t held[2][AUTOCTL_LEVELS + 1]; /* time spent at each level (ns) */
    uint32_t ended[2][AUTOCTL_LEVELS + 1]; /* requests finished from each level */
    uint64_t step_max[2];          /* the steepest step between levels seen */
    uint64_t window_start, last_sample_ns;
    uint32_t last_busy;
    double service_ns;             /* mean service time so far (0: none finished) */
    /* latency: Gradient2's estimate, windows of service times */
    double est;
    bool slow_start;
    uint64_t win_start, win_done, win_ns;
    uint32_t win_busy_max;
    double win_est0, win_grown;  /* slow start: the window's start, growth */
    double long_ns;
    uint32_t long_windows;
    uint64_t last_probe, probe_until;
    uint32_t probe_windows, rising_windows;
    uint64_t pressure_hold_until;
};

void autoctl_init(struct autoctl *c, uint32_t ceiling, uint64_t mark) SLUICE_INTERNAL;
/* A controller taking over a limit another kept (a shared budget whose
 * controlling member is gone): it goes on from `limit`, past slow start, and
 * from the other's no-load latency (0: unknown, learnt again). */
void autoctl_resume(struct autoctl *c, uint32_t limit, uint64_t noload_ns) SLUICE_INTERNAL;
/* One sample in; the limit to keep out (also in c->limit, with c->reason). */
uint32_t autoctl_step(struct autoctl *c, const struct autoctl_sample *s) SLUICE_INTERNAL;

#endif
