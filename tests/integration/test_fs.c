/* test_fs.c — the filesystem semaphore in process scope, watched from outside:
 * strace measures how many file system calls overlap; helper programs report
 * deadlocks (by not finishing), EAGAIN counts and handler activity. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-fs-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(fs_process, .init = make_dir, .fini = remove_dir);

static int count_lines_with(const char *s, const char *word)
{
    int n = 0;
    for (const char *line = s; line != NULL && *line; ) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t) (end - line) : strlen(line);
        char *copy = strndup(line, len);
        n += strstr(copy, word) != NULL;
        free(copy);
        line = end != NULL ? end + 1 : NULL;
    }
    return n;
}

/* Runs argv under strace (the tracer itself bare: it must never wait for a
 * token its stopped tracees hold), the tracee with the library and settings when
 * env is given; returns the most calls on files under dir in flight at once, and
 * in streak_gap[0] the longest run of consecutive calls from one thread, in
 * streak_gap[1] the most calls others made between two of one thread's. */
int fs_overlap(const char *const *argv, const char *const *env, const char *under, int *calls,
               int *streak_gap)
{
    char trace[128], arg_preload[4200];
    snprintf(trace, sizeof trace, "%s.trace", under);
    const char *cmd[64];
    int n = 0;
    cmd[n++] = "strace";
    snprintf(arg_preload, sizeof arg_preload, "LD_PRELOAD=%s", t_preload());
    if (env != NULL) {
        cmd[n++] = "-E";
        cmd[n++] = arg_preload;
        for (int i = 0; env[i] != NULL; i++) {
            cmd[n++] = "-E";
            cmd[n++] = env[i];
        }
    }
    const char *fixed[] = { "-f", "-y", "-ttt", "-T", "-e",
                            "trace=read,write,pread64,pwrite64,readv,writev", "-o", trace, NULL };
    for (int i = 0; fixed[i] != NULL; i++)
        cmd[n++] = fixed[i];
    for (int i = 0; argv[i] != NULL && n < 63; i++)
        cmd[n++] = argv[i];
    cmd[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = t_run(cmd, NULL, false, 60000, &out, &err);
    cr_assert_eq(rc, 0, "traced run failed (%d): %s", rc, err);
    free(out);
    free(err);
    const char *py[] = { "/usr/bin/python3", t_source("tests/helpers/fs_overlap.py"), trace, under, NULL };
    char *res = NULL;
    rc = t_run(py, NULL, false, 30000, &res, &err);
    cr_assert_eq(rc, 0, "overlap analysis failed: %s", err);
    int most = -1, run = -1, gap = -1;
    cr_assert_eq(sscanf(res, "calls %d max %d streak %d gap %d", calls, &most, &run, &gap), 4,
                 "[%s]", res);
    if (streak_gap != NULL) {
        streak_gap[0] = run;
        streak_gap[1] = gap;
    }
    free(res);
    free(err);
    unlink(trace);
    return most;
}

Test(fs_process, sixteen_threads_never_overlap_more_than_the_limit, .timeout = 60)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/", dir);
    const char *argv[] = { t_helper("fs_load"), "threads", dir, "16", "30", "65536", NULL };
    const char *env[] = { "SLUICE_FS_MAX=2", NULL };
    int calls = 0;
    int gated = fs_overlap(argv, env, sub, &calls, NULL);
    cr_assert_eq(calls, 16 * 30 * 2, "calls seen: %d", calls);
    cr_assert_leq(gated, 2, "with SLUICE_FS_MAX=2, %d file calls overlapped", gated);
    cr_assert_geq(gated, 1);
    int bare = fs_overlap(argv, NULL, sub, &calls, NULL);
    cr_assert_gt(bare, 2, "bare run overlapped only %d: the measure cannot tell", bare);
    fprintf(stderr, "fs_process: 16 threads, max overlapping file calls: bare %d, SLUICE_FS_MAX=2 %d\n",
            bare, gated);
}

Test(fs_process, waiters_are_served_in_order, .timeout = 60)
{
    /* Eight threads released together on one token: each release hands the
     * token to the longest waiter, so no thread makes calls in a row while
     * others wait, and none waits for more than one turn of the others. A gate
     * that serves the newest waiter first (or lets the releaser take its token
     * straight back) starves some threads: long gaps. (Bare runs cannot serve
     * as the contrast: strace itself serializes them in turn.) */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/", dir);
    const char *argv[] = { t_helper("fs_load"), "threads", dir, "8", "100", "65536", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    /* strace's own stops now and then let one thread run a few calls ahead
     * (about 1 run in 10 here: runs of 4-6, a wait of 51); a gate that serves
     * out of order does it every time. So the order must hold in one of three
     * runs; the runs that missed are logged. */
    int calls = 0, sg[2] = { -1, -1 };
    for (int attempt = 1;; attempt++) {
        cr_assert_leq(fs_overlap(argv, env, sub, &calls, sg), 1);
        cr_assert_eq(calls, 8 * 100 * 2);
        /* A thread slow to queue again (strace stops it between calls) may
         * miss a few turns; starvation is hundreds. */
        if (sg[0] <= 2 && sg[1] <= 6 * 7)
            break;
        fprintf(stderr, "fs_process: run %d out of order: longest run %d, longest wait %d calls\n",
                attempt, sg[0], sg[1]);
        cr_assert_lt(attempt, 3, "three runs out of order: a thread made %d calls in a row while "
                     "others waited, one waited while others made %d", sg[0], sg[1]);
    }
    fprintf(stderr, "fs_process: 8 threads on 1 token: longest run %d, longest wait %d calls\n",
            sg[0], sg[1]);
}

Test(fs_process, signal_handler_doing_io_while_its_thread_holds_a_token_does_not_deadlock,
     .timeout = 30)
{
    const char *argv[] = { t_helper("fs_load"), "signal", dir, "3000", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 15000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d (deadlocked?) stderr [%s]", rc, err);
    int reads = -1;
    cr_assert_eq(sscanf(out, "handler_reads %d", &reads), 1, "[%s]", out);
    cr_assert_gt(reads, 10, "the handler ran only %d times", reads);
    free(out);
    free(err);
}

Test(fs_process, fork_during_another_threads_io_leaves_the_child_a_working_gate, .timeout = 60)
{
    const char *argv[] = { t_helper("fs_load"), "fork", dir, "30", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 40000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d stderr [%s]", rc, err);
    int ok = -1, stuck = -1;
    cr_assert_eq(sscanf(out, "forks_ok %d stuck %d", &ok, &stuck), 2, "[%s]", out);
    cr_assert_eq(stuck, 0, "%d forked children never finished their file I/O", stuck);
    cr_assert_eq(ok, 30);
    free(out);
    free(err);
}

Test(fs_process, timeout_fails_the_call_with_eagain_and_says_so_once, .timeout = 30)
{
    const char *argv[] = { t_helper("fs_load"), "timeout", dir, "200", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_TIMEOUT=2ms", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 20000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d stderr [%s]", rc, err);
    int eagain = -1, ok = -1;
    cr_assert_eq(sscanf(out, "eagain %d ok %d", &eagain, &ok), 2, "[%s]", out);
    cr_assert_gt(eagain, 0, "no call timed out behind 64 MiB writes");
    cr_assert_gt(ok, 0, "no call got through");
    cr_assert_eq(count_lines_with(err, "SLUICE_FS_TIMEOUT"), 1, "stderr [%s]", err);
    free(out);
    free(err);

    /* The same load without a timeout waits instead; bare never fails either. */
    const char *env_wait[] = { "SLUICE_FS_MAX=1", NULL };
    rc = t_run(argv, env_wait, true, 20000, &out, &err);
    cr_assert_eq(rc, 0);
    cr_assert_eq(sscanf(out, "eagain %d ok %d", &eagain, &ok), 2, "[%s]", out);
    cr_assert_eq(eagain, 0);
    cr_assert_str_empty(err);
    free(out);
    free(err);
}

Test(fs_process, pipes_sockets_and_fifos_are_not_gated, .timeout = 30)
{
    /* With one token, a thread blocked reading a pipe, one reading a socket and
     * one opening a FIFO must not stop the main thread's file I/O (which is what
     * lets their peers write). */
    const char *argv[] = { t_helper("fs_load"), "pipes", dir, "200", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 10000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d (stuck behind a pipe?) stderr [%s]", rc, err);
    cr_assert_str_eq(out, "file_ops 200\n");
    free(out);
    free(err);
}

Test(fs_process, stats_count_operations_waits_and_tokens, .timeout = 30)
{
    char stats[128], assign[160];
    snprintf(stats, sizeof stats, "%s/stats.prom", dir);
    snprintf(assign, sizeof assign, "SLUICE_STATS=%s", stats);
    const char *argv[] = { t_helper("fs_load"), "threads", dir, "8", "300", "262144", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", assign, NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 20000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d stderr [%s]", rc, err);
    free(out);
    free(err);
    FILE *f = fopen(stats, "r");
    cr_assert_not_null(f, "no stats file");
    char line[512];
    long long ops = -1, waits = -1, in_use = -1, limit = -1;
    double wait_s = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        sscanf(line, "sluice_fs_operations_total %lld", &ops);
        sscanf(line, "sluice_fs_waits_total %lld", &waits);
        sscanf(line, "sluice_fs_wait_seconds_total %lf", &wait_s);
        sscanf(line, "sluice_fs_tokens_in_use %lld", &in_use);
        sscanf(line, "sluice_fs_tokens_limit %lld", &limit);
    }
    fclose(f);
    /* 8 threads x 300 x (pwrite + pread), 8 opens; the stats writer's own I/O is not gated. */
    cr_assert_geq(ops, 8 * 300 * 2 + 8, "ops %lld", ops);
    cr_assert_gt(waits, 0, "8 threads on one token never waited?");
    cr_assert_gt(wait_s, 0.0);
    cr_assert_eq(in_use, 0);
    cr_assert_eq(limit, 1);
}

Test(fs_process, a_thread_holding_a_stdio_stream_and_one_waiting_for_it_do_not_deadlock,
     .timeout = 30)
{
    /* One thread holds the stream (flockfile) across fputs+fflush; the other
     * writes it plainly. Taking the token before the stream's lock deadlocks
     * this with one token. */
    const char *argv[] = { t_helper("fs_load"), "stdio", dir, "20000", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    for (int round = 0; round < 3; round++) {
        char *out = NULL, *err = NULL;
        int rc = t_run(argv, env, true, 10000, &out, &err);
        cr_assert_eq(rc, 0, "round %d: exit %d (deadlocked?) [%s]", round, rc, err);
        cr_assert_str_eq(out, "stdio done\n");
        free(out);
        free(err);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(wc -l < %s/stream) -eq 40000", dir);
    cr_assert_eq(system(cmd), 0, "lines lost or doubled");
}

/* Calls on files under dir/ seen by the kernel (strace, tracer bare, tracee with
 * the library and env): openat, read, write. */
static int kernel_file_calls(const char *const *argv, const char *const *env)
{
    char trace[128], arg_preload[4200], under[96];
    snprintf(trace, sizeof trace, "%s.ktrace", dir);
    snprintf(under, sizeof under, "<%s/", dir);
    snprintf(arg_preload, sizeof arg_preload, "LD_PRELOAD=%s", t_preload());
    const char *cmd[32];
    int n = 0;
    cmd[n++] = "strace";
    cmd[n++] = "-E";
    cmd[n++] = arg_preload;
    for (int i = 0; env[i] != NULL; i++) {
        cmd[n++] = "-E";
        cmd[n++] = env[i];
    }
    const char *fixed[] = { "-f", "-y", "-e", "trace=openat,read,write", "-o", trace, NULL };
    for (int i = 0; fixed[i] != NULL; i++)
        cmd[n++] = fixed[i];
    for (int i = 0; argv[i] != NULL && n < 31; i++)
        cmd[n++] = argv[i];
    cmd[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = t_run(cmd, NULL, false, 60000, &out, &err);
    cr_assert_eq(rc, 0, "traced run failed (%d): %s", rc, err);
    free(out);
    free(err);
    FILE *f = fopen(trace, "r");
    cr_assert_not_null(f);
    char line[8192];
    int calls = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, under) != NULL && strstr(line, "resumed>") == NULL)
            calls++;
    fclose(f);
    unlink(trace);
    return calls;
}

Test(fs_process, stdio_takes_a_token_only_for_calls_that_reach_the_kernel, .timeout = 60)
{
    char stats[128], assign[160];
    snprintf(stats, sizeof stats, "%s.stats.prom", dir);
    snprintf(assign, sizeof assign, "SLUICE_STATS=%s", stats);
    const char *argv[] = { t_helper("fs_stdio"), dir, "20000", NULL };
    const char *env[] = { "SLUICE_FS_MAX=1000", assign, NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 30000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d stderr [%s]", rc, err);
    cr_assert_str_eq(out, "stdio 20000 208890\n");
    free(out);
    free(err);
    FILE *f = fopen(stats, "r");
    cr_assert_not_null(f, "no stats file");
    char line[512];
    long long ops = -1;
    while (fgets(line, sizeof line, f) != NULL)
        sscanf(line, "sluice_fs_operations_total %lld", &ops);
    fclose(f);
    unlink(stats);
    const char *kenv[] = { "SLUICE_FS_MAX=1000", NULL };
    int kernel = kernel_file_calls(argv, kenv);
    /* About 50 writes and 50 reads of 4 KiB each way, the line-buffered
     * stream's 200 lines, the seeks' refills: a few hundred, not the 100,000
     * buffered calls the program made. */
    cr_assert_gt(kernel, 200, "kernel calls %d", kernel);
    cr_assert(ops >= kernel * 9 / 10 && ops <= kernel * 11 / 10,
              "counted %lld operations, the kernel saw %d file calls", ops, kernel);
}

/* A refused token does not stop fclose (it closes ungated), and a close that
 * succeeds leaves errno alone: no EAGAIN left behind by the refusal. */
Test(fs_process, fclose_refused_a_token_still_closes_and_leaves_errno_alone, .timeout = 30)
{
    const char *argv[] = { t_helper("fs_fclose"), dir, NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_TIMEOUT=20ms", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 20000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d [%s] [%s]", rc, out, err);
    cr_assert_str_eq(out, "fclose 0 errno 0\n", "[%s]", err);
    free(out);
    free(err);
}
