/* test_binding.c — how calls reach sluice: from another library's constructor
 * before sluice's own has run, across exec and across a fork that wipes the
 * environment (nginx workers), and through glibc's fortified entry points. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

/* The dynamic loader's LD_DEBUG report goes to files (LD_DEBUG_OUTPUT), not
 * stderr: it is large, and a full pipe would stall the program. */
struct ld_debug {
    char dir[64];
    char output_var[128];
};

static void ld_debug_start(struct ld_debug *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/sluice-lddebug-XXXXXX");
    cr_assert_not_null(mkdtemp(d->dir));
    snprintf(d->output_var, sizeof d->output_var, "LD_DEBUG_OUTPUT=%s/ld", d->dir);
}

/* Everything the loader wrote, all processes together; removes the files. */
static char *ld_debug_collect(struct ld_debug *d)
{
    size_t cap = 1 << 20, len = 0;
    char *all = malloc(cap);
    DIR *dir = opendir(d->dir);
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", d->dir, e->d_name);
        FILE *f = fopen(path, "r");
        size_t n;
        while (f != NULL && (n = fread(all + len, 1, cap - len - 1, f)) > 0) {
            len += n;
            if (len + 1 >= cap)
                all = realloc(all, cap *= 2);
        }
        if (f != NULL)
            fclose(f);
        unlink(path);
    }
    if (dir != NULL)
        closedir(dir);
    rmdir(d->dir);
    all[len] = '\0';
    return all;
}

/* True if some line of text contains every one of the given pieces. */
static bool line_with(const char *text, const char *a, const char *b, const char *c)
{
    for (const char *p = text; p != NULL && *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end != NULL ? (size_t) (end - p) : strlen(p);
        char *line = strndup(p, n);
        bool hit = strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL)
                   && (c == NULL || strstr(line, c) != NULL);
        free(line);
        if (hit)
            return true;
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* In a sanitized build the sanitizer's runtime comes first in LD_PRELOAD and
 * intercepts some calls before us; its interceptor then calls the next
 * definition, ours. A binding to it counts as reaching sluice. */
static const char *sanitizer_runtime(void)
{
    static char name[256];
    const char *preload = t_preload();
    const char *colon = strchr(preload, ':');
    if (colon == NULL)
        return NULL;
    const char *base = preload;
    for (const char *q = preload; q < colon; q++)
        if (*q == '/')
            base = q + 1;
    snprintf(name, sizeof name, "%.*s", (int) (colon - base), base);
    return name;
}

static bool binds_to_sluice(const char *ld_debug, const char *from, const char *sym)
{
    const char *runtime = sanitizer_runtime();
    return line_with(ld_debug, from, "libsluice.so [0]", sym)
           || (runtime != NULL && line_with(ld_debug, from, runtime, sym));
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static char preload_with_ctor[8192];
static char debug_var[] = "LD_DEBUG=init,bindings";

static const char *ctor_preload(void)
{
    /* After libsluice.so in the list: the loader runs its constructor first. */
    snprintf(preload_with_ctor, sizeof preload_with_ctor, "LD_PRELOAD=%s:%s", t_preload(),
             t_helper("libctor_early.so"));
    return preload_with_ctor;
}

Test(binding, wrapped_calls_from_an_earlier_constructor_work)
{
    struct ld_debug dbg;
    ld_debug_start(&dbg);
    const char *preload = ctor_preload();
    const char *argv[] = { t_helper("fwd_probe"), "limits", NULL };
    const char *env[] = { preload, debug_var, dbg.output_var, "SLUICE_CONN_MAX=5",
                          "SLUICE_FS_MAX=3", NULL };
    char *out = NULL, *stderr_text = NULL;
    int rc = t_run(argv, env, false, 10000, &out, &stderr_text);
    char *err = ld_debug_collect(&dbg);
    cr_assert_eq(rc, 0, "exit %d, stderr [%s]", rc, stderr_text);
    free(stderr_text);
    cr_assert(strstr(out, "ctor: syscall ok, open+read 64, close 0, fopen+fgets ok, fclose 0\n")
              != NULL, "[%s]", out);
    /* Settings loaded by that first call are the ones in force afterwards. */
    cr_assert(strstr(out, "conn_limit=5 fs_limit=3\n") != NULL, "[%s]", out);

    /* The constructor really ran first, and its calls really went to sluice. */
    const char *ctor_at = NULL, *sluice_at = NULL;
    for (const char *p = strstr(err, "calling init: "); p != NULL; p = strstr(p + 1, "calling init: ")) {
        const char *eol = strchr(p, '\n');
        size_t n = eol != NULL ? (size_t) (eol - p) : strlen(p);
        if (ctor_at == NULL && memmem(p, n, "libctor_early.so", 16) != NULL)
            ctor_at = p;
        if (sluice_at == NULL && memmem(p, n, "libsluice.so", 12) != NULL)
            sluice_at = p;
    }
    cr_assert(ctor_at != NULL && sluice_at != NULL, "no init lines in LD_DEBUG output");
    cr_assert(ctor_at < sluice_at, "libsluice.so's constructor ran before the other library's");
    /* Each call, or its fortified form (which the compiler picks when it
     * cannot prove the buffer big enough, as under ASan). */
    const char *calls[][2] = { { "`syscall'", NULL }, { "`open'", "`__open_2'" },
                               { "`read'", "`__read_chk'" }, { "`close'", NULL },
                               { "`fopen'", NULL }, { "`fgets'", "`__fgets_chk'" },
                               { "`fclose'", NULL }, { "`write'", NULL } };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        cr_assert(binds_to_sluice(err, "libctor_early.so [0] to ", calls[i][0])
                  || (calls[i][1] != NULL && binds_to_sluice(err, "libctor_early.so [0] to ", calls[i][1])),
                  "%s from the constructor did not bind to libsluice.so", calls[i][0]);
    free(out);
    free(err);
}

/* Started from inside another library's constructor, start-up still happens
 * once: a bad value is reported once, not once per early call. */
Test(binding, early_start_up_happens_once)
{
    const char *preload = ctor_preload();
    const char *argv[] = { t_helper("fwd_probe"), "limits", NULL };
    const char *env[] = { preload, "SLUICE_CONN_MAX=lots", "SLUICE_FS_MAX=2", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, env, false, 10000, &out, &err), 0);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, "SLUICE_CONN_MAX='lots'") != NULL, "[%s]", err);
    cr_assert(strstr(out, "conn_limit=0 fs_limit=2\n") != NULL, "[%s]", out);
    free(out);
    free(err);
}

Test(binding, settings_reach_an_execd_child)
{
    const char *argv[] = { t_helper("fwd_probe"), "exec", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=5", "SLUICE_FS_MAX=3", NULL };
    char *out = NULL;
    cr_assert_eq(t_run(argv, env, true, 5000, &out, NULL), 0);
    cr_assert_str_eq(out, "conn_limit=5 fs_limit=3\n");
    free(out);
    /* Bare, the child is not governed: the probe can tell the difference. */
    cr_assert_eq(t_run(argv, env, false, 5000, &out, NULL), 0);
    cr_assert_str_eq(out, "no sluice\n");
    free(out);
}

/* nginx wipes its workers' environment after fork: settings were read once,
 * at load, and stay in force. */
Test(binding, a_forked_child_keeps_settings_after_clearenv)
{
    const char *argv[] = { t_helper("fwd_probe"), "fork-clearenv", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=5", "SLUICE_FS_MAX=3", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 5000, &out, &err), 0, "[%s]", err);
    cr_assert_str_eq(out, "child env wiped; conn_limit=5 fs_limit=3\n");
    free(out);
    free(err);
}

static const char *const fortified[] = {
    "__read_chk", "__pread_chk", "__open_2", "__openat_2", "__recv_chk", "__recvfrom_chk",
    "__poll_chk", "__ppoll_chk", "__fread_chk", "__fgets_chk", "__fprintf_chk",
};
#define NFORTIFIED (sizeof fortified / sizeof fortified[0])

Test(binding, fortified_entry_points_bind_to_sluice)
{
    /* The helper, built with -O2 -D_FORTIFY_SOURCE=2, imports the checked forms. */
    const char *nm[] = { "nm", "-D", "--undefined-only", t_helper("fwd_fortified"), NULL };
    char *syms = NULL;
    cr_assert_eq(t_run(nm, NULL, false, 5000, &syms, NULL), 0);
    for (size_t i = 0; i < NFORTIFIED; i++) {
        char versioned[64], plain[64];   /* plain: a sanitized build's runtime defines some */
        snprintf(versioned, sizeof versioned, " %s@", fortified[i]);
        snprintf(plain, sizeof plain, " %s\n", fortified[i]);
        cr_assert(strstr(syms, versioned) != NULL || strstr(syms, plain) != NULL,
                  "helper does not import %s: [%s]", fortified[i], syms);
    }
    free(syms);

    /* Each of them resolves to libsluice.so's definition, and works. */
    struct ld_debug dbg;
    ld_debug_start(&dbg);
    const char *argv[] = { t_helper("fwd_fortified"), NULL };
    const char *env[] = { "LD_DEBUG=bindings", dbg.output_var, "SLUICE_FS_MAX=2",
                          "SLUICE_WRITE_HIGH=64K", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 10000, &out, NULL), 0, "[%s]", out);
    err = ld_debug_collect(&dbg);
    cr_assert_str_eq(out, "fortified ok\n");
    for (size_t i = 0; i < NFORTIFIED; i++) {
        char sym[64];
        snprintf(sym, sizeof sym, "`%s'", fortified[i]);
        cr_assert(binds_to_sluice(err, "fwd_fortified [0] to ", sym),
                  "%s did not bind to libsluice.so", fortified[i]);
    }
    free(out);
    free(err);

    /* Bare, they bind to libc: the check above can fail. */
    ld_debug_start(&dbg);
    cr_assert_eq(t_run(argv, env, false, 10000, &out, NULL), 0);
    err = ld_debug_collect(&dbg);
    cr_assert(!line_with(err, "fwd_fortified [0] to ", "libsluice.so", "`__read_chk'"));
    cr_assert(line_with(err, "fwd_fortified [0] to ", "libc.so", "`__read_chk'"));
    free(out);
    free(err);
}
