/* test_fs_host.c — the filesystem semaphore in host scope, with real tools:
 * xargs -P8 gzip and make -j8 of dd under one key never have more than N file
 * calls in flight across processes (strace -f on the whole tree); processes
 * SIGKILLed mid-write do not leak the budget; pipes do not hold it; a foreign or
 * damaged state file is refused with one line and the program runs on. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fshost.h"
#include "testlib.h"

int fs_overlap(const char *const *argv, const char *const *env, const char *under, int *calls,
               int *streak);

static char dir[64], key[64], key_assign[96], state[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-fsh-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    /* A key of our own: the budget is shared by everything that names it. */
    snprintf(key, sizeof key, "test-%d-%s", (int) getpid(), strrchr(dir, '-') + 1);
    snprintf(key_assign, sizeof key_assign, "SLUICE_FS_KEY=%s", key);
    snprintf(state, sizeof state, FSHOST_DIR_FMT "/" FSHOST_FILE_FMT, (unsigned) getuid(), key);
    unlink(state);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    unlink(state);
}

TestSuite(fs_host, .init = setup, .fini = teardown);

static void shell(const char *fmt, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Sixteen 1.3 MB text files in DIR/in. */
static void make_inputs(void)
{
    shell("mkdir -p %s/in %s/out && for i in $(seq 1 16); do "
          "head -c 1000000 /dev/urandom | base64 > %s/in/f$i; done", dir);
}

/* The state's in_use field, read from outside; -1 if there is no state. */
static long tokens_in_use(void)
{
    int fd = open(state, O_RDONLY);
    if (fd < 0)
        return -1;
    struct fshost_state s;
    ssize_t n = pread(fd, &s, sizeof s, 0);
    close(fd);
    return n == (ssize_t) sizeof s ? (long) HOST_LOW(s.count) : -1;
}

Test(fs_host, xargs_gzip_stays_within_the_budget_across_processes, .timeout = 90)
{
    make_inputs();
    char script[512], under[96];
    snprintf(script, sizeof script, "cd %s/in && ls | grep -v gz | xargs -P8 -n1 gzip -n -k -f", dir);
    snprintf(under, sizeof under, "%s/in/", dir);
    const char *argv[] = { "/bin/sh", "-c", script, NULL };
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    int calls = 0;
    int gated = fs_overlap(argv, env, under, &calls, NULL);
    cr_assert_gt(calls, 16 * 20, "only %d file calls seen", calls);
    cr_assert_leq(gated, 2, "host budget 2, yet %d file calls overlapped across processes", gated);
    shell("cd %s/in && md5sum *.gz > ../gated.md5 && rm -f *.gz", dir);
    int bare = fs_overlap(argv, NULL, under, &calls, NULL);
    cr_assert_gt(bare, 2, "bare run overlapped only %d: the measure cannot tell", bare);
    shell("cd %s/in && md5sum *.gz > ../bare.md5 && cmp ../bare.md5 ../gated.md5", dir);
    fprintf(stderr, "fs_host: xargs -P8 gzip, max overlapping file calls: bare %d, host budget 2: %d\n",
            bare, gated);
}

Test(fs_host, make_j8_of_dd_stays_within_the_budget_across_processes, .timeout = 90)
{
    make_inputs();
    shell("cd %s && { printf 'all:'; for i in $(seq 1 16); do printf ' out/f%%s' $i; done; echo; "
          "printf 'out/%%%%: in/%%%%\\n\\tdd if=$< of=$@ bs=4k status=none\\n'; } > Makefile", dir);
    char under[96];
    snprintf(under, sizeof under, "%s/", dir);
    const char *argv[] = { "make", "-s", "-j8", "-C", dir, NULL };
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    int calls = 0;
    int gated = fs_overlap(argv, env, under, &calls, NULL);
    cr_assert_gt(calls, 16 * 100, "only %d file calls seen", calls);
    cr_assert_leq(gated, 2, "host budget 2, yet %d file calls overlapped across processes", gated);
    shell("cd %s && for i in $(seq 1 16); do cmp in/f$i out/f$i || exit 1; done && rm -f out/*", dir);
    int bare = fs_overlap(argv, NULL, under, &calls, NULL);
    cr_assert_gt(bare, 2, "bare run overlapped only %d: the measure cannot tell", bare);
    shell("cd %s && for i in $(seq 1 16); do cmp in/f$i out/f$i || exit 1; done", dir);
    fprintf(stderr, "fs_host: make -j8 of dd, max overlapping file calls: bare %d, host budget 2: %d\n",
            bare, gated);
}

Test(fs_host, processes_killed_mid_write_do_not_leak_the_budget, .timeout = 60)
{
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *argv[] = { t_helper("fs_load"), "hold", dir, "3000", NULL };
    int leaked_rounds = 0;
    for (int round = 0; round < 12; round++) {
        struct t_proc p[4];
        for (int i = 0; i < 4; i++)
            p[i] = t_spawn(argv, env, true);
        t_sleep_ms(60 + 15 * round);
        for (int i = 0; i < 4; i++)
            kill(p[i].pid, SIGKILL);
        for (int i = 0; i < 4; i++) {
            t_wait(&p[i], 5000);
            close(p[i].out_fd);
            close(p[i].err_fd);
        }
        leaked_rounds += tokens_in_use() > 0;
    }
    /* The kills must have landed mid-write, or this proves nothing. */
    cr_assert_gt(leaked_rounds, 0, "no kill ever left a token held");
    /* A newcomer reclaims them: no EAGAIN within a 1 s timeout, promptly. */
    const char *probe_env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign,
                                "SLUICE_FS_TIMEOUT=1s", NULL };
    const char *probe[] = { t_helper("fs_load"), "ops", dir, "100", NULL };
    uint64_t t0 = t_now_ms();
    char *out = NULL, *err = NULL;
    int rc = t_run(probe, probe_env, true, 10000, &out, &err);
    uint64_t took = t_now_ms() - t0;
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "eagain 0\n", "the budget did not recover: %s", out);
    cr_assert_lt(took, 2000, "recovery took %llu ms", (unsigned long long) took);
    cr_assert_eq(tokens_in_use(), 0, "tokens still counted as held after the probe");
    fprintf(stderr, "fs_host: %d of 12 kill rounds left tokens held; recovered in %llu ms\n",
            leaked_rounds, (unsigned long long) took);
    free(out);
    free(err);
}

Test(fs_host, a_waiting_process_reclaims_tokens_of_holders_killed_meanwhile, .timeout = 30)
{
    /* Two holders stopped (SIGSTOP lands as a write returns: tokens held), a
     * probe queued behind them; then the holders are SIGKILLed. The probe,
     * already waiting, must find out and go on. */
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *hold[] = { t_helper("fs_load"), "hold", dir, "10000", "64", NULL };
    struct t_proc h[2] = { t_spawn(hold, env, true), t_spawn(hold, env, true) };
    int stopped_holding = 0;
    for (int attempt = 0; attempt < 100 && !stopped_holding; attempt++) {
        t_sleep_ms(50);
        for (int i = 0; i < 2; i++)
            kill(h[i].pid, SIGSTOP);
        t_sleep_ms(30);
        stopped_holding = tokens_in_use() == 2;
        if (!stopped_holding)
            for (int i = 0; i < 2; i++)
                kill(h[i].pid, SIGCONT);
    }
    cr_assert(stopped_holding, "never caught both holders holding a token");
    const char *probe[] = { t_helper("fs_load"), "ops", dir, "50", NULL };
    struct t_proc p = t_spawn(probe, env, true);
    t_sleep_ms(500);
    cr_assert_eq(waitpid(p.pid, NULL, WNOHANG), 0, "the probe did not wait for stopped holders");
    for (int i = 0; i < 2; i++)
        kill(h[i].pid, SIGKILL);
    for (int i = 0; i < 2; i++) {
        t_wait(&h[i], 5000);
        close(h[i].out_fd);
        close(h[i].err_fd);
    }
    uint64_t t0 = t_now_ms();
    int rc = t_wait(&p, 5000);
    uint64_t took = t_now_ms() - t0;
    char *out = t_slurp(p.out_fd, 1000), *err = t_slurp(p.err_fd, 1000);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the probe never got a token (rc %d)", rc);
    cr_assert_str_eq(out, "eagain 0\n");
    cr_assert_str_empty(err);
    cr_assert_lt(took, 1000, "reclaiming took %llu ms", (unsigned long long) took);
    /* A holder that died after the probe's last look is reclaimed by the next
     * process to arrive (or the next waiter): nothing stays counted. */
    const char *again[] = { t_helper("fs_load"), "ops", dir, "1", NULL };
    char *o2 = NULL, *e2 = NULL;
    cr_assert_eq(t_run(again, env, true, 5000, &o2, &e2), 0);
    cr_assert_eq(tokens_in_use(), 0);
    free(o2);
    free(e2);
    free(err);
    fprintf(stderr, "fs_host: a waiter reclaimed the tokens of killed holders in %llu ms\n",
            (unsigned long long) took);
    free(out);
}

static bool waiting_not_holding(pid_t pid)
{
    int fd = open(state, O_RDONLY);
    struct fshost_state s;
    bool ok = fd >= 0 && pread(fd, &s, sizeof s, 0) == (ssize_t) sizeof s;
    if (fd >= 0)
        close(fd);
    if (!ok)
        return false;
    bool waiting = false;
    for (int i = 0; i < FSHOST_NWAITING; i++)
        waiting |= s.waiting[i].pid == pid;
    for (int i = 0; i < FSHOST_NHOLDERS; i++)
        if (s.holders[i].pid == pid && HOST_LOW(s.holders[i].word) != 0)
            return false;
    return waiting;
}

Test(fs_host, a_stopped_waiter_does_not_hold_up_the_line, .timeout = 60)
{
    /* One token, kept busy by a writer; a second process queued for it is
     * stopped (^Z) while waiting. A third must still get its turns. */
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *hold[] = { t_helper("fs_load"), "hold", dir, "6000", "64", NULL };
    const char *queued[] = { t_helper("fs_load"), "ops", dir, "100000", NULL };
    struct t_proc h = t_spawn(hold, env, true);
    t_sleep_ms(200);
    struct t_proc q = t_spawn(queued, env, true);
    bool caught = false;
    for (int attempt = 0; attempt < 100 && !caught; attempt++) {
        t_sleep_ms(40);
        kill(q.pid, SIGSTOP);
        t_sleep_ms(20);
        caught = waiting_not_holding(q.pid);
        if (!caught)
            kill(q.pid, SIGCONT);
    }
    cr_assert(caught, "never caught the queued process stopped while waiting");
    const char *probe_env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign,
                                "SLUICE_FS_TIMEOUT=3s", NULL };
    const char *probe[] = { t_helper("fs_load"), "ops", dir, "30", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(probe, probe_env, true, 20000, &out, &err);
    kill(q.pid, SIGKILL);
    t_wait(&q, 5000);
    close(q.out_fd);
    close(q.err_fd);
    t_stop(&h, 1000);
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "eagain 0\n", "stuck behind a stopped waiter: [%s]", err);
    free(out);
    free(err);
}

Test(fs_host, exec_while_another_thread_writes_does_not_keep_its_token, .timeout = 30)
{
    /* Same pid, same start time after exec: the record must not outlive the
     * image that held the token. */
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign,
                          "SLUICE_FS_TIMEOUT=1s", NULL };
    const char *argv[] = { t_helper("fs_load"), "exec", dir, "50", NULL };
    for (int round = 0; round < 3; round++) {
        char *out = NULL, *err = NULL;
        int rc = t_run(argv, env, true, 20000, &out, &err);
        cr_assert_eq(rc, 0, "[%s]", err);
        cr_assert_str_eq(out, "eagain 0\n", "round %d: [%s]", round, err);
        cr_assert_eq(tokens_in_use(), 0);
        free(out);
        free(err);
    }
}

Test(fs_host, a_process_blocked_on_a_pipe_holds_no_token, .timeout = 30)
{
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    /* cat waits 3 s on its pipe; other processes' file I/O goes on meanwhile. */
    const char *blocked[] = { "/bin/sh", "-c", "sleep 3 | cat", NULL };
    struct t_proc b = t_spawn(blocked, env, true);
    t_sleep_ms(300);
    const char *probe_env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign,
                                "SLUICE_FS_TIMEOUT=1s", NULL };
    const char *probe[] = { t_helper("fs_load"), "ops", dir, "100", NULL };
    uint64_t t0 = t_now_ms();
    char *out = NULL, *err = NULL;
    int rc = t_run(probe, probe_env, true, 10000, &out, &err);
    uint64_t took = t_now_ms() - t0;
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "eagain 0\n");
    cr_assert_lt(took, 2500, "file I/O waited %llu ms behind a pipe read", (unsigned long long) took);
    cr_assert_eq(t_wait(&b, 10000), 0);
    free(out);
    free(err);
    /* Pipes, sockets and FIFOs inside one process, under the host budget. */
    const char *pipes[] = { t_helper("fs_load"), "pipes", dir, "200", NULL };
    rc = t_run(pipes, env, true, 10000, &out, &err);
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "file_ops 200\n");
    free(out);
    free(err);
}

Test(fs_host, timeout_applies_across_processes, .timeout = 30)
{
    /* The probe opens its file first, then works while two other processes keep
     * the one token busy with 64 MiB writes. */
    const char *probe_env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign,
                                "SLUICE_FS_TIMEOUT=1ms", NULL };
    const char *probe[] = { t_helper("fs_load"), "ops", dir, "100", "400", NULL };
    struct t_proc p = t_spawn(probe, probe_env, true);
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *hold[] = { t_helper("fs_load"), "hold", dir, "1500", "64", NULL };
    /* Two of them, so that one is always queued for the token the other holds. */
    struct t_proc h = t_spawn(hold, env, true), h2 = t_spawn(hold, env, true);
    int rc = t_wait(&p, 10000);
    char *out = t_slurp(p.out_fd, 1000), *err = t_slurp(p.err_fd, 1000);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "[%s]", err);
    int eagain = -1;
    cr_assert_eq(sscanf(out, "eagain %d", &eagain), 1, "[%s]", out);
    cr_assert_gt(eagain, 0, "never timed out behind another process's 64 MiB writes");
    cr_assert(strstr(err, "SLUICE_FS_TIMEOUT") != NULL && strchr(err, '\n') == strrchr(err, '\n'),
              "want one line: [%s]", err);
    rc = t_wait(&h, 10000);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    rc = t_wait(&h2, 10000);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    free(out);
    free(err);
}

Test(fs_host, fork_during_io_and_the_state_files_protection, .timeout = 60)
{
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *argv[] = { t_helper("fs_load"), "fork", dir, "20", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 40000, &out, &err);
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "forks_ok 20 stuck 0\n");
    cr_assert_str_empty(err);
    free(out);
    free(err);
    struct stat sb;
    cr_assert_eq(lstat(state, &sb), 0, "no state file %s", state);
    cr_assert(S_ISREG(sb.st_mode));
    cr_assert_eq(sb.st_mode & 07777, 0600);
    cr_assert_eq(sb.st_uid, getuid());
    cr_assert_eq(tokens_in_use(), 0);
}

/* Each damaged or foreign state: one line naming the problem, the program runs
 * on (ungated) and its output is intact, quickly. */
static void expect_refused(const char *setup_cmd, const char *reason)
{
    unlink(state);
    cr_assert_eq(system(setup_cmd), 0, "%s", setup_cmd);
    char script[256];
    snprintf(script, sizeof script, "echo ran > %s/x && cat %s/x", dir, dir);
    const char *argv[] = { "/bin/sh", "-c", script, NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    char *out = NULL, *err = NULL;
    uint64_t t0 = t_now_ms();
    int rc = t_run(argv, env, true, 10000, &out, &err);
    cr_assert_eq(rc, 0, "%s: exit %d [%s]", reason, rc, err);
    cr_assert_lt(t_now_ms() - t0, 3000);
    cr_assert_str_eq(out, "ran\n");
    /* sh and cat each say it once. */
    int lines = 0;
    for (const char *s = err; *s; s++)
        lines += *s == '\n';
    cr_assert_eq(lines, 2, "%s: [%s]", reason, err);
    cr_assert(strstr(err, "SLUICE_FS_SCOPE=host") != NULL, "%s: [%s]", reason, err);
    cr_assert(strstr(err, reason) != NULL, "want '%s' in [%s]", reason, err);
    free(out);
    free(err);
}

Test(fs_host, foreign_or_damaged_state_files_are_refused_with_one_line, .timeout = 60)
{
    char cmd[600];
    size_t size = sizeof(struct fshost_state);
    snprintf(cmd, sizeof cmd, "touch %s/elsewhere && ln -s %s/elsewhere %s", dir, dir, state);
    expect_refused(cmd, "symbolic link");
    snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero > %s && chmod 0644 %s", size, state, state);
    expect_refused(cmd, "mode");
    /* Right size and mode, owned by someone else: needs root to arrange. */
    if (getuid() == 0) {
        snprintf(cmd, sizeof cmd, "head -c %zu /dev/zero > %s && chmod 0600 %s && chown 65534 %s",
                 size, state, state, state);
        expect_refused(cmd, "another user");
    }
    snprintf(cmd, sizeof cmd, "head -c 100 /dev/urandom > %s && chmod 0600 %s", state, state);
    expect_refused(cmd, "wrong size");
    snprintf(cmd, sizeof cmd, "head -c %zu /dev/urandom > %s && chmod 0600 %s", size, state, state);
    expect_refused(cmd, "bad header");
    unlink(state);
}

static int count_lines(const char *s)
{
    int lines = 0;
    for (; *s; s++)
        lines += *s == '\n';
    return lines;
}

/* Whether this process may make a mount namespace and mount in it (root, and
 * not a container that forbids it). */
static bool can_mount_privately(void)
{
    return getuid() == 0
           && system("unshare --mount --propagation private sh -c "
                     "'mount -t tmpfs -o size=4k tmpfs /mnt' >/dev/null 2>&1") == 0;
}

/* In a mount namespace of its own (root only), /dev/shm is a 64 KiB tmpfs that
 * a file has filled: no room for the state's pages. cat must run and say so
 * once; it used to die of SIGBUS (exit 135) writing the state's header. */
Test(fs_host, a_full_dev_shm_is_refused_with_one_line, .timeout = 30)
{
    if (!can_mount_privately())
        cr_skip_test("needs root and mount namespaces (tmpfs)");
    char script[2048];
    snprintf(script, sizeof script,
             "mount -t tmpfs -o size=64k tmpfs /dev/shm || exit 90; "
             "head -c 1M /dev/zero > /dev/shm/fill 2>/dev/null; "
             "echo data > %s/in; "
             "env LD_PRELOAD=%s SLUICE_FS_MAX=1 SLUICE_FS_SCOPE=host %s cat %s/in",
             dir, t_preload(), key_assign, dir);
    const char *argv[] = { "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, NULL, false, 20000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d (135: SIGBUS) [%s]", rc, err);
    cr_assert_str_eq(out, "data\n");
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, "SLUICE_FS_SCOPE=host") != NULL && strstr(err, "full") != NULL, "[%s]", err);
    free(out);
    free(err);
}

/* A same-user process truncates the state file under a running member: the
 * member must keep running (once: SIGBUS, exit 135) and say so once. */
Test(fs_host, a_member_survives_the_state_file_being_truncated, .timeout = 30)
{
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *argv[] = { t_helper("fs_load"), "hold", dir, "1500", "1", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    struct stat sb;
    uint64_t t0 = t_now_ms();
    while (stat(state, &sb) != 0 && t_now_ms() - t0 < 5000)
        t_sleep_ms(10);
    t_sleep_ms(300);
    cr_assert_eq(truncate(state, 0), 0, "truncate %s", state);
    int rc = t_wait(&p, 10000);
    char *out = t_slurp(p.out_fd, 1000), *err = t_slurp(p.err_fd, 1000);
    close(p.out_fd);
    close(p.err_fd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "status %#x (SIGBUS kills with 135) [%s]", rc, err);
    cr_assert_str_eq(out, "held\n");
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, "shrank") != NULL, "[%s]", err);
    free(out);
    free(err);
    unlink(state);
}

/* Another user (root only: nobody) tries to plant the key's file, at the
 * name sluice used to use and inside the user's directory: neither may turn
 * our gate off. */
Test(fs_host, another_user_cannot_plant_the_keys_file, .timeout = 30)
{
    if (getuid() != 0)
        cr_skip_test("needs root (to act as another user)");
    char script[512], legacy[160];
    snprintf(script, sizeof script, "echo ran > %s/x && cat %s/x", dir, dir);
    const char *run[] = { "/bin/sh", "-c", script, NULL };
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(run, env, true, 10000, &out, &err), 0, "[%s]", err);
    free(out);
    free(err);
    snprintf(legacy, sizeof legacy, "/dev/shm/sluice-fs-%u-%s", (unsigned) getuid(), key);
    unlink(state);
    unlink(legacy);
    char plant[1024];
    snprintf(plant, sizeof plant,
             "setpriv --reuid 65534 --regid 65534 --clear-groups /bin/sh -c "
             "'touch %s; touch %s' 2>/dev/null; exit 0", legacy, state);
    cr_assert_eq(system(plant), 0);
    out = err = NULL;
    int rc = t_run(run, env, true, 10000, &out, &err);
    unlink(legacy);
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "ran\n");
    cr_assert_str_empty(err, "the gate was turned off: [%s]", err);
    struct stat sb;
    cr_assert_eq(lstat(state, &sb), 0, "no state at %s", state);
    cr_assert_eq(sb.st_uid, getuid());
    char dirpath[64];
    snprintf(dirpath, sizeof dirpath, FSHOST_DIR_FMT, (unsigned) getuid());
    cr_assert_eq(lstat(dirpath, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode) && (sb.st_mode & 07777) == 0700 && sb.st_uid == getuid(),
              "directory mode %o uid %u", sb.st_mode, (unsigned) sb.st_uid);
    free(out);
    free(err);
}

/* /proc mounted with hidepid=2 (in a mount namespace of its own; root only, to
 * arrange it): a member of user nobody finds a record whose pid now belongs to
 * a root process (a recycled pid) holding the whole budget. It can neither
 * signal that process (EPERM) nor read its start time: the tokens must come
 * back, not stay held for as long as the root process lives. */
Test(fs_host, a_recycled_pid_of_another_user_keeps_no_token_under_hidepid, .timeout = 30)
{
    if (!can_mount_privately())
        cr_skip_test("needs root and mount namespaces (/proc with hidepid)");
    cr_assert_eq(chmod(dir, 0777), 0);
    const char *sleeper[] = { "sleep", "30", NULL };
    struct t_proc root_proc = t_spawn(sleeper, NULL, false);
    char nobody_state[160], script[2048];
    snprintf(nobody_state, sizeof nobody_state, FSHOST_DIR_FMT "/" FSHOST_FILE_FMT, 65534u, key);
    const char *as_nobody = "setpriv --reuid 65534 --regid 65534 --clear-groups";
    /* The state, made by a member of nobody's. */
    snprintf(script, sizeof script,
             "%s env LD_PRELOAD=%s SLUICE_FS_MAX=1 SLUICE_FS_SCOPE=host %s %s ops %s 1 >/dev/null",
             as_nobody, t_preload(), key_assign, t_helper("fs_load"), dir);
    cr_assert_eq(system(script), 0, "%s", script);
    /* Forge the record: the root process holds the one token, started "long ago". */
    int fd = open(nobody_state, O_RDWR);
    cr_assert_geq(fd, 0, "%s", nobody_state);
    struct fshost_state *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(s, MAP_FAILED);
    int slot = -1;
    for (int i = 0; i < FSHOST_NHOLDERS && slot < 0; i++)
        if (atomic_load(&s->holders[i].pid) == 0)
            slot = i;
    cr_assert_geq(slot, 0);
    s->holders[slot].start = 1;
    atomic_store(&s->holders[slot].word, 1);
    atomic_store(&s->holders[slot].pid, root_proc.pid);
    atomic_store(&s->count, 1);
    munmap(s, sizeof *s);

    snprintf(script, sizeof script,
             "mount -t proc -o hidepid=2 proc /proc || exit 90; "
             "%s env LD_PRELOAD=%s SLUICE_FS_MAX=1 SLUICE_FS_SCOPE=host SLUICE_FS_TIMEOUT=2s %s "
             "%s ops %s 3",
             as_nobody, t_preload(), key_assign, t_helper("fs_load"), dir);
    const char *argv[] = { "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, NULL, false, 20000, &out, &err);
    kill(root_proc.pid, SIGKILL);
    t_wait(&root_proc, 5000);
    unlink(nobody_state);
    *strrchr(nobody_state, '/') = '\0';
    rmdir(nobody_state);   /* if nothing else is in it */
    cr_assert_eq(rc, 0, "exit %d [%s]", rc, err);
    cr_assert_str_eq(out, "eagain 0\n", "the recycled pid kept the token: %s [%s]", out, err);
    free(out);
    free(err);
}

/* A process killed between its two updates (its record says a thread was
 * inside, so its share of the count is ambiguous by one): the recount gives
 * the budget back whole. Forged: a dead pid's record "inside" with one token,
 * the count at the limit. */
Test(fs_host, a_holder_killed_between_its_two_updates_is_recounted, .timeout = 30)
{
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key_assign,
                          "SLUICE_FS_TIMEOUT=1s", NULL };
    const char *make_state[] = { t_helper("fs_load"), "ops", dir, "1", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(make_state, env, true, 10000, &out, &err), 0, "[%s]", err);
    free(out);
    free(err);
    const char *truth[] = { "true", NULL };
    struct t_proc gone = t_spawn(truth, NULL, false);
    t_wait(&gone, 5000);
    int fd = open(state, O_RDWR);
    cr_assert_geq(fd, 0);
    struct fshost_state *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(s, MAP_FAILED);
    int slot = -1;
    for (int i = 0; i < FSHOST_NHOLDERS && slot < 0; i++)
        if (atomic_load(&s->holders[i].pid) == 0)
            slot = i;
    cr_assert_geq(slot, 0);
    s->holders[slot].start = 0;
    atomic_store(&s->holders[slot].word, HOST_HIGH_ONE + 1);
    atomic_store(&s->holders[slot].pid, gone.pid);
    atomic_store(&s->count, 1);
    const char *probe[] = { t_helper("fs_load"), "ops", dir, "20", NULL };
    out = err = NULL;
    int rc = t_run(probe, env, true, 10000, &out, &err);
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "eagain 0\n", "the budget stayed taken [%s]", err);
    cr_assert_eq(HOST_LOW(atomic_load(&s->count)), 0);
    cr_assert_eq(atomic_load(&s->holders[slot].pid), 0, "the dead record was kept");
    cr_assert_eq(atomic_load(&s->recount), 0);
    munmap(s, sizeof *s);
    free(out);
    free(err);
}

/* sluice's SIGBUS handler (for its own mapping) must not swallow a SIGBUS that
 * someone sends: the program still dies of it. */
Test(fs_host, a_sigbus_sent_to_a_member_still_ends_it, .timeout = 30)
{
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", key_assign, NULL };
    const char *argv[] = { "sleep", "5", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    struct stat sb;
    uint64_t t0 = t_now_ms();
    while (stat(state, &sb) != 0 && t_now_ms() - t0 < 5000)
        t_sleep_ms(10);
    t_sleep_ms(100);
    kill(p.pid, SIGBUS);
    int rc = t_wait(&p, 4000);
    close(p.out_fd);
    close(p.err_fd);
    cr_assert(WIFSIGNALED(rc) && WTERMSIG(rc) == SIGBUS, "status %#x", rc);
}
