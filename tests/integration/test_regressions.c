/* test_regressions.c — bugs found by running real programs' own test suites
 * under the library (make transparency), each pinned by a test that fails
 * without its fix. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-regr-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

static bool stats_file_of(const char *out, const char *label)
{
    const char *at = strstr(out, label);
    if (at == NULL)
        return false;
    char path[128];
    snprintf(path, sizeof path, "%s/s-%d.prom", dir, atoi(at + strlen(label)));
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

/* CPython's test_threading (test_3_join_in_forked_from_thread) hung with
 * SLUICE_STATS: the stats writer thread kept alive a process whose last thread
 * of its own had ended with pthread_exit, which glibc otherwise ends with
 * exit(0). Such a process never ended, and ignored SIGTERM (our thread blocks
 * every signal). */
static void last_thread_ends_process(const char *mode)
{
    make_dir();
    char stats[128];
    snprintf(stats, sizeof stats, "SLUICE_STATS=%s/s-%%p.prom", dir);
    bool shed = strcmp(mode, "shed") == 0;
    const char *env[] = { stats, shed ? "SLUICE_CONN_MAX=1" : NULL, "SLUICE_CONN_MODE=shed", NULL };
    const char *argv[] = { t_helper("last_thread"), mode, NULL };

    char *out = NULL;
    int bare = t_run(argv, NULL, false, 5000, &out, NULL);
    cr_assert_eq(bare, 0, "%s bare: exit %d", mode, bare);
    free(out);

    uint64_t start = t_now_ms();
    int rc = t_run(argv, env, true, 5000, &out, NULL);
    uint64_t took = t_now_ms() - start;
    cr_assert_eq(rc, 0, "%s preloaded with SLUICE_STATS: exit %d after %llu ms (-1: still "
                 "running), output [%s]", mode, rc, (unsigned long long) took, out);
    /* It ends the way glibc ends it: exit(0), so the final figures are written. */
    cr_assert(stats_file_of(out, "pid "), "%s: no stats file at exit; output [%s]", mode, out);
    if (strcmp(mode, "forked") == 0)
        cr_assert(stats_file_of(out, "child "), "no stats file of the child; [%s]", out);
    free(out);
    remove_dir();
}

Test(regressions, main_thread_pthread_exit_then_last_worker_ends_the_process)
{
    last_thread_ends_process("main");
}

Test(regressions, child_forked_from_a_thread_ends_when_that_thread_returns)
{
    last_thread_ends_process("forked");
}

/* The same for the connection gate's own thread, started by a shed. */
Test(regressions, the_connection_gates_thread_does_not_keep_a_process_alive)
{
    last_thread_ends_process("shed");
}
