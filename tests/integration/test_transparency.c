/* test_transparency.c — with the library preloaded and no setting, real
 * programs do exactly what they do bare: Python (sockets, asyncio, subprocess,
 * files), coreutils, redis; and a small program makes the same system calls.
 * With every gate on but far from binding, they still say the same things. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

struct result {
    int rc;
    char *out;
    char *err;
};

static struct result run(const char *const *argv, const char *const *env, bool preload,
                         int timeout_ms)
{
    struct result r;
    r.rc = t_run(argv, env, preload, timeout_ms, &r.out, &r.err);
    return r;
}

static const char *const gates_on[] = { "SLUICE_CONN_MAX=1000", "SLUICE_WRITE_HIGH=16M",
                                        "SLUICE_FS_MAX=1000", NULL };

static void free_result(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* Runs argv bare and preloaded (with env: settings); everything the program
 * says must be the same. */
static void same_both_ways(const char *what, const char *const *argv, const char *const *env,
                           int timeout_ms)
{
    struct result bare = run(argv, NULL, false, timeout_ms);
    struct result governed = run(argv, env, true, timeout_ms);
    cr_assert_eq(bare.rc, 0, "%s bare: exit %d, stderr [%s]", what, bare.rc, bare.err);
    cr_assert_eq(governed.rc, bare.rc, "%s: exit %d preloaded, %d bare; stderr [%s]", what,
                 governed.rc, bare.rc, governed.err);
    cr_assert_gt(strlen(bare.out), 0, "%s printed nothing", what);
    cr_assert_str_eq(governed.out, bare.out, "%s: stdout differs", what);
    cr_assert_str_eq(governed.err, bare.err, "%s: stderr differs", what);
    free_result(&bare);
    free_result(&governed);
}

Test(transparency, python_sockets_asyncio_subprocess_files)
{
    const char *argv[] = { "/usr/bin/python3", t_source("tests/helpers/fwd_realworld.py"), NULL };
    same_both_ways("python", argv, NULL, 30000);
}

Test(transparency, python_with_gates_on_but_not_binding)
{
    const char *argv[] = { "/usr/bin/python3", t_source("tests/helpers/fwd_realworld.py"), NULL };
    same_both_ways("python, gates on", argv, gates_on, 30000);
}

static char workdir[64];

static void make_workdir(void)
{
    snprintf(workdir, sizeof workdir, "/tmp/sluice-transp-XXXXXX");
    cr_assert_not_null(mkdtemp(workdir));
    char path[128];
    snprintf(path, sizeof path, "%s/in.txt", workdir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    unsigned x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 1103515245u + 12345u;
        fprintf(f, "%u line-%d %c\n", x >> 8, i, 'a' + (int) (x % 26));
    }
    fclose(f);
}

static void remove_workdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", workdir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", workdir);
}

Test(transparency, coreutils_sort_cat_cp_tar, .init = make_workdir, .fini = remove_workdir)
{
    /* Each script leaves its files in a fresh subdirectory, so both runs start alike. */
    const char *scripts[] = {
        "sort -n in.txt | sha256sum; sort -t' ' -k3,3 -k2,2 in.txt | head -n 50",
        "cat in.txt in.txt | sha256sum; cat < in.txt | tail -n 3",
        "d=$(mktemp -d ./cp.XXXXXX) && cp in.txt $d/copy.txt && cp -r $d $d.tree && "
        "cmp in.txt $d.tree/copy.txt && sha256sum < $d/copy.txt && rm -rf $d $d.tree",
        "d=$(mktemp -d ./tar.XXXXXX) && mkdir $d/src && cp in.txt $d/src/a && "
        "printf 'b\\n' > $d/src/b && touch -d @1000000000 $d/src/a $d/src/b $d/src && "
        "tar --sort=name --owner=0 --group=0 --numeric-owner -C $d -cf - src | sha256sum && "
        "tar --sort=name -C $d -cf $d/x.tar src && mkdir $d/out && tar -C $d/out -xf $d/x.tar && "
        "diff -r $d/src $d/out/src && tar -tvf $d/x.tar | awk '{print $1, $3, $6}' && rm -rf $d",
    };
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        char script[1024];
        snprintf(script, sizeof script, "cd %s && %s", workdir, scripts[i]);
        const char *argv[] = { "/bin/sh", "-c", script, NULL };
        same_both_ways(scripts[i], argv, NULL, 20000);
        same_both_ways(scripts[i], argv, gates_on, 20000);
    }
}

static char *redis_session(bool preload, const char *const *env)
{
    int port = t_free_port();
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", port);
    const char *server_argv[] = { "redis-server", "--port", port_s, "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", NULL };
    struct t_proc server = t_spawn(server_argv, env, preload);
    cr_assert(t_wait_listening(port, 5000), "redis-server did not listen (preload %d)", preload);
    char script[2048];
    snprintf(script, sizeof script,
             "redis-cli -p %s SET greeting hello && redis-cli -p %s GET greeting && "
             "redis-cli -p %s INCR counter && redis-cli -p %s INCR counter && "
             "redis-cli -p %s RPUSH list a b c && redis-cli -p %s LRANGE list 0 -1 && "
             "head -c 300000 /dev/zero | tr '\\0' 'z' | redis-cli -p %s -x SET big && "
             "redis-cli -p %s STRLEN big && redis-cli -p %s GET big | sha256sum && "
             "printf 'SET a 1\\nSET b 2\\nMGET a b nothere\\nDEL a b\\n' | redis-cli -p %s && "
             "redis-cli -p %s DBSIZE",
             port_s, port_s, port_s, port_s, port_s, port_s, port_s, port_s, port_s, port_s,
             port_s);
    const char *argv[] = { "/bin/sh", "-c", script, NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, preload, 20000, &out, &err);
    cr_assert_eq(rc, 0, "redis-cli session failed (preload %d): [%s]", preload, err);
    free(err);
    t_stop(&server, 3000);
    return out;
}

Test(transparency, redis_server_and_cli)
{
    char *bare = redis_session(false, NULL);
    char *governed = redis_session(true, NULL);
    char *gated = redis_session(true, gates_on);
    cr_assert(strstr(bare, "hello\n") != NULL && strstr(bare, "300000\n") != NULL, "[%s]", bare);
    cr_assert_str_eq(governed, bare);
    cr_assert_str_eq(gated, bare, "gates on, not binding: redis answered differently");
    free(bare);
    free(governed);
    free(gated);
}

/* The syscall name and result (and errno name) of each line between the
 * markers: addresses and the temp file's name differ from run to run, and are
 * not kept. Nor is the allocator's brk: how far the heap must grow depends on
 * what was allocated before main, not on what the program does. */
static char *syscalls_between_markers(const char *trace)
{
    const char *start = strstr(trace, "marker-start");
    const char *end = strstr(trace, "marker-end");
    cr_assert(start != NULL && end != NULL && start < end, "markers missing from [%s]", trace);
    char *out = calloc(1, strlen(trace) + 1);
    size_t len = 0;
    const char *line = strchr(start, '\n');
    while (line != NULL && ++line < end) {
        const char *eol = strchr(line, '\n');
        size_t n = eol != NULL ? (size_t) (eol - line) : strlen(line);
        char *text = strndup(line, n);
        char *paren = strchr(text, '(');
        char *result = NULL;
        for (char *q = strstr(text, " = "); q != NULL; q = strstr(q + 1, " = "))
            result = q + 3;
        if (paren != NULL && result != NULL && strncmp(text, "brk(", 4) != 0) {
            char *stop = strchr(result, '(');
            if (stop != NULL)
                *stop = '\0';
            len += (size_t) sprintf(out + len, "%.*s = %s\n", (int) (paren - text), text, result);
        }
        free(text);
        line = eol;
    }
    return out;
}

static char *trace_of(bool preload, const char *dir)
{
    char trace_path[256];
    snprintf(trace_path, sizeof trace_path, "%s/trace.%s", dir, preload ? "preloaded" : "bare");
    const char *argv[] = { "strace", "-qq", "-o", trace_path, t_helper("fwd_syscalls"), NULL };
    char *err = NULL;
    int rc = t_run(argv, NULL, preload, 20000, NULL, &err);
    cr_assert_eq(rc, 0, "strace run failed (%d): [%s]", rc, err);
    free(err);
    FILE *f = fopen(trace_path, "r");
    cr_assert_not_null(f);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(trace_path);
    char *calls = syscalls_between_markers(text);
    free(text);
    return calls;
}

Test(transparency, a_small_program_makes_the_same_system_calls)
{
    char dir[] = "/tmp/sluice-strace-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *bare = trace_of(false, dir);
    char *governed = trace_of(true, dir);
    rmdir(dir);
    /* The program did its work: files, sockets, readiness, pipes. */
    const char *expected[] = { "fsync", "pread64", "dup2", "socketpair", "poll", "epoll_wait",
                               "pselect6", "pipe2", "read" };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        cr_assert(strstr(bare, expected[i]) != NULL, "%s missing from [%s]", expected[i], bare);
    cr_assert_str_eq(governed, bare, "system calls differ:\nbare:\n%s\npreloaded:\n%s", bare,
                     governed);
    free(bare);
    free(governed);
}
