/* test_build.c — the Makefile on a machine without the project's packages:
 * `make check -j2` installs them before anything compiles, and a plain `make`
 * without libbsd's headers says which packages to install. Each runs make in
 * a scratch copy of the tree whose compiler is a script that records what it
 * was asked to do, and stops there. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"

static char tree[128];

static void sh(const char *fmt, const char *arg)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void write_script(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tree, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(chmod(path, 0755), 0);
}

/* The sources make needs to plan a build, without the test suites. */
static void scratch_tree(void)
{
    snprintf(tree, sizeof tree, "/tmp/sluice-build-%d", (int) getpid());
    sh("rm -rf %s && mkdir -p %s/tests", tree);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && cp -r Makefile shim include scripts '%s/' && cp tests/testlib.c tests/testlib.h '%s/tests/'",
             SLUICE_SOURCE_DIR, tree, tree);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static int run_make(const char *goal_and_flags, char **out, char **err)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "make -C '%s' CC='%s/cc-probe' %s", tree, tree, goal_and_flags);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    /* Not the jobserver of a make that may be running this suite, nor its
     * sanitizer (`make asan` exports SANITIZE, whose runtime is looked up
     * with $(CC) while the Makefile is read, before any goal). */
    const char *env[] = { "MAKEFLAGS=", "MFLAGS=", "MAKELEVEL=", "SANITIZE=", NULL };
    return t_run(argv, env, false, 60000, out, err);
}

static char *slurp_path(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tree, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* `check: deps all ...` under -j2 used to compile parse.o while deps.sh was
 * still installing libbsd-dev. Here deps.sh takes a second, and the compiler
 * notes whether it ran before or after. */
Test(build, make_check_j2_installs_packages_before_compiling)
{
    scratch_tree();
    write_script("scripts/deps.sh",
                 "#!/bin/sh\n"
                 "[ \"${1:-}\" = --headers ] && exit 0\n"
                 "sleep 1\n"
                 "touch \"$(dirname \"$0\")/../deps-done\"\n");
    char probe[1024];
    snprintf(probe, sizeof probe,
             "#!/bin/sh\n"
             "if [ -e %s/deps-done ]; then echo after >> %s/compiles; else echo before >> %s/compiles; fi\n"
             "exit 1\n", tree, tree, tree);
    write_script("cc-probe", probe);
    char *out = NULL, *err = NULL;
    int rc = run_make("-j2 check", &out, &err);
    cr_assert_neq(rc, 0, "the probe compiler fails every compile");
    char *compiles = slurp_path("compiles");
    cr_assert(strstr(compiles, "after") != NULL, "no compile at all: [%s] [%s]", compiles, err);
    cr_assert(strstr(compiles, "before") == NULL, "compiled before deps finished: [%s]", compiles);
    free(compiles);
    free(out);
    free(err);
    sh("rm -rf %s", tree);
}

/* Without libbsd's headers, a plain `make` used to stop at
 * "bsd/stdlib.h: No such file or directory". */
Test(build, plain_make_without_the_headers_names_the_packages)
{
    scratch_tree();
    /* A compiler on a machine without libbsd-dev: any header check fails, and
     * so does compiling a file that includes bsd/stdlib.h. */
    char probe[1024];
    snprintf(probe, sizeof probe,
             "#!/bin/sh\n"
             "echo \"$*\" >> %s/compiles\n"
             "case \" $* \" in *\" -E \"*) exit 1 ;; esac\n"
             "for a in \"$@\"; do case \"$a\" in *.c) if grep -q 'bsd/stdlib.h' \"$a\" 2>/dev/null; then\n"
             "  echo \"$a: fatal error: bsd/stdlib.h: No such file or directory\" >&2; exit 1; fi ;; esac; done\n"
             "exec cc \"$@\"\n", tree);
    write_script("cc-probe", probe);
    char *out = NULL, *err = NULL;
    int rc = run_make("all", &out, &err);
    cr_assert_neq(rc, 0);
    cr_assert(strstr(err, "No such file") == NULL, "compiled anyway: [%s]", err);
    cr_assert(strstr(err, "libbsd-dev") != NULL, "packages not named: [%s] [%s]", err, out);
    cr_assert(strstr(err, "apt-get install") != NULL, "[%s]", err);
    free(out);
    free(err);
    sh("rm -rf %s", tree);
}
