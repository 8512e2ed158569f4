/* test_settings.c — bad input through the real library: one line naming the
 * variable, the value and the accepted form; the program runs on; strict exits 2. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

struct bad { const char *assign; const char *name; const char *form_word; };

static const struct bad bads[] = {
    { "SLUICE_CONN_MAX=abc", "SLUICE_CONN_MAX", "whole number" },
    { "SLUICE_CONN_MAX=0", "SLUICE_CONN_MAX", "whole number" },
    { "SLUICE_CONN_MAX=1000001", "SLUICE_CONN_MAX", "whole number" },
    { "SLUICE_CONN_MODE=drop", "SLUICE_CONN_MODE", "pause or shed" },
    { "SLUICE_CONN_IDLE=maybe", "SLUICE_CONN_IDLE", "hold or free" },
    { "SLUICE_SHED=http500", "SLUICE_SHED", "http503" },
    { "SLUICE_RETRY_AFTER=-1", "SLUICE_RETRY_AFTER", "seconds" },
    { "SLUICE_BACKLOG=lots", "SLUICE_BACKLOG", "whole number" },
    { "SLUICE_CONN_PORTS=80,,81", "SLUICE_CONN_PORTS", "ports" },
    { "SLUICE_WRITE_HIGH=64Q", "SLUICE_WRITE_HIGH", "size" },
    { "SLUICE_WRITE_HIGH=2G", "SLUICE_WRITE_HIGH", "below 2G" },
    { "SLUICE_WRITE_HIGH=1.5G", "SLUICE_WRITE_HIGH", "size" },
    { "SLUICE_WRITE_TIMEOUT=2h", "SLUICE_WRITE_TIMEOUT", "duration" },
    { "SLUICE_HOLD_READS=maybe", "SLUICE_HOLD_READS", "1 or 0" },
    { "SLUICE_FS_MAX=-3", "SLUICE_FS_MAX", "whole number" },
    { "SLUICE_FS_SCOPE=world", "SLUICE_FS_SCOPE", "process or host" },
    { "SLUICE_FS_KEY=../etc", "SLUICE_FS_KEY", "letters" },
    { "SLUICE_FS_TIMEOUT=soon", "SLUICE_FS_TIMEOUT", "duration" },
    { "SLUICE_STATS=", "SLUICE_STATS", "path" },
    { "SLUICE_STATS_INTERVAL=0", "SLUICE_STATS_INTERVAL", "duration" },
    { "SLUICE_LOG=loud", "SLUICE_LOG", "error, warn" },
};

Test(settings, each_bad_value_gets_one_clear_line_and_the_program_runs_on)
{
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const char *argv[] = { "/bin/sh", "-c", "echo ran", NULL };
        const char *env[] = { bads[i].assign, NULL };
        char *out = NULL, *err = NULL;
        int rc = t_run(argv, env, true, 5000, &out, &err);
        cr_assert_eq(rc, 0, "%s: exit %d", bads[i].assign, rc);
        cr_assert_str_eq(out, "ran\n", "%s: program output changed", bads[i].assign);
        cr_assert_eq(count_lines(err), 1, "%s: stderr was [%s]", bads[i].assign, err);
        cr_assert(strncmp(err, "sluice[", 7) == 0, "%s: [%s]", bads[i].assign, err);
        cr_assert(strstr(err, bads[i].name) != NULL, "%s: [%s]", bads[i].assign, err);
        const char *value = strchr(bads[i].assign, '=') + 1;
        char quoted[256];
        snprintf(quoted, sizeof quoted, "'%s'", value);
        cr_assert(strstr(err, quoted) != NULL, "%s: value not named in [%s]", bads[i].assign, err);
        cr_assert(strstr(err, bads[i].form_word) != NULL, "%s: form not named in [%s]",
                  bads[i].assign, err);
        free(out);
        free(err);
    }
}

Test(settings, strict_exits_with_status_2)
{
    const char *argv[] = { "/bin/sh", "-c", "echo ran", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=abc", "SLUICE_STRICT=1", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 5000, &out, &err);
    cr_assert_eq(rc, 2);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "SLUICE_CONN_MAX") != NULL);
}

Test(settings, good_values_say_nothing)
{
    const char *argv[] = { "/bin/sh", "-c", "echo ran", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_WRITE_HIGH=64K", "SLUICE_FS_MAX=8",
                          "SLUICE_WRITE_TIMEOUT=250ms", "SLUICE_CONN_PORTS=8080,8443",
                          "SLUICE_FS_KEY=build-1", "SLUICE_LOG=warn", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 5000, &out, &err);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "ran\n");
    cr_assert_str_eq(err, "");
}

Test(settings, a_misspelt_name_is_reported)
{
    const char *argv[] = { "/bin/true", NULL };
    const char *env[] = { "SLUICE_CONNMAX=4", NULL };
    char *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 5000, NULL, &err), 0);
    cr_assert(strstr(err, "SLUICE_CONNMAX") != NULL, "[%s]", err);
}

/* Runs /bin/sh -c 'echo ran' preloaded with env; returns stderr (caller frees). */
static char *stderr_of(const char *const *env, int *rc)
{
    const char *argv[] = { "/bin/sh", "-c", "echo ran", NULL };
    char *out = NULL, *err = NULL;
    *rc = t_run(argv, env, true, 5000, &out, &err);
    free(out);
    return err;
}

/* Every byte a message adds is printable ASCII; the only newline ends it. */
static void assert_one_clean_line(const char *err, const char *what)
{
    size_t n = strlen(err);
    cr_assert(n > 0 && err[n - 1] == '\n', "%s: no line", what);
    for (size_t i = 0; i + 1 < n; i++)
        cr_assert(err[i] >= 0x20 && err[i] < 0x7f, "%s: byte 0x%02x at %zu in [%s]", what,
                  (unsigned char) err[i], i, err);
}

Test(settings, a_value_cannot_forge_a_log_line_or_send_escapes)
{
    const char *env[] = { "SLUICE_CONN_MAX=5\nsluice[1]: all gates on\x1b[31m\xc2\x9b", NULL };
    int rc;
    char *err = stderr_of(env, &rc);
    cr_assert_eq(rc, 0);
    assert_one_clean_line(err, "value");
    cr_assert(strstr(err, "'5\\nsluice[1]: all gates on\\x1b[31m\\xc2\\x9b' is not valid") != NULL,
              "[%s]", err);
    free(err);
}

Test(settings, a_misspelt_name_cannot_forge_a_log_line)
{
    const char *env[] = { "SLUICE_CONN\nsluice[1]: ok\x1b]0;pwned\x07=4", NULL };
    int rc;
    char *err = stderr_of(env, &rc);
    cr_assert_eq(rc, 0);
    assert_one_clean_line(err, "name");
    cr_assert(strstr(err, "unknown setting SLUICE_CONN\\nsluice[1]: ok\\x1b]0;pwned\\x07 ignored")
              != NULL, "[%s]", err);
    free(err);
}

/* A 128 KiB value used to be cut at 511 bytes with no marker, losing the
 * accepted form. */
Test(settings, a_huge_value_is_cut_visibly_and_the_accepted_form_survives)
{
    size_t n = 131000;   /* under the kernel's 128 KiB limit for one string */
    char *assign = malloc(n + 32);
    strcpy(assign, "SLUICE_CONN_MAX=");
    memset(assign + strlen(assign), '9', n);
    assign[16 + n] = '\0';
    const char *env[] = { assign, NULL };
    int rc;
    char *err = stderr_of(env, &rc);
    cr_assert_eq(rc, 0);
    assert_one_clean_line(err, "huge");
    cr_assert(strstr(err, "...(131000 bytes)' is not valid: expected a whole number from 1 to "
                          "1000000, auto, or auto:CEILING such as auto:200; SLUICE_CONN_MAX stays off\n")
              != NULL, "[%.600s]", err);
    cr_assert_lt(strlen(err), 400);
    free(err);
    free(assign);
}

struct dflt { const char *assign; const char *says; };

static const struct dflt defaults[] = {
    { "SLUICE_CONN_MODE=drop", "SLUICE_CONN_MODE keeps its default, pause" },
    { "SLUICE_CONN_IDLE=maybe", "SLUICE_CONN_IDLE keeps its default, hold" },
    { "SLUICE_SHED=http500", "SLUICE_SHED keeps its default, http503" },
    { "SLUICE_RETRY_AFTER=-1", "SLUICE_RETRY_AFTER keeps its default, 1" },
    { "SLUICE_FS_SCOPE=world", "SLUICE_FS_SCOPE keeps its default, process" },
    { "SLUICE_STATS_INTERVAL=0", "SLUICE_STATS_INTERVAL keeps its default, 1s" },
    { "SLUICE_LOG=loud", "SLUICE_LOG keeps its default, warn" },
    { "SLUICE_CONN_MAX=abc", "SLUICE_CONN_MAX stays off" },
    { "SLUICE_WRITE_HIGH=64Q", "SLUICE_WRITE_HIGH stays off" },
};

Test(settings, a_bad_value_says_whether_it_stays_off_or_keeps_its_default)
{
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        const char *env[] = { defaults[i].assign, NULL };
        int rc;
        char *err = stderr_of(env, &rc);
        cr_assert(strstr(err, defaults[i].says) != NULL, "%s: [%s]", defaults[i].assign, err);
        free(err);
    }
}

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* A bad key used to fall back, silently, to the budget every process of the
 * user shares under 'default'. */
Test(settings, a_bad_fs_key_turns_the_host_gate_off_instead_of_joining_default)
{
    char stats[128], stats_var[160];
    snprintf(stats, sizeof stats, "/tmp/sluice-settings-key-%d.prom", (int) getpid());
    snprintf(stats_var, sizeof stats_var, "SLUICE_STATS=%s", stats);
    const char *argv[] = { "/bin/cat", "/etc/hostname", NULL };
    const char *env[] = { "SLUICE_FS_MAX=2", "SLUICE_FS_SCOPE=host", "SLUICE_FS_KEY=../etc",
                          stats_var, NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 5000, &out, &err), 0);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, "SLUICE_FS_KEY='../etc' is not valid") != NULL, "[%s]", err);
    cr_assert(strstr(err, "filesystem gate stays off") != NULL, "[%s]", err);
    const char *text = slurp_file(stats);
    cr_assert_not_null(text, "no stats file");
    cr_assert(strstr(text, "\nsluice_fs_tokens_limit 0\n") != NULL, "[%s]", text);
    cr_assert(strstr(text, "\nsluice_fs_operations_total 0\n") != NULL, "[%s]", text);
    unlink(stats);
    free(out);
    free(err);
}

/* The shared budget's limit is fixed in its file: auto, which moves one
 * process's limit, runs in process scope and says so in one line. */
/* auto with a shared budget is one budget with one limit (test_autolimit.c);
 * a member whose settings disagree with the budget's file says so in one
 * line and follows the file. */
Test(settings, auto_with_host_scope_is_taken_as_it_is_and_a_disagreeing_member_says_so)
{
    char key_env[96], path[160];
    snprintf(key_env, sizeof key_env, "SLUICE_CONN_KEY=settings-auto-%d", (int) getpid());
    snprintf(path, sizeof path, "/dev/shm/sluice-%u/conn-settings-auto-%d", (unsigned) getuid(),
             (int) getpid());
    unlink(path);
    const char *argv[] = { "/bin/true", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=auto", "SLUICE_CONN_SCOPE=host", key_env, NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 5000, &out, &err), 0);
    cr_assert_str_eq(err, "", "[%s]", err);
    free(out);
    free(err);
    const char *fixed[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_SCOPE=host", key_env, NULL };
    cr_assert_eq(t_run(argv, fixed, true, 5000, &out, &err), 0);
    unlink(path);
    cr_assert_eq(count_lines(err), 1, "[%s]", err);
    cr_assert(strstr(err, "already has an auto budget, which applies") != NULL, "[%s]", err);
    free(out);
    free(err);
}

Test(settings, strict_exits_with_status_2_on_a_misspelt_name)
{
    const char *argv[] = { "/bin/sh", "-c", "echo ran", NULL };
    const char *env[] = { "SLUICE_CONNMAX=4", "SLUICE_STRICT=1", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 5000, &out, &err);
    cr_assert_eq(rc, 2, "exit %d, stderr [%s]", rc, err);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "unknown setting SLUICE_CONNMAX; the program stops (SLUICE_STRICT)") != NULL,
              "[%s]", err);
    free(out);
    free(err);
}
