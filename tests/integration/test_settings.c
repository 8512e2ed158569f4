/* test_settings.c — bad input through the real library: one line naming the
 * variable, the value and the accepted form; the program runs on; strict exits 2. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
