/* test_package.c — what ships around the library: the flags and variables
 * agree across --help, the man pages, the README and the bash completion; the
 * lines `sluice --print-env` prints govern a real server when applied; `sluice
 * --check` tells programs a preload can govern from those it cannot; `sluice
 * stat` tabulates the stats files of running servers. (The Debian package
 * itself is checked by `make package-check`: building it takes a while.) */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

static const char *launcher(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/sluice", SLUICE_BUILD_DIR);
    return path;
}

/* In a sanitized build, "LD_PRELOAD=RUNTIME" (it must stay first, and the
 * launcher keeps it there); otherwise NULL. */
static const char *runtime_env(void)
{
    static char var[4200];
    size_t n = strlen(t_preload()) - strlen(t_lib());
    if (n == 0)
        return NULL;
    snprintf(var, sizeof var, "LD_PRELOAD=%.*s", (int) n - 1, t_preload());
    return var;
}

/* Runs a shell script (with $1... from args), bare, bounded. */
static int run_sh(const char *script, const char *const *args, char **out, char **err)
{
    const char *argv[16] = { "/bin/sh", "-c", script, "sh" };
    int n = 4;
    for (int i = 0; args != NULL && args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = { runtime_env(), NULL };
    return t_run(argv, env, false, 20000, out, err);
}

static char *make_dir(const char *name)
{
    /* A space in the path: the printed lines must quote it. */
    char *dir = NULL;
    cr_assert(asprintf(&dir, "/tmp/sluice pkg %s %d", name, (int) getpid()) > 0);
    mkdir(dir, 0700);
    return dir;
}

static void remove_dir(char *dir)
{
    const char *args[] = { dir, NULL };
    run_sh("rm -rf -- \"$1\"", args, NULL, NULL);
    free(dir);
}

/* Starts `python3 -m http.server` on port with the lines in FILE applied the
 * way a shell applies an environment file. */
static struct t_proc serve_with_env_file(const char *file, int port)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    const char *argv[] = { "/bin/sh", "-c",
                           "set -a; . \"$1\"; set +a; exec /usr/bin/python3 -m http.server --bind 127.0.0.1 \"$2\"",
                           "sh", file, portstr, NULL };
    struct t_proc p = t_spawn(argv, NULL, false);
    cr_assert(t_wait_listening(port, 10000), "the server did not listen on %d", port);
    return p;
}

/* Writes `sluice --print-env FLAGS...` into DIR/env; returns its path. */
static char *print_env_file(const char *dir, const char *const *flags)
{
    char *file = NULL;
    cr_assert(asprintf(&file, "%s/env", dir) > 0);
    const char *argv[24] = { launcher(), "--print-env" };
    int n = 2;
    for (int i = 0; flags[i] != NULL && n < 23; i++)
        argv[n++] = flags[i];
    argv[n] = NULL;
    const char *env[] = { runtime_env(), NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, false, 10000, &out, &err);
    cr_assert_eq(rc, 0, "--print-env exit %d [%s]", rc, err);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    free(out);
    free(err);
    return file;
}

/* The row of `sluice stat` output for the file of pid, or NULL. */
static const char *row_of(const char *table, pid_t pid)
{
    char name[64];
    snprintf(name, sizeof name, "s-%d.prom ", (int) pid);
    for (const char *p = table; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, strlen(name)) == 0)
            return p;
    return NULL;
}

/* The whitespace-separated fields of one line. */
static int fields(const char *line, char out[][32], int max)
{
    int n = 0;
    const char *p = line;
    while (*p && *p != '\n' && n < max) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            break;
        int k = 0;
        while (*p && *p != ' ' && *p != '\n') {
            if (k < 31)
                out[n][k++] = *p;
            p++;
        }
        out[n++][k] = '\0';
    }
    return n;
}

Test(package, help_man_pages_readme_and_completion_name_the_same_flags_and_variables)
{
    const char *argv[] = { SLUICE_SOURCE_DIR "/tests/package/docs-agree.sh", SLUICE_SOURCE_DIR, launcher(), NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, NULL, false, 30000, &out, &err);
    cr_assert_eq(rc, 0, "docs disagree:\n%s%s", out, err);
    free(out);
    free(err);
}

Test(package, bash_completion_offers_the_flags_and_their_values)
{
    const char *args[] = { t_source("scripts/sluice-completion.bash"), NULL };
    char *out = NULL, *err = NULL;
    int rc = run_sh("exec bash -c '. \"$1\"\n"
                    "c() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _sluice; local IFS=\"|\"; echo \"${COMPREPLY[*]}\"; }\n"
                    "c sluice --conn-m; c sluice --conn-mode \"\"; c sluice --conn-idle = f; c sluice --shed http4;"
                    " c sluice --fs-scope h; c sluice --log d; c sluice --print-env = sy; c sluice stat -; c sluice --write-high 6\n"
                    "d=$(mktemp -d); : > \"$d/a b.prom\"; c sluice stat \"$d/a\" | sed \"s|^$d/||\"; rm -rf \"$d\"\n"
                    "complete -p sluice' bash \"$1\"", args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d [%s]", rc, err);
    cr_assert_str_eq(out, "--conn-max|--conn-mode\npause|shed\nfree\nhttp429\nhost\ndebug\nsystemd\n-w|-n|--help\n64K\na b.prom\n"
                          "complete -F _sluice sluice\n", "[%s]", out);
    free(out);
    free(err);
}

Test(package, print_env_lines_applied_to_a_real_server_govern_it)
{
    char *dir = make_dir("env");
    char *stats = NULL;
    cr_assert(asprintf(&stats, "%s/s-%%p.prom", dir) > 0);
    const char *flags[] = { "--conn-max", "1", "--stats", stats, NULL };
    char *file = print_env_file(dir, flags);
    int port = t_free_port();
    struct t_proc server = serve_with_env_file(file, port);
    /* One connection holds the only slot; the next waits in the backlog. */
    int held = t_connect(port);
    cr_assert_geq(held, 0);
    t_sleep_ms(300);
    int waiting = t_connect(port);
    cr_assert_geq(waiting, 0);
    int queued = -1;
    for (int i = 0; i < 50 && (queued = t_accept_queue(port)) != 1; i++)
        t_sleep_ms(50);
    cr_assert_eq(queued, 1, "accept queue %d: the printed lines did not govern the server", queued);
    /* And its stats file is where the (quoted) path said. */
    char *prom = NULL;
    cr_assert(asprintf(&prom, "%s/s-%d.prom", dir, (int) server.pid) > 0);
    struct stat st;
    bool written = false;
    for (int i = 0; i < 40 && !(written = stat(prom, &st) == 0); i++)
        t_sleep_ms(50);
    cr_assert(written, "no stats file %s", prom);
    close(waiting);
    close(held);
    t_stop(&server, 2000);
    free(prom);
    free(file);
    free(stats);
    remove_dir(dir);
}

Test(package, print_env_quotes_for_systemd_docker_kubernetes_and_refuses_bad_values)
{
    const char *script =
        "set -e\n"
        "\"$1\" --print-env=systemd --conn-max 4 --stats '/var/x y/s-%p.prom'\n"
        "\"$1\" --print-env=docker --stats '/var/$HOME/s-%p.prom'\n"
        "\"$1\" --print-env=k8s --stats '/var/$(HOME)/s.prom' | tail -n 2\n"
        "\"$1\" --print-env --stats \"/var/it's/s.prom\" | tail -n 1\n";
    const char *args[] = { launcher(), NULL };
    char *out = NULL, *err = NULL;
    int rc = run_sh(script, args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d [%s]", rc, err);
    /* The library first (behind a sanitizer runtime, in a sanitized build). */
    char *real_lib = realpath(t_lib(), NULL);
    const char *runtime = runtime_env() != NULL ? runtime_env() + strlen("LD_PRELOAD=") : NULL;
    char *with_lib = NULL;
    cr_assert(asprintf(&with_lib, "Environment=LD_PRELOAD=%s%s%s\n", runtime ? runtime : "",
                       runtime ? ":" : "", real_lib) > 0);
    cr_assert(strncmp(out, with_lib, strlen(with_lib)) == 0, "[%s] does not start with [%s]", out, with_lib);
    const char *rest = out + strlen(with_lib);
    const char *lines[] = { "Environment=SLUICE_CONN_MAX=4",
                            "Environment=\"SLUICE_STATS=/var/x y/s-%%p.prom\"",
                            NULL, /* ENV LD_PRELOAD=... */
                            "ENV SLUICE_STATS=\"/var/\\$HOME/s-%p.prom\"",
                            "- name: SLUICE_STATS",
                            "  value: \"/var/$$(HOME)/s.prom\"",
                            "SLUICE_STATS='/var/it'\\''s/s.prom'" };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const char *nl = strchr(rest, '\n');
        cr_assert_not_null(nl, "output ends early: [%s]", out);
        if (lines[i] != NULL)
            cr_assert(strncmp(rest, lines[i], strlen(lines[i])) == 0 && rest + strlen(lines[i]) == nl,
                      "line %zu is [%.*s], not [%s]", i, (int) (nl - rest), rest, lines[i]);
        else
            cr_assert(strncmp(rest, "ENV LD_PRELOAD=", 15) == 0 && strstr(rest, real_lib) != NULL && strstr(rest, real_lib) < nl, "[%.*s]", (int) (nl - rest), rest);
        rest = nl + 1;
    }
    free(out);
    free(err);

    /* Validated like a run: a bad value exits 125 with the library's message. */
    const char *bad[] = { launcher(), "--print-env", "--write-high", "64Q", NULL };
    const char *env[] = { runtime_env(), NULL };
    rc = t_run(bad, env, false, 10000, &out, &err);
    cr_assert_eq(rc, 125, "exit %d", rc);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "SLUICE_WRITE_HIGH='64Q' is not valid") && strstr(err, "--write-high"), "[%s]", err);
    free(out);
    free(err);
    const char *with_command[] = { launcher(), "--print-env", "--", "true", NULL };
    rc = t_run(with_command, env, false, 10000, &out, &err);
    cr_assert_eq(rc, 125, "--print-env with a COMMAND: exit %d", rc);
    free(out);
    free(err);
    free(with_lib);
    free(real_lib);
}

Test(package, check_tells_programs_a_preload_can_govern_from_those_it_cannot)
{
    char *out = NULL, *err = NULL;
    const char *env[] = { runtime_env(), NULL };
    /* A dynamic server program: every gate has its calls. */
    const char *python[] = { launcher(), "--check", "--", "/usr/bin/python3", NULL };
    int rc = t_run(python, env, false, 20000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d [%s][%s]", rc, out, err);
    cr_assert(strstr(out, "connection gate: yes (accept, accept4)"), "[%s]", out);
    cr_assert(strstr(out, "readiness: yes (epoll_wait"), "[%s]", out);
    cr_assert(strstr(out, "/usr/bin/python3: can be governed"), "[%s]", out);
    free(out);
    free(err);

    /* A static program: the loader never reads LD_PRELOAD for it. */
    char *dir = make_dir("check");
    char *src = NULL, *bin = NULL, *script = NULL;
    cr_assert(asprintf(&src, "%s/static.c", dir) > 0 && asprintf(&bin, "%s/static", dir) > 0
              && asprintf(&script, "%s/server.py", dir) > 0);
    FILE *f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs("int main(void) { return 0; }\n", f);
    fclose(f);
    const char *cc[] = { "cc", "-static", "-o", bin, src, NULL };
    rc = t_run(cc, NULL, false, 60000, &out, &err);
    cr_assert_eq(rc, 0, "cc -static: %s", err);
    free(out);
    free(err);
    const char *check_static[] = { launcher(), "--check", "--", bin, NULL };
    rc = t_run(check_static, env, false, 10000, &out, &err);
    cr_assert_eq(rc, 1, "exit %d [%s]", rc, out);
    cr_assert(strstr(out, "statically linked") && strstr(out, "cannot be governed"), "[%s]", out);
    free(out);
    free(err);

    /* A script: judged by its interpreter, found through env. */
    f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs("#!/usr/bin/env python3\nprint('hi')\n", f);
    fclose(f);
    chmod(script, 0755);
    const char *check_script[] = { launcher(), "--check", "--", script, NULL };
    const char *env_path[] = { "PATH=/usr/bin:/bin", runtime_env(), NULL };
    rc = t_run(check_script, env_path, false, 20000, &out, &err);
    cr_assert_eq(rc, 0, "exit %d [%s][%s]", rc, out, err);
    cr_assert(strstr(out, "a script run by /usr/bin/python3") && strstr(out, "connection gate: yes"), "[%s]", out);
    free(out);
    free(err);

    /* A set-uid program of another user: the loader would ignore the preload.
     * (Creating one takes root, which `make check` has.) */
    if (getuid() == 0) {
        char *suid = NULL;
        cr_assert(asprintf(&suid, "%s/suid-true", dir) > 0);
        const char *copy[] = { "/bin/sh", "-c", "cp /bin/true \"$1\" && chown 65534 \"$1\" && chmod 4755 \"$1\"",
                               "sh", suid, NULL };
        rc = t_run(copy, NULL, false, 10000, NULL, NULL);
        cr_assert_eq(rc, 0);
        const char *check_suid[] = { launcher(), "--check", "--", suid, NULL };
        rc = t_run(check_suid, env, false, 10000, &out, &err);
        cr_assert_eq(rc, 1, "exit %d [%s]", rc, out);
        cr_assert(strstr(out, "set-uid") && strstr(out, "cannot be governed"), "[%s]", out);
        free(out);
        free(err);
        free(suid);
    }

    /* Not a program at all, and no such command. */
    const char *check_text[] = { launcher(), "--check", "--", src, NULL };
    rc = t_run(check_text, env, false, 10000, &out, &err);
    cr_assert_eq(rc, 1, "exit %d [%s]", rc, out);
    cr_assert(strstr(out, "not an ELF program"), "[%s]", out);
    free(out);
    free(err);
    const char *check_missing[] = { launcher(), "--check", "--", "sluice-no-such-command", NULL };
    rc = t_run(check_missing, env, false, 10000, &out, &err);
    cr_assert_eq(rc, 127, "exit %d", rc);
    cr_assert(strstr(err, "not found"), "[%s]", err);
    free(out);
    free(err);
    free(src);
    free(bin);
    free(script);
    remove_dir(dir);
}

Test(package, stat_tabulates_live_servers_and_sums_them)
{
    char *dir = make_dir("stat");
    char *stats = NULL;
    cr_assert(asprintf(&stats, "%s/s-%%p.prom", dir) > 0);
    const char *one[] = { "--conn-max", "1", "--stats", stats, NULL };
    char *file_one = print_env_file(dir, one);
    int port1 = t_free_port();
    struct t_proc s1 = serve_with_env_file(file_one, port1);
    const char *three[] = { "--conn-max", "3", "--stats", stats, NULL };
    char *file_three = print_env_file(dir, three);
    int port3 = t_free_port();
    struct t_proc s3 = serve_with_env_file(file_three, port3);
    /* s1 at its limit (paused, one more waiting); s3 holds one of three. */
    int c1 = t_connect(port1), c3 = t_connect(port3);
    t_sleep_ms(300);
    int c1b = t_connect(port1);
    cr_assert(c1 >= 0 && c3 >= 0 && c1b >= 0);
    t_sleep_ms(1500);   /* a stats interval */

    const char *args[] = { launcher(), stats, NULL };
    char *out = NULL, *err = NULL;
    int rc = run_sh("exec \"$1\" stat \"$2\"", args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d [%s]", rc, err);
    char f[12][32];
    const char *r1 = row_of(out, s1.pid), *r3 = row_of(out, s3.pid);
    cr_assert(r1 && r3, "no rows for %d and %d in\n%s", (int) s1.pid, (int) s3.pid, out);
    cr_assert_eq(fields(r1, f, 12), 10, "%s", r1);
    cr_assert_str_eq(f[1], "1/1", "%s", out);
    cr_assert_str_eq(f[2], "yes", "%s", out);
    cr_assert_eq(fields(r3, f, 12), 10);
    cr_assert_str_eq(f[1], "1/3", "%s", out);
    cr_assert_str_eq(f[2], "no", "%s", out);
    const char *total = strstr(out, "TOTAL (2)");
    cr_assert_not_null(total, "no total of the two live servers in\n%s", out);
    cr_assert_eq(fields(total, f, 12), 10, "%s", total);
    cr_assert_str_eq(f[2], "2/4", "%s", out);
    cr_assert_str_eq(f[3], "1/2", "%s", out);
    free(out);
    free(err);

    /* A server that exits leaves its last figures, marked and not summed. */
    close(c3);
    pid_t gone = s3.pid;
    t_stop(&s3, 2000);
    rc = run_sh("exec \"$1\" stat -w -n 1 \"$2\"", args, &out, &err);
    cr_assert_eq(rc, 0);
    r3 = row_of(out, gone);
    cr_assert(r3 && strstr(r3, "exited") && strstr(r3, "exited") < strchr(r3, '\n'), "%s", out);
    cr_assert_null(strstr(out, "TOTAL"), "one live server has no total:\n%s", out);
    free(out);
    free(err);
    close(c1b);
    close(c1);
    t_stop(&s1, 2000);
    free(file_one);
    free(file_three);
    free(stats);
    remove_dir(dir);
}

Test(package, stat_watch_measures_the_shed_rate)
{
    char *dir = make_dir("rate");
    char *stats = NULL;
    cr_assert(asprintf(&stats, "%s/s-%%p.prom", dir) > 0);
    const char *flags[] = { "--conn-max", "1", "--conn-mode", "shed", "--stats", stats, NULL };
    char *file = print_env_file(dir, flags);
    int port = t_free_port();
    struct t_proc server = serve_with_env_file(file, port);
    int held = t_connect(port);
    cr_assert_geq(held, 0);
    t_sleep_ms(300);
    /* `stat -w` for three tables while clients are shed, 20 a second, bounded. */
    const char *argv[] = { "/bin/sh", "-c", "exec \"$1\" stat -w -n 3 \"$2\"", "sh", launcher(), stats, NULL };
    const char *env[] = { runtime_env(), NULL };
    struct t_proc watch = t_spawn(argv, env, false);
    int shed = 0;
    for (uint64_t end = t_now_ms() + 4000; t_now_ms() < end && shed < 200; shed++) {
        int c = t_connect(port);
        if (c >= 0)
            close(c);
        t_sleep_ms(50);
    }
    char *out = t_slurp(watch.out_fd, 10000);
    int status = t_wait(&watch, 10000);
    cr_assert_eq(status, 0, "stat -w exit %d", status);
    /* The last table's row: about 20 shed a second. */
    const char *last = out, *p;
    while ((p = strstr(last + 1, "FILE ")) != NULL)
        last = p;
    const char *row = row_of(last, server.pid);
    cr_assert_not_null(row, "%s", out);
    char f[12][32];
    cr_assert_eq(fields(row, f, 12), 10, "%s", row);
    double rate = atof(f[4]);
    cr_assert(rate >= 5 && rate <= 40, "shed/s %s (about 20 a second were shed) in\n%s", f[4], out);
    free(out);
    close(held);
    t_stop(&server, 2000);
    free(file);
    free(stats);
    remove_dir(dir);
}
