/* test_launcher.c — the `sluice` launcher: every flag reaches the program as its
 * variable, bad values are refused with the library's own message, LD_PRELOAD
 * is extended rather than replaced, and commands a preload cannot reach are
 * named before they run. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice.h"
#include "testlib.h"

static const char *launcher(void)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/sluice", SLUICE_BUILD_DIR);
    return path;
}

/* "" or, in a sanitized build, "RUNTIME:": what must stay in front of the
 * library in LD_PRELOAD. */
static const char *runtime_prefix(void)
{
    static char prefix[4096];
    const char *preload = t_preload();
    size_t n = strlen(preload) - strlen(t_lib());
    snprintf(prefix, sizeof prefix, "%.*s", (int) n, preload);
    return prefix;
}

/* Runs the launcher bare: it sets LD_PRELOAD itself (behind a sanitizer
 * runtime, which a sanitized build's tests put there first). */
static int run_launcher_at(const char *path, const char *const *args, const char *const *env,
                           char **out, char **err)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = path;
    for (int i = 0; args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    static char runtime_var[4200];
    const char *env_all[16];
    int k = 0;
    bool sets_preload = false;
    for (int i = 0; env != NULL && env[i] != NULL && k < 14; i++) {
        env_all[k++] = env[i];
        sets_preload |= strncmp(env[i], "LD_PRELOAD=", 11) == 0;
    }
    if (!sets_preload && runtime_prefix()[0] != '\0') {
        snprintf(runtime_var, sizeof runtime_var, "LD_PRELOAD=%.*s",
                 (int) strlen(runtime_prefix()) - 1, runtime_prefix());
        env_all[k++] = runtime_var;
    }
    env_all[k] = NULL;
    return t_run(argv, env_all, false, 10000, out, err);
}

static int run_launcher(const char *const *args, const char *const *env, char **out, char **err)
{
    return run_launcher_at(launcher(), args, env, out, err);
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

struct flag_case { const char *flag; const char *value; const char *expect; };

/* The host budget's key is this run's own: a test run beside another build of
 * the library must not meet that build's state file. */
static char fs_key[32], fs_key_line[48];

static const struct flag_case flags[] = {
    { "--conn-max", "7", "SLUICE_CONN_MAX=7" },
    { "--conn-mode", "shed", "SLUICE_CONN_MODE=shed" },
    { "--conn-idle", "free", "SLUICE_CONN_IDLE=free" },
    { "--shed", "http429", "SLUICE_SHED=http429" },
    { "--retry-after", "5", "SLUICE_RETRY_AFTER=5" },
    { "--backlog", "64", "SLUICE_BACKLOG=64" },
    { "--ports", "8080,8443", "SLUICE_CONN_PORTS=8080,8443" },
    { "--write-high", "64K", "SLUICE_WRITE_HIGH=64K" },
    { "--write-timeout", "250ms", "SLUICE_WRITE_TIMEOUT=250ms" },
    { "--hold-reads", NULL, "SLUICE_HOLD_READS=1" },
    { "--fs-max", "4", "SLUICE_FS_MAX=4" },
    { "--fs-scope", "host", "SLUICE_FS_SCOPE=host" },
    { "--fs-key", fs_key, fs_key_line },
    { "--fs-timeout", "2s", "SLUICE_FS_TIMEOUT=2s" },
    { "--stats", "/tmp/sluice-launcher-%p.prom", "SLUICE_STATS=/tmp/sluice-launcher-%p.prom" },
    { "--log", "info", "SLUICE_LOG=info" },
    { "--strict", NULL, "SLUICE_STRICT=1" },
};
#define NFLAGS (sizeof flags / sizeof flags[0])

Test(launcher, every_flag_reaches_the_program_as_its_variable)
{
    snprintf(fs_key, sizeof fs_key, "launcher-%d", (int) getpid());
    snprintf(fs_key_line, sizeof fs_key_line, "SLUICE_FS_KEY=%s", fs_key);
    const char *args[2 * NFLAGS + 4];
    int n = 0;
    for (size_t i = 0; i < NFLAGS; i++) {
        args[n++] = flags[i].flag;
        if (flags[i].value != NULL)
            args[n++] = flags[i].value;
    }
    args[n++] = "--";
    args[n++] = "env";
    args[n] = NULL;
    char *out = NULL, *err = NULL;
    int rc = run_launcher(args, NULL, &out, &err);
    cr_assert_eq(rc, 0, "exit %d, stderr [%s]", rc, err);
    for (size_t i = 0; i < NFLAGS; i++)
        cr_assert(has_line(out, flags[i].expect), "%s missing from [%s]", flags[i].expect, out);
    char expect[8400];
    char *real_lib = realpath(t_lib(), NULL);
    snprintf(expect, sizeof expect, "LD_PRELOAD=%s%s", runtime_prefix(), real_lib);
    cr_assert(has_line(out, expect), "%s missing from [%s]", expect, out);
    cr_assert_str_eq(err, "");
    char state[96];
    snprintf(state, sizeof state, "/dev/shm/sluice-%d/fs-%s", (int) getuid(), fs_key);
    unlink(state);
    free(real_lib);
    free(out);
    free(err);
}

Test(launcher, flag_equals_value_form_works_too)
{
    const char *args[] = { "--conn-max=3", "--write-high=1M", "--", "env", NULL };
    char *out = NULL;
    cr_assert_eq(run_launcher(args, NULL, &out, NULL), 0);
    cr_assert(has_line(out, "SLUICE_CONN_MAX=3"), "[%s]", out);
    cr_assert(has_line(out, "SLUICE_WRITE_HIGH=1M"), "[%s]", out);
    free(out);
}

struct bad_case { const char *flag; const char *value; const char *variable; };

static const struct bad_case bads[] = {
    { "--conn-max", "abc", "SLUICE_CONN_MAX" },
    { "--conn-max", "0", "SLUICE_CONN_MAX" },
    { "--conn-mode", "drop", "SLUICE_CONN_MODE" },
    { "--conn-idle", "maybe", "SLUICE_CONN_IDLE" },
    { "--shed", "http500", "SLUICE_SHED" },
    { "--retry-after", "-1", "SLUICE_RETRY_AFTER" },
    { "--backlog", "lots", "SLUICE_BACKLOG" },
    { "--ports", "80,,81", "SLUICE_CONN_PORTS" },
    { "--write-high", "64Q", "SLUICE_WRITE_HIGH" },
    { "--write-timeout", "2h", "SLUICE_WRITE_TIMEOUT" },
    { "--fs-max", "-3", "SLUICE_FS_MAX" },
    { "--fs-scope", "world", "SLUICE_FS_SCOPE" },
    { "--fs-key", "../etc", "SLUICE_FS_KEY" },
    { "--fs-timeout", "soon", "SLUICE_FS_TIMEOUT" },
    { "--log", "loud", "SLUICE_LOG" },
};

/* The launcher's message is the library's (same parser), naming the flag too;
 * the command never runs, and the launcher exits 125 (its own failure, as env's). */
Test(launcher, bad_values_exit_125_with_the_librarys_message)
{
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const char *args[] = { bads[i].flag, bads[i].value, "--", "/bin/echo", "ran", NULL };
        char *out = NULL, *err = NULL;
        int rc = run_launcher(args, NULL, &out, &err);
        cr_assert_eq(rc, 125, "%s %s: exit %d", bads[i].flag, bads[i].value, rc);
        cr_assert_str_eq(out, "", "%s: the command ran", bads[i].flag);
        char expect[256];
        snprintf(expect, sizeof expect, "%s='%s' is not valid: expected ", bads[i].variable,
                 bads[i].value);
        cr_assert(strncmp(err, "sluice[", 7) == 0 && strstr(err, expect) != NULL,
                  "%s: [%s]", bads[i].flag, err);
        cr_assert(strstr(err, bads[i].flag) != NULL, "flag not named: [%s]", err);

        /* Same words as the library says when given the variable directly. */
        char assign[128];
        snprintf(assign, sizeof assign, "%s=%s", bads[i].variable, bads[i].value);
        const char *env[] = { assign, NULL };
        const char *argv[] = { "/bin/true", NULL };
        char *lib_err = NULL;
        t_run(argv, env, true, 5000, NULL, &lib_err);
        const char *lib_msg = strstr(lib_err, "]: ");
        cr_assert_not_null(lib_msg, "[%s]", lib_err);
        char *cut = strstr(lib_msg, "; ");
        cr_assert_not_null(cut);
        *cut = '\0';
        cr_assert(strstr(err, lib_msg + 3) != NULL, "launcher [%s] vs library [%s]", err, lib_msg);
        free(lib_err);
        free(out);
        free(err);
    }
}

Test(launcher, usage_errors_exit_125)
{
    const char *unknown[] = { "--conn-maximum", "3", "--", "/bin/true", NULL };
    const char *missing[] = { "--conn-max", NULL };
    const char *no_command[] = { "--conn-max", "3", "--", NULL };
    const char *switch_with_value[] = { "--hold-reads=1", "--", "/bin/true", NULL };
    char *err = NULL;
    cr_assert_eq(run_launcher(unknown, NULL, NULL, &err), 125);
    cr_assert(strstr(err, "--conn-maximum") != NULL, "[%s]", err);
    free(err);
    cr_assert_eq(run_launcher(missing, NULL, NULL, &err), 125);
    free(err);
    cr_assert_eq(run_launcher(no_command, NULL, NULL, &err), 125);
    cr_assert(strstr(err, "COMMAND") != NULL, "[%s]", err);
    free(err);
    cr_assert_eq(run_launcher(switch_with_value, NULL, NULL, &err), 125);
    cr_assert(strstr(err, "takes no value") != NULL, "[%s]", err);
    free(err);
}

Test(launcher, existing_ld_preload_is_kept_behind_the_library)
{
    const char *args[] = { "--", "env", NULL };
    char existing[4200];
    snprintf(existing, sizeof existing, "LD_PRELOAD=%slibm.so.6", runtime_prefix());
    const char *env[] = { existing, NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_launcher(args, env, &out, &err), 0, "[%s]", err);
    char *real_lib = realpath(t_lib(), NULL);
    char expect[8400];
    snprintf(expect, sizeof expect, "LD_PRELOAD=%s%s:libm.so.6", runtime_prefix(), real_lib);
    cr_assert(has_line(out, expect), "%s missing from [%s]", expect, out);
    free(real_lib);
    free(out);
    free(err);
}

/* Under itself, the launcher does not preload the library twice. */
Test(launcher, nested_launcher_preloads_once)
{
    const char *args[] = { "--conn-max", "3", "--", launcher(), "--fs-max", "2", "--", "env", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_launcher(args, NULL, &out, &err), 0, "[%s]", err);
    char *real_lib = realpath(t_lib(), NULL);
    char expect[8400];
    snprintf(expect, sizeof expect, "LD_PRELOAD=%s%s", runtime_prefix(), real_lib);
    cr_assert(has_line(out, expect), "%s missing from [%s]", expect, out);
    cr_assert(has_line(out, "SLUICE_CONN_MAX=3") && has_line(out, "SLUICE_FS_MAX=2"), "[%s]", out);
    free(real_lib);
    free(out);
    free(err);
}

/* The command really runs with the library mapped into its process. */
Test(launcher, the_command_runs_with_the_library_loaded)
{
    const char *args[] = { "--conn-max", "2", "--", "/bin/sh", "-c",
                           "grep -c libsluice.so /proc/$$/maps", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_launcher(args, NULL, &out, &err), 0, "[%s]", err);
    cr_assert_gt(atoi(out), 0, "[%s]", out);
    free(out);
    free(err);
}

static bool have_static_libc(void)
{
    return access("/usr/lib/x86_64-linux-gnu/libc.a", R_OK) == 0
           || access("/usr/lib/aarch64-linux-gnu/libc.a", R_OK) == 0 || access("/usr/lib/libc.a", R_OK) == 0;
}

Test(launcher, warns_for_a_static_binary)
{
    if (!have_static_libc())
        cr_skip_test("no libc.a to link a static binary with");
    char dir[] = "/tmp/sluice-launcher-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char src[256], bin[256], cmd[1024];
    snprintf(src, sizeof src, "%s/s.c", dir);
    snprintf(bin, sizeof bin, "%s/static-hello", dir);
    FILE *f = fopen(src, "w");
    fputs("#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cc -static -o %s %s", bin, src);
    cr_assert_eq(system(cmd), 0);
    const char *args[] = { "--conn-max", "2", "--", bin, NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(run_launcher(args, NULL, &out, &err), 0);
    cr_assert_str_eq(out, "hello\n");
    cr_assert(strstr(err, "statically linked") != NULL, "[%s]", err);
    cr_assert(strstr(err, "warning") != NULL, "[%s]", err);
    free(out);
    free(err);
    /* A dynamic program gets no warning. */
    const char *dyn[] = { "--", "/bin/true", NULL };
    cr_assert_eq(run_launcher(dyn, NULL, NULL, &err), 0);
    cr_assert_str_eq(err, "");
    free(err);
    unlink(bin);
    unlink(src);
    rmdir(dir);
}

Test(launcher, warns_for_a_setuid_program)
{
    char dir[] = "/tmp/sluice-launcher-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755);
    char bin[256];
    snprintf(bin, sizeof bin, "%s/setuid-true", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp /bin/true %s", bin);
    cr_assert_eq(system(cmd), 0);
    /* Owned by someone else, so the loader would start it in secure mode. */
    uid_t other = getuid() == 0 ? 65534 : getuid();
    if (getuid() == 0)
        cr_assert_eq(chown(bin, other, (gid_t) -1), 0);
    cr_assert_eq(chmod(bin, 04755), 0);
    const char *args[] = { "--", bin, NULL };
    char *err = NULL;
    int rc = run_launcher(args, NULL, NULL, &err);
    if (getuid() != 0) {
        /* Our own set-uid file runs with our own uid: no secure mode, no warning. */
        cr_assert_eq(rc, 0);
        cr_assert_str_eq(err, "");
    } else {
        cr_assert_eq(rc, 0);
        cr_assert(strstr(err, "set-uid") != NULL, "[%s]", err);
    }
    free(err);
    unlink(bin);
    rmdir(dir);
}

/* A Go binary is recognised by its build-ID note; faked here with objcopy. */
Test(launcher, warns_for_a_go_binary)
{
    char dir[] = "/tmp/sluice-launcher-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char bin[256], note[256], cmd[1024];
    snprintf(bin, sizeof bin, "%s/go-like", dir);
    snprintf(note, sizeof note, "%s/note", dir);
    FILE *f = fopen(note, "w");
    fputs("Go build ID: \"fake\"", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "objcopy --add-section .note.go.buildid=%s /bin/true %s", note, bin);
    if (system(cmd) != 0)
        cr_skip_test("objcopy not available");
    const char *args[] = { "--", bin, NULL };
    char *err = NULL;
    cr_assert_eq(run_launcher(args, NULL, NULL, &err), 0);
    cr_assert(strstr(err, "Go program") != NULL, "[%s]", err);
    free(err);
    unlink(bin);
    unlink(note);
    rmdir(dir);
}

Test(launcher, help_and_version)
{
    const char *help[] = { "--help", NULL };
    const char *version[] = { "--version", NULL };
    char *out = NULL;
    cr_assert_eq(run_launcher(help, NULL, &out, NULL), 0);
    const char *every[] = { "--conn-max", "--conn-mode", "--conn-idle", "--shed", "--retry-after",
                            "--backlog", "--ports", "--write-high", "--write-timeout",
                            "--hold-reads", "--fs-max", "--fs-scope", "--fs-key", "--fs-timeout",
                            "--stats", "--log", "--strict", "--version", "COMMAND" };
    for (size_t i = 0; i < sizeof every / sizeof every[0]; i++)
        cr_assert(strstr(out, every[i]) != NULL, "--help does not mention %s", every[i]);
    free(out);
    cr_assert_eq(run_launcher(version, NULL, &out, NULL), 0);
    cr_assert_str_eq(out, "sluice " SLUICE_VERSION "\n");
    free(out);
}

/* Installed, the launcher finds the library where `make install` put it. */
Test(launcher, installed_launcher_finds_the_installed_library)
{
    if (strstr(SLUICE_BUILD_DIR, "/build-") != NULL)
        cr_skip_test("sanitized build: make install builds the plain library");
    char prefix[] = "/tmp/sluice-install-XXXXXX";
    cr_assert_not_null(mkdtemp(prefix));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "make -s -C %s install PREFIX=%s >/dev/null", SLUICE_SOURCE_DIR, prefix);
    cr_assert_eq(system(cmd), 0);
    char installed[256], lib[256];
    snprintf(installed, sizeof installed, "%s/bin/sluice", prefix);
    snprintf(lib, sizeof lib, "LD_PRELOAD=%s/lib/libsluice.so\n", prefix);
    const char *argv[] = { installed, "--", "env", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, NULL, false, 10000, &out, &err), 0, "[%s]", err);
    cr_assert(strstr(out, lib) != NULL, "%s not in [%s]", lib, out);
    free(out);
    free(err);
    /* Without any library to find, it says so and runs nothing. */
    snprintf(cmd, sizeof cmd, "rm -f %s/lib/libsluice.so", prefix);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(t_run(argv, NULL, false, 10000, &out, &err), 125);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "cannot find libsluice.so") != NULL, "[%s]", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "rm -rf %s", prefix);
    cr_assert_eq(system(cmd), 0);
}

/* A copy of the launcher and the library in DIR (made here), as an
 * installation under an awkward path would be. */
static void install_copy(const char *dir, bool real_library)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/sluice' && %s '%s/libsluice.so'", dir,
             launcher(), dir, real_library ? "cp '" SLUICE_BUILD_DIR "/libsluice.so'" : "echo junk >",
             dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void remove_tree(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* The loader splits LD_PRELOAD at spaces and colons: such a library path
 * used to run the command ungoverned, --strict or not, with exit 0. */
Test(launcher, a_library_path_with_a_space_or_colon_is_refused)
{
    const char *names[] = { "with space", "with:colon", "with\ttab", "with$PLATFORM" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char dir[256], path[300];
        snprintf(dir, sizeof dir, "/tmp/sluice-launcher-%d/%s", (int) getpid(), names[i]);
        install_copy(dir, true);
        snprintf(path, sizeof path, "%s/sluice", dir);
        const char *args[] = { "--conn-max", "2", "--strict", "--", "/bin/echo", "ran", NULL };
        char *out = NULL, *err = NULL;
        int rc = run_launcher_at(path, args, NULL, &out, &err);
        cr_assert_eq(rc, 125, "%s: exit %d, out [%s], err [%s]", names[i], rc, out, err);
        cr_assert_str_eq(out, "", "%s: the command ran", names[i]);
        cr_assert(strstr(err, "splits LD_PRELOAD") != NULL, "%s: [%s]", names[i], err);
        cr_assert(strchr(err, '\t') == NULL, "the path is shown escaped: [%s]", err);
        free(out);
        free(err);
    }
    char top[128];
    snprintf(top, sizeof top, "/tmp/sluice-launcher-%d", (int) getpid());
    remove_tree(top);
}

/* An exported CDPATH used to make `cd` print a directory into the library's
 * path (LD_PRELOAD held two lines: nothing preloaded, --strict bypassed). */
Test(launcher, an_exported_cdpath_does_not_change_the_library_path)
{
    char cmd[8192];
    const char *build = strrchr(SLUICE_BUILD_DIR, '/') + 1;
    snprintf(cmd, sizeof cmd,
             "cd '" SLUICE_BUILD_DIR "/..' && CDPATH=.:/tmp exec %s/sluice --conn-max 2 --strict -- "
             "/bin/sh -c 'printf \"%%s\\n\" \"$LD_PRELOAD\"; grep -c libsluice.so /proc/$$/maps'",
             build);
    const char *args[] = { "-c", cmd, NULL };
    char *out = NULL, *err = NULL;
    int rc = run_launcher_at("/bin/sh", args, NULL, &out, &err);
    cr_assert_eq(rc, 0, "exit %d, err [%s]", rc, err);
    char *real_lib = realpath(t_lib(), NULL);
    char expect[8400];
    snprintf(expect, sizeof expect, "%s%s\n", runtime_prefix(), real_lib);
    cr_assert(strncmp(out, expect, strlen(expect)) == 0, "LD_PRELOAD [%s], expected [%s]", out, expect);
    cr_assert_gt(atoi(out + strlen(expect)), 0, "library not mapped: [%s]", out);
    cr_assert_str_eq(err, "");
    free(real_lib);
    free(out);
    free(err);
}

/* A library that cannot be loaded used to pass the check (the loader only
 * warns), and the command ran ungoverned. */
Test(launcher, a_library_that_cannot_load_is_refused)
{
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "/tmp/sluice-launcher-junk-%d", (int) getpid());
    install_copy(dir, false);
    snprintf(path, sizeof path, "%s/sluice", dir);
    const char *args[] = { "--conn-max", "2", "--", "/bin/echo", "ran", NULL };
    char *out = NULL, *err = NULL;
    int rc = run_launcher_at(path, args, NULL, &out, &err);
    cr_assert_eq(rc, 125, "exit %d, out [%s], err [%s]", rc, out, err);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "could not be loaded") != NULL, "[%s]", err);
    free(out);
    free(err);
    remove_tree(dir);
}

/* The settings check used to run the library for real: its own stats file
 * (two files per run), its own share of a host budget. */
Test(launcher, the_settings_check_writes_nothing)
{
    char dir[128], stats[200];
    snprintf(dir, sizeof dir, "/tmp/sluice-launcher-stats-%d", (int) getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(stats, sizeof stats, "%s/s-%%p.prom", dir);
    const char *args[] = { "--stats", stats, "--", "/bin/true", NULL };
    char *err = NULL;
    cr_assert_eq(run_launcher(args, NULL, NULL, &err), 0, "[%s]", err);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls '%s'", dir);
    const char *ls[] = { "/bin/sh", "-c", cmd, NULL };
    char *listing = NULL;
    cr_assert_eq(t_run(ls, NULL, false, 5000, &listing, NULL), 0);
    /* Only the command's own file, s-PID.prom (and any temp file of its
     * own, s-PID.prom.tmp.*, which the stats writer owns): one pid. */
    char first[64] = "";
    int files = 0;
    for (char *line = strtok(listing, "\n"); line != NULL; line = strtok(NULL, "\n"), files++) {
        size_t n = strcspn(line, ".");
        if (first[0] == '\0')
            snprintf(first, sizeof first, "%.*s.", (int) n, line);
        cr_assert(strncmp(line, first, strlen(first)) == 0, "files of two processes: %s and %s", first,
                  line);
    }
    cr_assert_gt(files, 0, "the command wrote no stats file");
    free(listing);
    free(err);
    remove_tree(dir);
}

Test(launcher, its_own_messages_show_control_bytes_escaped)
{
    const char *args[] = { "--conn\x1b[31m\nsluice[1]: x", "--", "/bin/true", NULL };
    char *err = NULL;
    cr_assert_eq(run_launcher(args, NULL, NULL, &err), 125);
    cr_assert(strstr(err, "unknown option --conn?[31m?sluice[1]: x\n") != NULL, "[%s]", err);
    free(err);
}
