/* test_handlers.c — sluice's bookkeeping reached from a signal handler: a
 * close there, interrupting the same thread inside sluice's per-descriptor
 * lock (an epoll_ctl on the connection, or on the paused listener the close
 * unpauses), neither spins nor deadlocks, and the listener's registration ends
 * up as it should (shown once a slot is free). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

Test(handlers, a_close_in_a_handler_inside_the_threads_own_epoll_ctl_neither_spins_nor_deadlocks,
     .timeout = 60)
{
    const char *argv[] = { t_helper("handler_close"), "200", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=1", NULL };
    char *out = NULL, *err = NULL;
    uint64_t t0 = t_now_ms();
    int rc = t_run(argv, env, true, 20000, &out, &err);
    uint64_t ms = t_now_ms() - t0;
    cr_assert_eq(rc, 0, "exit %d after %llu ms (a spin or deadlock ends by alarm) [%s] [%s]", rc,
                 (unsigned long long) ms, out, err);
    cr_assert(strstr(out, "rounds 200 handler_closes ") != NULL, "[%s]", out);
    int closes = atoi(strstr(out, "handler_closes ") + strlen("handler_closes "));
    cr_assert_gt(closes, 100, "the handler closed only %d of 200 connections: [%s]", closes, out);
    cr_assert_lt(ms, 10000, "200 rounds took %llu ms", (unsigned long long) ms);
    free(out);
    free(err);
}
