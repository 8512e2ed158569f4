/* statsfile_writers.h — who writes the stats file (statsfile_writers.c): this
 * process's identity, an older writer of a shared path, temp names, and the
 * sweep of dead writers' temp files. Private to statsfile.c, which calls all
 * of these under its lock. */
#ifndef SLUICE_STATSFILE_WRITERS_H
#define SLUICE_STATSFILE_WRITERS_H

#include <stdbool.h>
#include <stddef.h>
#include "common.h"

/* Reads this process's pid and start time (again in a forked child). */
void statsfile_know_myself(void) SLUICE_INTERNAL;
/* Without %p: whether name in dir_fd was written by another live process that
 * started before this one. */
bool statsfile_older_writer_lives(int dir_fd, const char *name) SLUICE_INTERNAL;
/* A fresh temp name for name: NAME.tmp.PID.START.RAND. */
void statsfile_temp_name(const char *name, char *tmp, size_t cap) SLUICE_INTERNAL;
/* Removes, in dir_fd, the temp files of template_abs's writers that are gone. */
void statsfile_sweep_dead_temps(int dir_fd, const char *template_abs) SLUICE_INTERNAL;

#endif
