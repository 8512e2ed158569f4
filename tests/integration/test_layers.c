/* test_layers.c — the rooms of shim/ call only down (scripts/layers reads the
 * object files' symbols against shim/layers.txt), and the check itself sees an
 * upward call when there is one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static char objdir[512];

static void find_objects(void)
{
    snprintf(objdir, sizeof objdir, "%s/shim", SLUICE_BUILD_DIR);
}

static int run_check(const char *table, char **out)
{
    char *err = NULL;
    const char *argv_table[] = { "python3", t_source("scripts/layers"), "--table", table, objdir, NULL };
    const char *argv_plain[] = { "python3", t_source("scripts/layers"), objdir, NULL };
    int code = t_run(table ? argv_table : argv_plain, NULL, false, 60000, out, &err);
    free(err);
    return code;
}

Test(layers, the_checker_reports_a_call_that_goes_up, .init = find_objects)
{
    /* The real table upside down: every call between two layers now goes up. */
    char table[128];
    snprintf(table, sizeof table, "/tmp/sluice-layers-%d.txt", (int) getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "grep -v '^#' %s | grep . | tac > %s", t_source("shim/layers.txt"), table);
    cr_assert_eq(system(cmd), 0);
    char *out = NULL;
    int code = run_check(table, &out);
    unlink(table);
    cr_assert_neq(code, 0, "an upside-down table must fail:\n%s", out);
    cr_assert(strstr(out, "wrap_fd -> fdtab goes up") != NULL, "%s", out);
    free(out);
}

Test(layers, every_room_calls_only_down_and_there_is_no_circle, .init = find_objects)
{
    char *out = NULL;
    int code = run_check(NULL, &out);
    cr_assert_eq(code, 0, "%s", out);
    cr_assert(strstr(out, "0 upward; largest circle: 0 files") != NULL, "%s", out);
    free(out);
}
