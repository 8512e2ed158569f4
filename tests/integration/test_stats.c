/* test_stats.c — SLUICE_STATS: Prometheus text, rewritten atomically every
 * SLUICE_STATS_INTERVAL and at exit, %p as the pid, never through a planted
 * symlink, what a forked or exec'd child does (writes only with %p in the path),
 * and the file across credential drops (nginx, apache, a helper), faults and kills. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-stats-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? st.st_ino : 0;
}

static bool wait_for_file(const char *path, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (t_now_ms() < end) {
        if (access(path, F_OK) == 0)
            return true;
        t_sleep_ms(10);
    }
    return false;
}

/* Reads one line from fd (bounded wait). */
static bool read_line(int fd, char *line, size_t cap, int timeout_ms)
{
    size_t len = 0;
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (len + 1 < cap && t_now_ms() < end) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        if (read(fd, line + len, 1) != 1)
            break;
        if (line[len] == '\n') {
            line[len] = '\0';
            return true;
        }
        len++;
    }
    return false;
}

/* Every sample line is sluice_NAME VALUE, preceded by its HELP and TYPE. */
static void assert_prometheus_text(const char *text)
{
    cr_assert_not_null(text);
    int samples = 0;
    char last_help[128] = "", last_type[128] = "";
    char *copy = strdup(text);
    /* The first line names the file's writer (a comment to Prometheus). */
    int writer = 0;
    unsigned long long start = 0;
    cr_assert_eq(sscanf(text, "# sluice: written by pid %d (start time %llu)", &writer, &start), 2,
                 "no writer line: [%.80s]", text);
    for (char *line = strtok(strchr(copy, '\n'), "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char name[128], kind[32];
        double value;
        if (sscanf(line, "# HELP %127s", name) == 1) {
            snprintf(last_help, sizeof last_help, "%s", name);
            continue;
        }
        if (sscanf(line, "# TYPE %127s %31s", name, kind) == 2) {
            cr_assert_str_eq(name, last_help, "TYPE without HELP: %s", line);
            cr_assert(strcmp(kind, "counter") == 0 || strcmp(kind, "gauge") == 0, "%s", line);
            if (strcmp(kind, "counter") == 0)
                cr_assert(strstr(name, "_total") != NULL, "counter without _total: %s", name);
            snprintf(last_type, sizeof last_type, "%s", name);
            continue;
        }
        cr_assert_eq(sscanf(line, "%127s %lf", name, &value), 2, "not a sample: [%s]", line);
        cr_assert(strncmp(name, "sluice_", 7) == 0, "no sluice_ prefix: %s", name);
        cr_assert_str_eq(name, last_type, "sample without TYPE: %s", line);
        samples++;
    }
    free(copy);
    cr_assert_geq(samples, 12, "only %d samples", samples);
    const char *required[] = {
        "sluice_connections_in_flight ", "sluice_connections_limit ", "sluice_accepted_total ",
        "sluice_shed_total ", "sluice_pauses_total ", "sluice_paused_seconds_total ",
        "sluice_write_waits_total ", "sluice_write_wait_seconds_total ",
        "sluice_held_reads_total ", "sluice_fs_operations_total ", "sluice_fs_waits_total ",
        "sluice_fs_wait_seconds_total ",
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        cr_assert(strstr(text, required[i]) != NULL, "%s missing", required[i]);
}

Test(stats, prometheus_text_rewritten_every_interval, .init = make_dir, .fini = remove_dir)
{
    char path[128], var[160];
    snprintf(path, sizeof path, "%s/sluice.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *argv[] = { "/bin/sleep", "1.2", NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=100ms", "SLUICE_CONN_MAX=17",
                          "SLUICE_FS_MAX=9", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    cr_assert(wait_for_file(path, 2000), "no stats file");
    /* Each rewrite is a rename of a fresh file: a new inode every interval. */
    ino_t seen[64];
    int distinct = 0;
    for (int i = 0; i < 16; i++) {
        ino_t ino = inode_of(path);
        if (ino != 0 && (distinct == 0 || seen[distinct - 1] != ino) && distinct < 64)
            seen[distinct++] = ino;
        t_sleep_ms(50);
    }
    char *text = read_text(path);
    assert_prometheus_text(text);
    cr_assert(strstr(text, "\nsluice_connections_limit 17\n") != NULL, "[%s]", text);
    cr_assert(strstr(text, "\nsluice_fs_tokens_limit 9\n") != NULL, "[%s]", text);
    free(text);
    cr_assert_eq(t_wait(&p, 5000), 0);
    t_stop(&p, 100);
    cr_assert_geq(distinct, 4, "file rewritten %d times in 800 ms at a 100 ms interval", distinct);
    /* Only the file itself is left: no temp files. */
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof cmd, "ls -A %s", dir);
    const char *ls[] = { "/bin/sh", "-c", cmd, NULL };
    t_run(ls, NULL, false, 5000, &out, NULL);
    cr_assert_str_eq(out, "sluice.prom\n");
    free(out);
}

/* With a long interval, the only writes are the first one and the one at exit. */
Test(stats, written_at_exit, .init = make_dir, .fini = remove_dir)
{
    char path[128], var[160];
    snprintf(path, sizeof path, "%s/exit.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *argv[] = { "/bin/sleep", "0.6", NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=1m", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    cr_assert(wait_for_file(path, 2000), "no stats file");
    t_sleep_ms(100);
    ino_t first = inode_of(path);
    t_sleep_ms(200);
    cr_assert_eq(inode_of(path), first, "rewritten within the interval");
    cr_assert_eq(t_wait(&p, 5000), 0);
    t_stop(&p, 100);
    cr_assert_neq(inode_of(path), first, "not rewritten at exit");
    char *text = read_text(path);
    assert_prometheus_text(text);
    free(text);
}

Test(stats, percent_p_becomes_the_pid, .init = make_dir, .fini = remove_dir)
{
    char var[160], path[160];
    snprintf(var, sizeof var, "SLUICE_STATS=%s/s-%%p.prom", dir);
    const char *argv[] = { "/bin/sleep", "0.2", NULL };
    const char *env[] = { var, NULL };
    struct t_proc p = t_spawn(argv, env, true);
    pid_t pid = p.pid;
    cr_assert_eq(t_wait(&p, 5000), 0);
    t_stop(&p, 100);
    snprintf(path, sizeof path, "%s/s-%d.prom", dir, (int) pid);
    char *text = read_text(path);
    cr_assert_not_null(text, "%s not written", path);
    assert_prometheus_text(text);
    free(text);
}

/* Symlinks planted at the target and at every temp name a writer without
 * random bits would pick (its pid, a serial, the time) are never followed:
 * the targets they point at are never created, and the file is written. */
Test(stats, planted_symlinks_are_never_followed, .init = make_dir, .fini = remove_dir)
{
    char path[128], victim[128], target_victim[128];
    snprintf(path, sizeof path, "%s/planted.prom", dir);
    snprintf(victim, sizeof victim, "%s/victim-temp", dir);
    snprintf(target_victim, sizeof target_victim, "%s/victim-target", dir);

    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(99);
        char var[160];
        snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
        putenv(var);
        setenv("LD_PRELOAD", t_preload(), 1);
        execl("/bin/sleep", "sleep", "0.3", (char *) NULL);
        _exit(127);
    }
    close(go[0]);
    cr_assert_eq(symlink(target_victim, path), 0);
    time_t now = time(NULL);
    int planted = 0;
    for (time_t t = now - 2; t <= now + 5; t++) {
        for (unsigned serial = 0; serial < 16; serial++) {
            char tmp[256];
            snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int) pid, serial ^ (unsigned) t);
            planted += symlink(victim, tmp) == 0;
        }
    }
    cr_assert_geq(planted, 16);   /* serial ^ time: the 16-aligned blocks around now */
    cr_assert_eq(write(go[1], "x", 1), 1);
    close(go[1]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_neq(access(victim, F_OK), 0, "a planted temp-name symlink was followed");
    cr_assert_neq(access(target_victim, F_OK), 0, "the planted target symlink was followed");
    /* Temp names carry random bits: the planted ones did not stop the writer,
     * whose file was renamed over the planted target. */
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISREG(st.st_mode), "no stats written: every temp name was taken");
    char *text = read_text(path);
    assert_prometheus_text(text);
    free(text);

    /* Only the target planted (a fresh pid, so no temp name is taken): the new
     * file is renamed over the symlink, and what it pointed at stays absent. */
    unlink(path);
    cr_assert_eq(symlink(target_victim, path), 0);
    char var[160];
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *argv[] = { "/bin/sleep", "0.2", NULL };
    const char *env[] = { var, NULL };
    struct t_proc p = t_spawn(argv, env, true);
    cr_assert_eq(t_wait(&p, 5000), 0);
    t_stop(&p, 100);
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISREG(st.st_mode), "the target is still the planted symlink");
    cr_assert_neq(access(target_victim, F_OK), 0, "the planted target symlink was followed");
}

static void fork_linger(const char *stats_var, pid_t *parent, pid_t *child, ino_t *after_parent,
                        const char *path_of_parent)
{
    const char *argv[] = { t_helper("fwd_probe"), "fork-linger", NULL };
    const char *env[] = { stats_var, "SLUICE_STATS_INTERVAL=1m", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    char line[64];
    int a = 0, b = 0;
    cr_assert(read_line(p.out_fd, line, sizeof line, 3000) && sscanf(line, "parent %d", &a) == 1);
    cr_assert(read_line(p.out_fd, line, sizeof line, 3000) && sscanf(line, "child %d", &b) == 1);
    *parent = a;
    *child = b;
    /* The parent wrote at start and is gone (_exit: no exit write); the child
     * lives 500 ms more. */
    cr_assert_eq(t_wait(&p, 3000), 0);
    char path[256];
    snprintf(path, sizeof path, path_of_parent, a);
    *after_parent = inode_of(path);
    /* EOF on its stdout: the child has exited, and its exit write (if any) is done. */
    char *rest = t_slurp(p.out_fd, 3000);
    free(rest);
    t_stop(&p, 100);
}

/* Decision: one file shared by several processes would have them overwrite
 * each other's figures, so a forked child writes only when the path has %p. */
Test(stats, a_forked_child_writes_only_with_percent_p, .init = make_dir, .fini = remove_dir)
{
    char var[256], shared_path[160];
    pid_t parent, child;
    ino_t ino;

    snprintf(shared_path, sizeof shared_path, "%s/shared.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", shared_path);
    fork_linger(var, &parent, &child, &ino, shared_path);
    cr_assert_neq(ino, 0, "the parent did not write");
    cr_assert_eq(inode_of(shared_path), ino, "the child rewrote its parent's file");

    char template[256], parent_path[256], child_path[256];
    snprintf(template, sizeof template, "%s/own-%%d.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s/own-%%p.prom", dir);
    fork_linger(var, &parent, &child, &ino, template);
    snprintf(parent_path, sizeof parent_path, "%s/own-%d.prom", dir, (int) parent);
    snprintf(child_path, sizeof child_path, "%s/own-%d.prom", dir, (int) child);
    cr_assert_neq(inode_of(parent_path), 0, "%s missing", parent_path);
    char *text = read_text(child_path);
    cr_assert_not_null(text, "the child did not write %s", child_path);
    assert_prometheus_text(text);
    free(text);
}

/* ---- the file across credential changes, faults, exec and kills ---------- */

static long metric(const char *text, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = text != NULL ? strstr(text, key) : NULL;
    return p != NULL ? atol(p + strlen(key)) : -1;
}

/* Waits (bounded) until the file at path shows name == want; the last value. */
static long wait_metric(const char *path, const char *name, long want, int timeout_ms)
{
    long seen = -1;
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    do {
        char *text = read_text(path);
        seen = metric(text, name);
        free(text);
        if (seen == want)
            break;
        t_sleep_ms(20);
    } while (t_now_ms() < end);
    return seen;
}

static void expect_line(int fd, const char *want)
{
    char line[128];
    cr_assert(read_line(fd, line, sizeof line, 5000), "no \"%s\" from the helper", want);
    cr_assert_str_eq(line, want);
}

static void connect_and_close(int port)
{
    int fd = t_connect(port);
    cr_assert_geq(fd, 0);
    close(fd);
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; p != NULL && *p; p++)
        n += *p == '\n';
    return n;
}

/* Stops p and returns what it wrote on stderr. */
static char *stop_for_stderr(struct t_proc *p)
{
    kill(p->pid, SIGTERM);
    t_wait(p, 2000);
    char *err = t_slurp(p->err_fd, 2000);
    t_stop(p, 100);
    return err;
}

static struct t_proc start_dropper(const char *path, int port)
{
    static char var[256], port_s[16];
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *argv[] = { t_helper("stats_creds"), "drop", port_s, "65534", "65534", NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=50ms", "SLUICE_CONN_MAX=100", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    expect_line(p.out_fd, "listening");
    /* Written as root first (the drop waits for the first connection). */
    cr_assert(wait_for_file(path, 3000), "no stats file before the drop");
    connect_and_close(port);
    expect_line(p.out_fd, "dropped");
    for (int i = 0; i < 3; i++)
        connect_and_close(port);
    return p;
}

/* Written first as root, then by the same process as nobody, in a sticky
 * directory (where only a file's owner may replace it): the file was handed to
 * nobody before the drop, and keeps counting. */
Test(stats, a_process_that_drops_root_keeps_its_file_current, .init = make_dir, .fini = remove_dir)
{
    cr_assert_eq(chmod(dir, 01777), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/drop.prom", dir);
    int port = t_free_port();
    struct t_proc p = start_dropper(path, port);
    long accepted = wait_metric(path, "sluice_accepted_total", 4, 3000);
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    char *err = stop_for_stderr(&p);
    cr_assert_eq(accepted, 4, "the file stopped at %ld accepted after the drop (4 made); stderr [%s]",
                 accepted, err);
    cr_assert_eq(st.st_uid, 65534, "the file belongs to uid %u", (unsigned) st.st_uid);
    cr_assert_str_eq(err, "");
    free(err);
}

/* A directory the new uid cannot write: no atomic rewrite is possible; one
 * line names the file and says what to do, however many intervals pass. */
Test(stats, a_drop_to_a_uid_that_cannot_write_the_directory_is_said_once, .init = make_dir,
     .fini = remove_dir)
{
    cr_assert_eq(chmod(dir, 0755), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/stuck.prom", dir);
    int port = t_free_port();
    struct t_proc p = start_dropper(path, port);
    t_sleep_ms(500);   /* ten intervals */
    char *err = stop_for_stderr(&p);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, path) != NULL, "the line does not name %s: [%s]", path, err);
    cr_assert(strstr(err, "writable by uid 65534") != NULL, "no advice: [%s]", err);
    free(err);
}

/* Every file under sdir named PREFIX-PID.prom except skip's: the sum of name,
 * how many files, and how many belong to owner. */
static long sum_workers(const char *sdir, const char *prefix, pid_t skip, const char *name,
                        int *files, int *owned, uid_t owner)
{
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof cmd, "ls %s", sdir);
    const char *ls[] = { "/bin/sh", "-c", cmd, NULL };
    t_run(ls, NULL, false, 5000, &out, NULL);
    long sum = 0;
    *files = *owned = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        int pid;
        char tail[16];
        char fmt[64];
        snprintf(fmt, sizeof fmt, "%s-%%d.%%15s", prefix);
        if (sscanf(line, fmt, &pid, tail) != 2 || strcmp(tail, "prom") != 0 || pid == skip)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", sdir, line);
        char *text = read_text(path);
        long v = metric(text, name);
        free(text);
        struct stat st;
        if (lstat(path, &st) == 0 && st.st_uid == owner)
            (*owned)++;
        (*files)++;
        sum += v > 0 ? v : 0;
    }
    free(out);
    return sum;
}

static long wait_workers(const char *sdir, const char *prefix, pid_t skip, const char *name,
                         long want, int *files, int *owned, uid_t owner)
{
    long sum = -1;
    uint64_t end = t_now_ms() + 4000;
    do {
        sum = sum_workers(sdir, prefix, skip, name, files, owned, owner);
        if (sum == want)
            break;
        t_sleep_ms(50);
    } while (t_now_ms() < end);
    return sum;
}

static void http_get(int port, const char *target)
{
    int fd = t_connect(port);
    cr_assert_geq(fd, 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: t\r\n\r\n", target);
    cr_assert_eq(write(fd, req, (size_t) n), n);
    char *resp = t_slurp(fd, 3000);
    cr_assert(strncmp(resp, "HTTP/1.", 7) == 0, "[%s]", resp);
    free(resp);
    close(fd);
}

/* A keep-alive connection that has had its answer: it stays in flight. */
static int http_hold(int port, const char *target)
{
    int fd = t_connect(port);
    cr_assert_geq(fd, 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    cr_assert_eq(write(fd, req, (size_t) n), n);
    char *resp = t_slurp_some(fd, 3000);
    cr_assert(strncmp(resp, "HTTP/1.1 200", 12) == 0, "[%s]", resp);
    free(resp);
    return fd;
}

/* A multi-process server started as root whose workers run unprivileged:
 * each worker's own file (%p) counts its connections and holds. */
static void server_workers_keep_their_files(const char *const *argv, const char *sdir, int port,
                                            const char *target, uid_t worker_uid)
{
    char var[256];
    snprintf(var, sizeof var, "SLUICE_STATS=%s/w-%%p.prom", sdir);
    const char *env[] = { var, "SLUICE_CONN_MAX=4", "SLUICE_STATS_INTERVAL=100ms", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000), "the server does not listen");
    t_sleep_ms(300);   /* the workers have dropped root and written once */
    for (int i = 0; i < 12; i++)
        http_get(port, target);
    int files, owned;
    long accepted = wait_workers(sdir, "w", p.pid, "sluice_accepted_total", 12, &files, &owned,
                                 worker_uid);
    cr_assert_eq(accepted, 12, "the workers' %d files count %ld of 12 connections", files, accepted);
    cr_assert_geq(files, 1);
    cr_assert_eq(owned, files, "%d of %d worker files belong to uid %u", owned, files,
                 (unsigned) worker_uid);
    int held[2] = { http_hold(port, target), http_hold(port, target) };
    long in_flight = wait_workers(sdir, "w", p.pid, "sluice_connections_in_flight", 2, &files,
                                  &owned, worker_uid);
    cr_assert_eq(in_flight, 2, "in flight across the workers: %ld of 2 held", in_flight);
    close(held[0]);
    close(held[1]);
    in_flight = wait_workers(sdir, "w", p.pid, "sluice_connections_in_flight", 0, &files, &owned,
                             worker_uid);
    cr_assert_eq(in_flight, 0, "in flight after the closes: %ld", in_flight);
    char *err = stop_for_stderr(&p);
    cr_assert(strstr(err, "sluice[") == NULL, "[%s]", err);
    free(err);
}

static void make_stats_dir(char *sdir, size_t cap)
{
    cr_assert_eq(chmod(dir, 0755), 0);
    snprintf(sdir, cap, "%s/stats", dir);
    cr_assert_eq(mkdir(sdir, 0755), 0);
    cr_assert_eq(chmod(sdir, 01777), 0);   /* like /tmp: each may replace only its own */
}

Test(stats, nginx_workers_running_as_nobody_keep_their_files_current, .init = make_dir,
     .fini = remove_dir, .timeout = 40)
{
    char sdir[128], conf[160], text[2048];
    make_stats_dir(sdir, sizeof sdir);
    int port = t_free_port();
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    snprintf(text, sizeof text,
             "user nobody nogroup;\nworker_processes 2;\ndaemon off;\nmaster_process on;\n"
             "pid %s/nginx.pid;\nerror_log %s/error.log;\nevents { worker_connections 64; }\n"
             "http {\n access_log off;\n client_body_temp_path %s/t;\n proxy_temp_path %s/t;\n"
             " fastcgi_temp_path %s/t;\n uwsgi_temp_path %s/t;\n scgi_temp_path %s/t;\n"
             " server { listen 127.0.0.1:%d; location / { return 200 \"hi\\n\"; } }\n}\n",
             dir, dir, dir, dir, dir, dir, dir, port);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    const char *argv[] = { "/usr/sbin/nginx", "-c", conf, "-p", dir, NULL };
    server_workers_keep_their_files(argv, sdir, port, "/", 65534);
}

Test(stats, apache_children_running_as_www_data_keep_their_files_current, .init = make_dir,
     .fini = remove_dir, .timeout = 40)
{
    struct passwd *pw = getpwnam("www-data");
    cr_assert_not_null(pw, "no www-data user");
    uid_t www = pw->pw_uid;
    char sdir[128], conf[160], text[2048], docs[160], index_path[200];
    make_stats_dir(sdir, sizeof sdir);
    snprintf(docs, sizeof docs, "%s/www", dir);
    cr_assert_eq(mkdir(docs, 0755), 0);
    snprintf(index_path, sizeof index_path, "%s/index.html", docs);
    FILE *f = fopen(index_path, "w");
    cr_assert_not_null(f);
    fputs("hi\n", f);
    fclose(f);
    int port = t_free_port();
    snprintf(conf, sizeof conf, "%s/httpd.conf", dir);
    snprintf(text, sizeof text,
             "ServerRoot %s\nDefaultRuntimeDir %s\nPidFile %s/httpd.pid\nErrorLog %s/error.log\n"
             "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
             "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n"
             "Listen 127.0.0.1:%d\nServerName localhost\nUser www-data\nGroup www-data\n"
             "DocumentRoot %s\nStartServers 2\nServerLimit 2\nThreadsPerChild 4\n"
             "MaxRequestWorkers 8\nMinSpareThreads 1\nMaxSpareThreads 8\n",
             dir, dir, dir, dir, port, docs);
    f = fopen(conf, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    const char *argv[] = { "/usr/sbin/apache2", "-f", conf, "-DFOREGROUND", NULL };
    server_workers_keep_their_files(argv, sdir, port, "/index.html", www);
}

/* Decision: without %p, the file belongs to the first process that writes it,
 * for as long as it lives (its first line names it); an exec'd child, which
 * inherits the setting, leaves it alone. */
Test(stats, an_execd_child_leaves_its_parents_file_alone, .init = make_dir, .fini = remove_dir)
{
    char path[128], var[160], port_s[16];
    snprintf(path, sizeof path, "%s/parent.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    int port = t_free_port();
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *argv[] = { t_helper("stats_creds"), "exec", port_s, NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=50ms", "SLUICE_CONN_MAX=100", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    expect_line(p.out_fd, "listening");
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = t_connect(port);
        cr_assert_geq(held[i], 0);
    }
    expect_line(p.out_fd, "holding");
    /* /bin/sleep 0.8 runs now, with the same SLUICE_STATS and a 50 ms interval;
     * the parent's file shows its 3 connections from its next write on. */
    cr_assert_eq(wait_metric(path, "sluice_connections_in_flight", 3, 2000), 3);
    int samples = 0, wrong = 0, others = 0;
    long last = -1;
    for (int i = 0; i < 10; i++) {
        t_sleep_ms(50);
        char *text = read_text(path);
        if (text == NULL)
            continue;
        int writer = 0;
        if (sscanf(text, "# sluice: written by pid %d", &writer) == 1 && writer != p.pid)
            others++;
        long v = metric(text, "sluice_connections_in_flight");
        if (v >= 0)
            samples++;
        if (v >= 0 && v != 3) {
            wrong++;
            last = v;
            cr_log_warn("sample %d: [%.300s]", i, text);
        }
        free(text);
    }
    expect_line(p.out_fd, "done");
    cr_assert_eq(t_wait(&p, 3000), 0);
    t_stop(&p, 100);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    cr_assert_geq(samples, 8);
    cr_assert_eq(wrong, 0, "%d of %d samples while the child ran show in flight %ld, not 3", wrong,
                 samples, last);
    cr_assert_eq(others, 0, "%d samples name another writer than the parent", others);
}

static unsigned long long my_start_time(void)
{
    char *text = read_text("/proc/self/stat");
    cr_assert_not_null(text);
    const char *p = strrchr(text, ')');
    cr_assert_not_null(p);
    p += 2;   /* field 3 */
    for (int field = 3; field < 22; field++)
        p = strchr(p, ' ') + 1;
    unsigned long long start = strtoull(p, NULL, 10);
    free(text);
    return start;
}

/* How many temp files are in d (except one name); their names in seen. */
static int temp_files_in(const char *d, const char *except, char *seen, size_t cap)
{
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof cmd, "ls -A %s", d);
    const char *ls[] = { "/bin/sh", "-c", cmd, NULL };
    t_run(ls, NULL, false, 5000, &out, NULL);
    int n = 0;
    size_t len = 0;
    seen[0] = '\0';
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strstr(line, ".tmp.") == NULL || (except != NULL && strcmp(line, except) == 0))
            continue;
        n++;
        int w = snprintf(seen + len, cap - len, "%s ", line);
        if (w > 0 && (size_t) w < cap - len)
            len += (size_t) w;
    }
    free(out);
    return n;
}

static void plant(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "%s", path);
    close(fd);
}

/* Short processes (exit while their first write may be under way) and
 * processes killed mid-write (1 ms interval: nearly always writing) leave no
 * temp file; one a dead writer left is removed by the next writer of the same
 * template, one a live writer (this test, by its pid and start time) is not. */
Test(stats, no_temp_file_is_left_by_short_or_killed_processes, .init = make_dir,
     .fini = remove_dir, .timeout = 60)
{
    char path[128], var[160], dead[256], live[256], dead_p[256], live_name[128];
    snprintf(path, sizeof path, "%s/short.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    unsigned long long start = my_start_time();
    snprintf(dead, sizeof dead, "%s.tmp.%d.%llu.0badc0de", path, (int) getpid(), start + 1);
    snprintf(live_name, sizeof live_name, "short.prom.tmp.%d.%llu.0000beef", (int) getpid(), start);
    snprintf(live, sizeof live, "%s/%s", dir, live_name);
    snprintf(dead_p, sizeof dead_p, "%s/s-4.prom.tmp.4.1.12345678", dir);
    plant(dead);
    plant(live);
    plant(dead_p);

    const char *shortv[] = { "/bin/true", NULL };
    const char *env[] = { var, NULL };
    for (int i = 0; i < 40; i++)
        cr_assert_eq(t_run(shortv, env, true, 5000, NULL, NULL), 0);
    const char *sleepv[] = { "/bin/sleep", "5", NULL };
    const char *fast[] = { var, "SLUICE_STATS_INTERVAL=1ms", NULL };
    for (int i = 0; i < 40; i++) {
        struct t_proc p = t_spawn(sleepv, fast, true);
        t_sleep_ms(5 + (i * 7) % 30);
        kill(p.pid, SIGKILL);
        t_wait(&p, 2000);
        t_stop(&p, 0);
    }
    /* The next writer cleans what a killed predecessor may have left. */
    cr_assert_eq(t_run(shortv, env, true, 5000, NULL, NULL), 0);
    cr_assert_eq(access(live, F_OK), 0, "a live writer's temp file was removed");

    /* With %p, a writer of another pid's name cleans the dead one's too. */
    char var_p[160];
    snprintf(var_p, sizeof var_p, "SLUICE_STATS=%s/s-%%p.prom", dir);
    const char *env_p[] = { var_p, NULL };
    cr_assert_eq(t_run(shortv, env_p, true, 5000, NULL, NULL), 0);
    cr_assert_neq(access(dead_p, F_OK), 0, "a dead %%p writer's temp file is left");
    char names[1024];
    int left = temp_files_in(dir, live_name, names, sizeof names);
    cr_assert_eq(left, 0, "%d temp files left by 40 short and 40 killed processes: %s", left, names);
}

/* A directory at the path: not replaceable; said once, however many times
 * the writer tries, and no temp file stays. */
Test(stats, a_directory_at_the_path_is_said_once, .init = make_dir, .fini = remove_dir)
{
    char path[128], var[160];
    snprintf(path, sizeof path, "%s/taken.prom", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *argv[] = { "/bin/sleep", "0.5", NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=20ms", NULL };
    char *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 5000, NULL, &err), 0);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, path) != NULL && strstr(err, "directory") != NULL, "[%s]", err);
    free(err);
    char names[1024];
    cr_assert_eq(temp_files_in(dir, NULL, names, sizeof names), 0, "%s", names);
}

/* Another user's file at the path in a sticky directory: rename fails with
 * EPERM; said once, with whose file it is. Only the program (as nobody) is
 * governed: setpriv starts it with the library. */
Test(stats, another_users_file_at_the_path_is_said_once, .init = make_dir, .fini = remove_dir)
{
    cr_assert_eq(chmod(dir, 01777), 0);
    char path[128], var[160], preload[1024];
    snprintf(path, sizeof path, "%s/other.prom", dir);
    plant(path);   /* root's */
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", t_preload());
    const char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/usr/bin/env", preload, var, "SLUICE_STATS_INTERVAL=20ms",
                           "/bin/sleep", "0.5", NULL };
    char *err = NULL;
    cr_assert_eq(t_run(argv, NULL, false, 5000, NULL, &err), 0, "[%s]", err);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, path) != NULL && strstr(err, "belongs to uid 0") != NULL, "[%s]", err);
    free(err);
    char names[1024];
    cr_assert_eq(temp_files_in(dir, NULL, names, sizeof names), 0, "%s", names);
}

/* The directory is held open from start-up; one removed and made anew at the
 * path (a cleanup of /run, a test harness) is followed, not written into while
 * deleted. */
Test(stats, a_directory_made_anew_at_the_path_is_followed, .init = make_dir, .fini = remove_dir)
{
    char sub[128], path[160], var[192];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    snprintf(path, sizeof path, "%s/re.prom", sub);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *argv[] = { "/bin/sleep", "1.5", NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=50ms", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    cr_assert(wait_for_file(path, 2000), "no stats file");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir %s", sub, sub);
    cr_assert_eq(system(cmd), 0);
    bool again = wait_for_file(path, 1000);
    char *err = stop_for_stderr(&p);
    cr_assert(again, "not written in the new directory; stderr [%s]", err);
    cr_assert_str_eq(err, "");
    free(err);
}

/* Without %p, a process started after the file's writer waits its turn: it
 * writes nothing while that writer runs, and takes the file over when it ends
 * (an exec'd new nginx master after the old one quits). */
Test(stats, a_later_process_takes_the_file_over_when_its_writer_ends, .init = make_dir,
     .fini = remove_dir)
{
    char path[128], var[160];
    snprintf(path, sizeof path, "%s/turn.prom", dir);
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=50ms", NULL };
    const char *first_argv[] = { "/bin/sleep", "0.7", NULL };
    const char *later_argv[] = { "/bin/sleep", "2", NULL };
    struct t_proc first = t_spawn(first_argv, env, true);
    pid_t first_pid = first.pid;
    cr_assert(wait_for_file(path, 2000), "no stats file");
    struct t_proc later = t_spawn(later_argv, env, true);
    pid_t later_pid = later.pid;
    int named_later = 0, samples = 0;
    for (int i = 0; i < 6; i++) {
        t_sleep_ms(50);
        char *text = read_text(path);
        int writer = 0;
        if (text != NULL && sscanf(text, "# sluice: written by pid %d", &writer) == 1) {
            samples++;
            named_later += writer == later_pid;
        }
        free(text);
    }
    cr_assert_eq(t_wait(&first, 3000), 0);
    t_stop(&first, 100);
    uint64_t end = t_now_ms() + 1000;
    int writer = 0;
    while (t_now_ms() < end) {
        char *text = read_text(path);
        writer = 0;
        if (text != NULL)
            sscanf(text, "# sluice: written by pid %d", &writer);
        free(text);
        if (writer == later_pid)
            break;
        t_sleep_ms(20);
    }
    t_stop(&later, 100);
    cr_assert_geq(samples, 5);
    cr_assert_eq(named_later, 0, "the later process wrote %d times while the first ran", named_later);
    cr_assert_eq(writer, later_pid, "the file names pid %d, not the later process %d (the first: %d)",
                 writer, (int) later_pid, (int) first_pid);
}

/* The hand-over before a drop gives away only the file this process wrote:
 * a hard link to another file put at the path since (by a user who may write
 * the directory) keeps its owner. */
Test(stats, the_hand_over_never_gives_away_a_file_planted_at_the_path, .init = make_dir,
     .fini = remove_dir)
{
    cr_assert_eq(chmod(dir, 01777), 0);
    char path[128], victim[128], var[256], port_s[16];
    snprintf(path, sizeof path, "%s/planted.prom", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    plant(victim);   /* root's */
    snprintf(var, sizeof var, "SLUICE_STATS=%s", path);
    int port = t_free_port();
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *argv[] = { t_helper("stats_creds"), "drop", port_s, "65534", "65534", NULL };
    const char *env[] = { var, "SLUICE_STATS_INTERVAL=1m", NULL };
    struct t_proc p = t_spawn(argv, env, true);
    expect_line(p.out_fd, "listening");
    cr_assert(wait_for_file(path, 3000), "no stats file before the drop");
    t_sleep_ms(100);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(link(victim, path), 0);
    connect_and_close(port);
    expect_line(p.out_fd, "dropped");
    struct stat st;
    cr_assert_eq(stat(victim, &st), 0);
    char *err = stop_for_stderr(&p);
    free(err);
    cr_assert_eq(st.st_uid, 0, "the planted file was handed to uid %u", (unsigned) st.st_uid);
}
