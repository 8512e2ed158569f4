/* api.c — the public functions of include/sluice.h: the version and a snapshot
 * of the gauges, read from the same counters the stats file shows. */
#include "../include/sluice.h"

#include "common.h"
#include "fsgate.h"
#include "init.h"
#include "slots.h"
#include "stats.h"

SLUICE_PUBLIC const char *sluice_version(void)
{
    return SLUICE_VERSION;
}

SLUICE_PUBLIC int sluice_gauges(struct sluice_gauges *out, size_t size)
{
    if (out == NULL || size < sizeof *out)
        return -1;
    sluice_init();
    fsgate_sync_stats();
    slots_sync_stats();
    out->conn_in_flight = (uint32_t) atomic_load(&sluice_stats.conn_in_flight);
    out->conn_limit = (uint32_t) atomic_load(&sluice_stats.conn_limit);
    out->paused = (uint32_t) atomic_load(&sluice_stats.conn_paused);
    out->fs_in_use = (uint32_t) atomic_load(&sluice_stats.fs_in_use);
    out->fs_limit = (uint32_t) atomic_load(&sluice_stats.fs_limit);
    return 0;
}
