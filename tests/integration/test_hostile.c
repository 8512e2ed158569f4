/* test_hostile.c — what careless or hostile programs do to a governed server:
 * close every descriptor (sluice's own included) while paused, live at the
 * edge of EMFILE while paused, take a flood of connections in shed mode, and
 * spawn children with vfork/posix_spawn under every gate. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

/* Reads p's stdout until it holds `want` (bounded); keeps what it read in acc. */
static bool wait_output(struct t_proc *p, char *acc, size_t cap, const char *want, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    size_t len = strlen(acc);
    while (strstr(acc, want) == NULL) {
        int left = (int) (end - t_now_ms());
        if (left <= 0)
            return false;
        char *more = t_slurp_some(p->out_fd, left);
        size_t n = strlen(more);
        if (len + n >= cap)
            n = cap - len - 1;
        memcpy(acc + len, more, n);
        len += n;
        acc[len] = '\0';
        free(more);
    }
    return true;
}

static char port_text[16];

static const char *port_arg(int port)
{
    snprintf(port_text, sizeof port_text, "%d", port);
    return port_text;
}

/* CPU ticks (1/100 s) the process used over ms milliseconds. */
static long cpu_over(pid_t pid, int ms)
{
    long before = t_cpu_ticks(pid);
    t_sleep_ms(ms);
    return t_cpu_ticks(pid) - before;
}

Test(hostile, closing_every_descriptor_while_paused_neither_spins_nor_leaks)
{
    int port = t_free_port();
    const char *argv[] = { t_helper("hostile_server"), port_arg(port), "closeall", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=2", NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000));
    char out[4096] = "";
    int c[8];
    for (int i = 0; i < 4; i++)
        c[i] = t_connect(port);
    cr_assert(wait_output(&srv, out, sizeof out, "accepted 2", 3000), "[%s]", out);
    t_sleep_ms(300);
    cr_assert_null(strstr(out, "accepted 3"), "the limit was not kept: [%s]", out);
    /* The program closes everything from 3 up, sluice's own descriptors too. */
    kill(srv.pid, SIGUSR1);
    cr_assert(wait_output(&srv, out, sizeof out, "reopened", 3000), "[%s]", out);
    for (int i = 0; i < 4; i++)
        close(c[i]);
    /* Its two connections went with the close_range: both slots are free. */
    for (int i = 4; i < 7; i++)
        c[i] = t_connect(port);
    cr_assert(wait_output(&srv, out, sizeof out, "accepted 4", 3000), "slots leaked: [%s]", out);
    t_sleep_ms(300);
    cr_assert_null(strstr(out, "accepted 5"), "the limit was lost: [%s]", out);
    long ticks = cpu_over(srv.pid, 1000);
    cr_assert_leq(ticks, 10, "paused server used %ld ticks in 1 s", ticks);
    close(c[4]);
    cr_assert(wait_output(&srv, out, sizeof out, "accepted 5", 3000), "no wake after a close: [%s]", out);
    for (int i = 5; i < 7; i++)
        close(c[i]);
    t_stop(&srv, 1000);
}

static long paused_ticks_at_the_edge_of_emfile(bool preload, char *out, size_t cap)
{
    int port = t_free_port();
    const char *argv[] = { t_helper("hostile_server"), port_arg(port), "emfile", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=2", NULL };
    struct t_proc srv = t_spawn(argv, preload ? env : NULL, preload);
    cr_assert(t_wait_listening(port, 5000));
    int c[10];
    for (int i = 0; i < 10; i++)
        c[i] = t_connect(port);
    cr_assert(wait_output(&srv, out, cap, "accepted 2", 3000), "[%s]", out);
    t_sleep_ms(300);
    long ticks = cpu_over(srv.pid, 1000);
    for (int i = 0; i < 10; i++)
        close(c[i]);
    t_stop(&srv, 1000);
    return ticks;
}

Test(hostile, a_server_out_of_descriptors_while_paused_does_not_spin)
{
    char out[4096] = "";
    long bare = paused_ticks_at_the_edge_of_emfile(false, out, sizeof out);
    out[0] = '\0';
    long governed = paused_ticks_at_the_edge_of_emfile(true, out, sizeof out);
    cr_assert_null(strstr(out, "accepted 3"), "the limit was not kept: [%s]", out);
    /* Bare, the level-triggered listener stays ready while accept fails with
     * EMFILE: the loop spins. Paused under sluice, it sleeps. */
    cr_assert_geq(bare, 50, "bare server did not spin (%ld ticks): the scenario is wrong", bare);
    cr_assert_leq(governed, 10, "paused server used %ld ticks in 1 s", governed);
}

Test(hostile, a_flood_of_ten_thousand_connections_in_shed_mode)
{
    int port = t_free_port();
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    const char *argv[] = { t_helper("conn_epoll"), portbuf, "lt", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_MODE=shed", NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    cr_assert(t_wait_listening(port, 5000));
    int held[4];
    for (int i = 0; i < 4; i++)
        held[i] = t_connect(port);
    char out[65536] = "";
    cr_assert(wait_output(&srv, out, sizeof out, "accepted 4", 3000), "[%s]", out);
    const char *flood[] = { t_helper("flood_client"), portbuf, "10000", "200", NULL };
    char *fout = NULL;
    int rc = t_run(flood, NULL, false, 90000, &fout, NULL);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(fout, "answered 10000 reset 0 other 0\n");
    cr_assert_eq(kill(srv.pid, 0), 0, "the server died");
    t_sleep_ms(200);
    char *more = t_slurp_some(srv.out_fd, 200);
    cr_assert_null(strstr(more, "accepted 5"), "the program saw a shed connection: [%s]", more);
    free(more);
    free(fout);
    for (int i = 0; i < 4; i++)
        close(held[i]);
    t_stop(&srv, 1000);
}

Test(hostile, vfork_and_posix_spawn_under_every_gate)
{
    const char *script =
        "import os, subprocess\n"
        "n = 0\n"
        "for i in range(40):\n"
        "    pid = os.posix_spawn('/bin/true', ['true'], os.environ)\n"
        "    n += os.waitpid(pid, 0)[1] == 0\n"
        "    n += subprocess.run(['/bin/true']).returncode == 0\n"
        "    n += subprocess.run(['/bin/cat', '/etc/hostname'], capture_output=True).returncode == 0\n"
        "print('ok', n)\n";
    const char *argv[] = { "/usr/bin/python3", "-c", script, NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_WRITE_HIGH=64K", "SLUICE_HOLD_READS=1",
                          "SLUICE_FS_MAX=1", NULL };
    char *out = NULL, *err = NULL;
    int rc = t_run(argv, env, true, 60000, &out, &err);
    cr_assert_eq(rc, 0, "[%s]", err);
    cr_assert_str_eq(out, "ok 120\n", "[%s]", err);
    free(out);
    free(err);
}
