/* statswriter.h — the stats file's writer thread (statswriter.c). */
#ifndef SLUICE_STATSWRITER_H
#define SLUICE_STATSWRITER_H

#include "common.h"

void stats_start(void) SLUICE_INTERNAL;       /* writer thread, if SLUICE_STATS */
void stats_write_final(void) SLUICE_INTERNAL; /* the exit rewrite: the last one */
void stats_atfork_child(void) SLUICE_INTERNAL;

#endif
