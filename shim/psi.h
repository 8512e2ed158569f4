/* psi.h — a Linux pressure-stall (PSI) poll trigger on memory pressure: the
 * kernel wakes a poller when tasks stalled for more than a threshold within a
 * window, instead of sluice reading a file in a loop. */
#ifndef SLUICE_PSI_H
#define SLUICE_PSI_H

#include <stdint.h>
#include "common.h"

/* What psi_open() made, for the poller: the descriptor and the events that
 * mean "pressure" (EPOLLPRI for a trigger, EPOLLIN for systemd's FIFO). */
struct psi_watch {
    int fd;              /* -1: no pressure signal */
    uint32_t events;
    const char *source;  /* the file watched, for the log */
};

/* Opens the trigger: $MEMORY_PRESSURE_WATCH (with $MEMORY_PRESSURE_WRITE,
 * base64, as systemd sets them; "/dev/null" turns it off) if set, else
 * memory.pressure in the v2 cgroup directory cgroup_v2_dir (may be ""),
 * else /proc/pressure/memory, with "some 150000 1000000" (150 ms stalled in
 * any 1 s). O_CLOEXEC. The caller owns the descriptor. */
struct psi_watch psi_open(const char *cgroup_v2_dir) SLUICE_INTERNAL;
/* Decodes base64 src into out (cap bytes, NUL-terminated); its length, or -1. */
long psi_base64_decode(const char *src, char *out, unsigned long cap) SLUICE_INTERNAL;

#endif
