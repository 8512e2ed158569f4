/* sluice.h — what a program that knows about sluice may ask of it. Find the
 * functions with dlsym(RTLD_DEFAULT, "sluice_version") and so on, so that the
 * program still runs when the library is not preloaded:
 *
 *     int (*snap)(struct sluice_gauges *, size_t) =
 *         (int (*)(struct sluice_gauges *, size_t)) dlsym(RTLD_DEFAULT, "sluice_gauges");
 *     struct sluice_gauges g;
 *     if (snap != NULL && snap(&g, sizeof g) == 0 && g.conn_limit != 0
 *         && g.conn_in_flight >= g.conn_limit)
 *         ...  // not ready: answer "busy" before committing to work
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stddef.h>
#include <stdint.h>

#define SLUICE_VERSION "0.1.0"

/* A snapshot of the gauges. A limit of 0 means that gate is off. */
struct sluice_gauges {
    uint32_t conn_in_flight;   /* accepted connections holding a slot now (host scope:
                                  across every process of SLUICE_CONN_KEY) */
    uint32_t conn_limit;       /* SLUICE_CONN_MAX (host scope: the shared budget's) */
    uint32_t paused;           /* 1 while the listeners are paused */
    uint32_t fs_in_use;        /* filesystem tokens held now (this process) */
    uint32_t fs_limit;         /* SLUICE_FS_MAX */
};

/* The library's version, e.g. "0.1.0". */
const char *sluice_version(void);
/* Fills *out (size: sizeof *out, for compatibility); 0 on success, -1 if size is too small. */
int sluice_gauges(struct sluice_gauges *out, size_t size);

#endif
