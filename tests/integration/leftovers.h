/* leftovers.h — what a test started or made, so that a failed assertion (which
 * ends the test at once) still leaves nothing behind: a suite's fini stops every
 * child that is still ours (not yet reaped, so its PID cannot have been reused)
 * and removes the temporary paths. Each suite keeps its own record. */
#ifndef SLUICE_TEST_LEFTOVERS_H
#define SLUICE_TEST_LEFTOVERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "testlib.h"

#define LEFTOVERS_MAX 16

struct leftovers {
    int term_polls;   /* 50 ms polls between SIGTERM and SIGKILL */
    pid_t children[LEFTOVERS_MAX];
    int stop_signal[LEFTOVERS_MAX];   /* 0: SIGTERM */
    int nchildren;
    char paths[LEFTOVERS_MAX][128];
    int npaths;
};

/* t_spawn, and the child is remembered. */
struct t_proc leftovers_spawn(struct leftovers *l, const char *const *argv,
                              const char *const *env, bool preload);
/* The signal that stops child pid at once (PostgreSQL's SIGTERM waits for its
 * clients, which a failed test still holds open). */
void leftovers_stop_with(struct leftovers *l, pid_t pid, int sig);
/* A path (file or dir) to remove at the end. */
void leftovers_path(struct leftovers *l, const char *path);
/* Stops the children still ours (SIGTERM, then SIGKILL) and removes the paths. */
void leftovers_clear(struct leftovers *l);

#endif
