/* test_forwarding.c — every row of symbols.def, driven through libffi by the
 * fwd_table helper: the wrapper and libc's function, same arguments, same
 * result and errno, on bad descriptors and again on a regular file, a socket
 * and a pipe; successful calls leave errno alone. Run with no settings and
 * with every gate on but far from binding. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static int rows_in_table(void)
{
    FILE *f = fopen(t_source("shim/symbols.def"), "r");
    cr_assert_not_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += strncmp(line, "SLUICE_SYM(", 11) == 0 || strncmp(line, "SLUICE_SYMV(", 12) == 0;
    fclose(f);
    return n;
}

static void run_table(const char *const *env, const char *stream_kind)
{
    const char *argv[] = { t_helper("fwd_table"), stream_kind, NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 20000, &out, &err);
    const char *kinds = strstr(out, "descriptor-kind calls ");
    cr_assert_not_null(kinds, "no descriptor-kind passes; stdout [%s]", out);
    int kind_calls = atoi(kinds + strlen("descriptor-kind calls "));
    /* Every input, output and sync row, on a file, a socket and a pipe. */
    cr_assert_geq(kind_calls, 3 * 36, "only %d descriptor-kind calls", kind_calls);
    const char *summary = strstr(out, "rows ");
    while (summary != NULL && strstr(summary + 1, "\nrows ") != NULL)
        summary = strstr(summary + 1, "\nrows ") + 1;
    cr_assert_not_null(summary, "no summary; stdout [%s] stderr [%s]", out, err);
    int rows = -1, compared = -1, skipped = -1, failed = -1;
    cr_assert_eq(sscanf(summary, "rows %d compared %d skipped %d failed %d", &rows, &compared,
                        &skipped, &failed), 4, "[%s]", summary);
    /* Name every difference, not just the count. */
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "FAIL", 4) == 0)
            cr_log_error("%s", line);
        else if (strncmp(line, "skip", 4) == 0)
            cr_log_info("%s", line);
    }
    cr_assert_eq(rc, 0, "fwd_table exited %d; stderr [%s]", rc, err);
    cr_assert_eq(failed, 0);
    cr_assert_eq(rows, rows_in_table(), "the helper did not see every row of symbols.def");
    cr_assert_eq(compared + skipped, rows);
    /* Skips are for functions this libc lacks; glibc 2.36 has them all. */
    cr_assert_leq(skipped, 3, "%d rows skipped", skipped);
    cr_assert_str_eq(err, "", "the library spoke: [%s]", err);
    free(out);
    free(err);
}

static const char *const gates_on[] = { "SLUICE_CONN_MAX=1000", "SLUICE_WRITE_HIGH=16M",
                                        "SLUICE_FS_MAX=1000", NULL };

Test(forwarding, every_row_forwards_exactly_with_no_settings)
{
    run_table(NULL, "devnull");
}

Test(forwarding, every_row_forwards_exactly_with_gates_on_but_not_binding)
{
    run_table(gates_on, "devnull");
}

Test(forwarding, stream_rows_on_a_regular_file_forward_exactly_with_gates_on)
{
    run_table(gates_on, "regular");
}

/* The helper really reaches libsluice.so's definitions: bare, it cannot run. */
Test(forwarding, the_table_helper_refuses_to_run_without_the_library)
{
    const char *argv[] = { t_helper("fwd_table"), NULL };
    char *err = NULL;
    cr_assert_eq(t_run(argv, NULL, false, 5000, NULL, &err), 2);
    cr_assert(strstr(err, "not loaded") != NULL, "[%s]", err);
    free(err);
}
