/* test_cancel.c — a thread blocked in one of sluice's waits ends when another
 * cancels it (pthread_cancel), as it would in the real call, and whatever the
 * wait stood in line for is left as it was: the slot, the token, the stream.
 * Each test runs cancel_waits (tests/helpers) in one mode. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static void cancelled_cleanly(const char *mode, const char *const *env)
{
    /* ASan does not follow a cancelled thread's unwinding out of a signal
     * frame: the frames it skips stay poisoned, and its own sigaltstack
     * interceptor then reports a stack overflow at the thread's end (its
     * report says so: "may be a false positive if your program uses some
     * custom stack unwind mechanism"). The plain build runs these. */
    const char *runtime = getenv("SANITIZER_RUNTIME_FOR_TESTS");
    if (runtime != NULL && strstr(runtime, "asan") != NULL)
        cr_skip_test("thread cancellation is not checked under ASan (false stack reports)");
    const char *argv[] = { t_helper("cancel_waits"), mode, "/tmp", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 30000, &out, &err);
    cr_assert(strstr(out, "stuck") == NULL,
              "%s: the cancelled thread did not end (join timed out) [%s] [%s]", mode, out, err);
    cr_assert_eq(rc, 0, "%s: exit %d [%s] [%s]", mode, rc, out, err);
    int ms = -1;
    const char *j = strstr(out, "joined ");
    cr_assert(j != NULL && sscanf(j, "joined %d", &ms) == 1, "%s: [%s]", mode, out);
    cr_assert_lt(ms, 1000, "%s: the cancelled thread took %d ms to end", mode, ms);
    cr_assert(strstr(out, "after ok\n") != NULL, "%s: what it waited for is lost [%s]", mode, out);
    cr_assert(strstr(out, "gauges in_flight=0 fs_in_use=0\n") != NULL, "%s: [%s]", mode, out);
    free(out);
    free(err);
}

Test(cancel, a_paused_blocking_accept_is_cancelled, .timeout = 40)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", NULL };
    cancelled_cleanly("accept", env);
}

Test(cancel, a_read_waiting_for_a_slot_on_an_idle_connection_is_cancelled, .timeout = 40)
{
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_IDLE=free", NULL };
    cancelled_cleanly("idle", env);
}

Test(cancel, a_pread_waiting_for_a_filesystem_token_is_cancelled, .timeout = 40)
{
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    cancelled_cleanly("fs", env);
}

Test(cancel, an_fread_waiting_for_a_token_is_cancelled_and_lets_the_stream_go, .timeout = 40)
{
    const char *env[] = { "SLUICE_FS_MAX=1", NULL };
    cancelled_cleanly("stdio", env);
}

Test(cancel, a_pread_waiting_for_a_host_scope_token_is_cancelled, .timeout = 40)
{
    char key[64];
    snprintf(key, sizeof key, "SLUICE_FS_KEY=cancel-%d", (int) getpid());
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_SCOPE=host", key, NULL };
    cancelled_cleanly("fs", env);
}

Test(cancel, a_write_waiting_for_its_socket_to_drain_is_cancelled, .timeout = 40)
{
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", NULL };
    cancelled_cleanly("drain", env);
}

Test(cancel, a_held_read_is_cancelled, .timeout = 40)
{
    const char *env[] = { "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1", NULL };
    cancelled_cleanly("held", env);
}

Test(cancel, a_thread_cancelled_in_the_real_call_gives_its_token_back, .timeout = 40)
{
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_TIMEOUT=500ms", NULL };
    cancelled_cleanly("pending", env);
}

Test(cancel, a_thread_cancelled_in_a_real_fread_lets_the_stream_and_token_go, .timeout = 40)
{
    const char *env[] = { "SLUICE_FS_MAX=1", "SLUICE_FS_TIMEOUT=500ms", NULL };
    cancelled_cleanly("pending-stdio", env);
}
