/* statswriter.c — the thread that puts the counters (stats.c) in SLUICE_STATS
 * every interval, and the last write at exit: rendered into a buffer, handed to
 * statsfile.c, which replaces the file atomically. A forked child writes only
 * if the path has %p: with one file for several processes, they would
 * overwrite each other's figures (statsfile.c keeps exec'd children off their
 * parent's file the same way). */
#include "statswriter.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "stats.h"
#include "statsfile.h"
#include "threads.h"

static _Atomic int writer_running;
static bool child_silent;            /* forked child of a %p-less path */

/* One rewrite of the file: the writer's line, then the counters. */
static void write_file(bool final)
{
    if (sluice_cfg.stats_path[0] == '\0' || child_silent)
        return;
    int saved = errno;
    char text[16384];
    size_t len = statsfile_header(text, sizeof text);
    len += stats_render(text + len, sizeof text - len);
    statsfile_write(text, len, final);
    errno = saved;
}

void stats_write_final(void)
{
    write_file(true);
}

/* How often the writer looks whether the program has ended all its threads
 * (threads.c): the longest a process outlives its last thread. */
#define LIVENESS_NS 200000000ULL

static void *writer(void *arg)
{
    (void) arg;
    uint64_t interval = sluice_cfg.stats_interval_ns, waited = interval;
    for (;;) {
        if (waited >= interval) {
            write_file(false);
            waited = 0;
        }
        uint64_t step = interval - waited < LIVENESS_NS ? interval - waited : LIVENESS_NS;
        struct timespec ts = { .tv_sec = (time_t) (step / 1000000000ULL),
                               .tv_nsec = (long) (step % 1000000000ULL) };
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        waited += step;
        threads_exit_if_only_ours();
    }
    return NULL;
}

void stats_start(void)
{
    if (sluice_cfg.stats_path[0] == '\0' || child_silent)
        return;
    if (atomic_exchange(&writer_running, 1))
        return;
    statsfile_start();
    if (!threads_start(writer, 0))
        atomic_store(&writer_running, 0);
}

void stats_atfork_child(void)
{
    atomic_store(&writer_running, 0);
    if (sluice_cfg.stats_path[0] == '\0')
        return;
    bool own_file = strstr(sluice_cfg.stats_path, "%p") != NULL;
    statsfile_atfork_child(own_file);
    if (!own_file) {
        child_silent = true;
        return;
    }
    /* The child's figures start from what it holds: nothing in flight. */
    STAT_SET(conn_in_flight, 0);
    STAT_SET(fs_in_use, 0);
    stats_start();
}
