/* test_shed.c — shed mode under pressure, observed from outside: a blocking
 * accept keeps shedding however many come (it never sees EAGAIN); many threads
 * accepting never have more than the limit open, and none is turned away while
 * a slot is free; lingering shed sockets leave the program its descriptors
 * under a low RLIMIT_NOFILE; a client posting a huge body costs a bounded
 * amount of reading, not a core. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

#define PY "/usr/bin/python3"

/* The server a test started is stopped after the test even when a failed
 * assertion ended it early: no test leaves a server running. */
static pid_t server_pid;

static struct t_proc spawn_server(const char *const *argv, const char *const *env)
{
    struct t_proc p = t_spawn(argv, env, true);
    server_pid = p.pid;
    return p;
}

static void stop_server(struct t_proc *p)
{
    t_stop(p, 1000);
    server_pid = 0;
}

static void stop_leftover_server(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
}

TestSuite(shed, .fini = stop_leftover_server);

static char port_text[16];

static const char *port_arg(int port)
{
    snprintf(port_text, sizeof port_text, "%d", port);
    return port_text;
}

/* The first bytes a client reads (up to 15), with a bound: "hi\n" from the
 * program, "HTTP/1.1 503..." from sluice, "" on EOF or timeout. */
static void first_bytes(int s, char *out, size_t cap, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t r = recv(s, out, cap - 1, 0);
    out[r > 0 ? r : 0] = '\0';
}

static bool admitted(int s)
{
    char got[16];
    first_bytes(s, got, sizeof got, 3000);
    return strcmp(got, "hi\n") == 0;
}

static long stat_value(const char *path, const char *name)
{
    char text[8192] = "\n";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text + 1, 1, sizeof text - 2, f);
    text[n + 1] = '\0';
    fclose(f);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    return p != NULL ? atol(p + strlen(key)) : -1;
}

/* --- a blocking accept never sees EAGAIN ------------------------------------ */

Test(shed, a_blocking_accept_keeps_shedding_past_any_budget)
{
    int port = t_free_port();
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_MODE=shed", NULL };
    const char *argv[] = { PY, t_source("tests/helpers/shed_blocking.py"), port_arg(port), NULL };
    struct t_proc srv = spawn_server(argv, env);
    cr_assert(t_wait_listening(port, 5000));
    int holder = t_connect(port);
    cr_assert(admitted(holder));
    /* More than one accept call would shed in a burst before returning EAGAIN
     * to a non-blocking listener (256): a blocking one must just go on. */
    const char *flood[] = { t_helper("flood_client"), port_arg(port), "600", "64", NULL };
    char *fout = NULL;
    cr_assert_eq(t_run(flood, NULL, false, 90000, &fout, NULL), 0);
    cr_assert_eq(kill(srv.pid, 0), 0, "the server died");
    cr_assert_str_eq(fout, "answered 600 reset 0 other 0\n");
    free(fout);
    close(holder);
    int next = -1;
    bool in = false;
    for (int i = 0; i < 20 && !in; i++) {   /* the slot frees when the program closes */
        t_sleep_ms(50);
        if (next >= 0)
            close(next);
        next = t_connect(port);
        in = next >= 0 && admitted(next);
    }
    cr_assert(in, "the server no longer takes connections");
    close(next);
    kill(srv.pid, SIGTERM);
    char *err = t_slurp(srv.err_fd, 2000);
    cr_assert_null(strstr(err, "Error"), "[%s]", err);
    free(err);
    stop_server(&srv);
}

/* --- many threads accepting ---------------------------------------------------- */

static struct t_proc start_stress(int port, const char *threads, const char *mode)
{
    const char *env[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_MODE=shed", NULL };
    const char *argv[] = { t_helper("shed_stress_server"), port_arg(port), threads, mode, NULL };
    struct t_proc srv = spawn_server(argv, env);
    cr_assert(t_wait_listening(port, 5000));
    return srv;
}

/* The server's own account: "max M accepted A" at SIGTERM. */
static void stop_stress(struct t_proc *srv, int *max, int *accepted)
{
    kill(srv->pid, SIGTERM);
    char *out = t_slurp(srv->out_fd, 3000);
    const char *p = strstr(out, "max ");
    cr_assert_not_null(p, "[%s]", out);
    cr_assert_eq(sscanf(p, "max %d accepted %d", max, accepted), 2, "[%s]", out);
    free(out);
    stop_server(srv);
}

/* Asks the server for its count of open connections until it says `want`. */
static bool open_count_becomes(struct t_proc *srv, int want, int ms)
{
    char line[32];
    snprintf(line, sizeof line, "open %d\n", want);
    uint64_t end = t_now_ms() + (uint64_t) ms;
    while (t_now_ms() < end) {
        kill(srv->pid, SIGUSR1);
        char *got = t_slurp_some(srv->out_fd, 200);
        bool there = strstr(got, line) != NULL;
        free(got);
        if (there)
            return true;
        t_sleep_ms(5);
    }
    return false;
}

/* With 3 of 4 slots held, a thread pool blocked in accept must let the next
 * client in. A slot taken before a blocking accept let the kernel give the
 * connection to another thread, which shed it with a slot free (and then let
 * the one after in: "a 6th in while a 5th got its 503"). */
Test(shed, a_thread_pool_turns_no_one_away_while_a_slot_is_free)
{
    int port = t_free_port();
    struct t_proc srv = start_stress(port, "8", "blocking");
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = t_connect(port);
        cr_assert(admitted(held[i]), "holder %d was not let in", i);
    }
    int turned_away = 0;
    for (int round = 0; round < 8; round++) {
        int s = t_connect(port);
        turned_away += !admitted(s);
        close(s);
        /* Until the program has closed it (then a moment for the slot to free). */
        cr_assert(open_count_becomes(&srv, 3, 3000), "the server did not close round %d's client", round);
        t_sleep_ms(20);
    }
    cr_assert_eq(turned_away, 0, "%d of 8 clients were shed with a slot free", turned_away);
    for (int i = 0; i < 3; i++)
        close(held[i]);
    int max, accepted;
    stop_stress(&srv, &max, &accepted);
    cr_assert_leq(max, 4);
}

struct stress_clients {
    int port;
    uint64_t end;
    unsigned seed;
    _Atomic int in, shed, other, inside, inside_max;
};

/* Clients arrive and leave at random: connect, read the first answer; if let
 * in, hold 0-20 ms and close. Bounded by time and count. */
static void *stress_client(void *arg)
{
    struct stress_clients *sc = arg;
    unsigned seed = __atomic_add_fetch(&sc->seed, 7919, __ATOMIC_RELAXED);
    for (int i = 0; i < 2000 && t_now_ms() < sc->end; i++) {
        int s = t_connect(sc->port);
        if (s < 0) {
            atomic_fetch_add(&sc->other, 1);
            continue;
        }
        char got[16];
        first_bytes(s, got, sizeof got, 3000);
        if (strcmp(got, "hi\n") == 0) {
            atomic_fetch_add(&sc->in, 1);
            int now = atomic_fetch_add(&sc->inside, 1) + 1;
            int max = atomic_load(&sc->inside_max);
            while (now > max && !atomic_compare_exchange_weak(&sc->inside_max, &max, now))
                ;
            usleep((useconds_t) (rand_r(&seed) % 20000));
            atomic_fetch_sub(&sc->inside, 1);
        } else if (strncmp(got, "HTTP/1.1 503", 12) == 0) {
            atomic_fetch_add(&sc->shed, 1);
        } else {
            atomic_fetch_add(&sc->other, 1);
        }
        close(s);
        usleep((useconds_t) (rand_r(&seed) % 3000));
    }
    return NULL;
}

static void stress(const char *threads, const char *mode)
{
    int port = t_free_port();
    struct t_proc srv = start_stress(port, threads, mode);
    struct stress_clients sc = { .port = port, .end = t_now_ms() + 3000, .seed = (unsigned) getpid() };
    pthread_t t[12];
    for (int i = 0; i < 12; i++)
        pthread_create(&t[i], NULL, stress_client, &sc);
    /* Sampled from outside while it runs: the server's count of open ones. */
    int samples = 0, worst = 0;
    while (t_now_ms() < sc.end) {
        kill(srv.pid, SIGUSR1);
        char *more = t_slurp_some(srv.out_fd, 100);
        for (const char *p = more; (p = strstr(p, "open ")) != NULL; p++) {
            int k = atoi(p + 5);
            worst = k > worst ? k : worst;
            samples++;
        }
        free(more);
        t_sleep_ms(20);
    }
    for (int i = 0; i < 12; i++)
        pthread_join(t[i], NULL);
    int max, accepted;
    stop_stress(&srv, &max, &accepted);
    cr_log_info("%s x%s: in %d shed %d other %d; server max open %d, sampled worst %d in %d samples",
                mode, threads, sc.in, sc.shed, sc.other, max, worst, samples);
    cr_assert_leq(max, 4, "%s: the server had %d connections open at once", mode, max);
    cr_assert_leq(worst, 4);
    cr_assert_geq(samples, 20);
    cr_assert_eq(sc.other, 0, "%d clients got neither the program nor the shed answer", sc.other);
    cr_assert_eq(accepted, sc.in, "the program saw %d, clients %d let in", accepted, sc.in);
    /* The scenario did press on the limit. */
    cr_assert_eq(sc.inside_max, 4, "never 4 inside at once (%d)", sc.inside_max);
    cr_assert_gt(sc.shed, 50);
}

Test(shed, many_blocking_threads_accepting_never_exceed_the_limit)
{
    stress("16", "blocking");
}

Test(shed, many_epoll_threads_accepting_never_exceed_the_limit)
{
    stress("4", "epoll");
}

/* --- descriptors --------------------------------------------------------------- */

/* Under `ulimit -n 200`, 180 clients that send a request and then neither read
 * nor close are shed; sluice must not hold so many sockets that the program's
 * admitted request cannot open the descriptors it needs. */
Test(shed, lingering_shed_sockets_leave_the_program_its_descriptors)
{
    char stats[64];
    snprintf(stats, sizeof stats, "/tmp/sluice-shed-nofile-%d.prom", (int) getpid());
    char setting[96];
    snprintf(setting, sizeof setting, "SLUICE_STATS=%s", stats);
    int port = t_free_port();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ulimit -n 200 && exec %s %s %d", PY,
             t_source("tests/helpers/shed_blocking.py"), port);
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_MODE=shed", setting,
                          "SLUICE_STATS_INTERVAL=100ms", NULL };
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    struct t_proc srv = spawn_server(argv, env);
    cr_assert(t_wait_listening(port, 5000));
    int holder = t_connect(port);
    cr_assert(admitted(holder));
    enum { SILENT = 180 };
    int silent[SILENT];
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int i = 0; i < SILENT; i++) {
        silent[i] = t_connect(port);
        cr_assert_geq(silent[i], 0);
        cr_assert_eq(send(silent[i], req, strlen(req), MSG_NOSIGNAL), (ssize_t) strlen(req));
    }
    t_sleep_ms(300);   /* all shed by now, within the linger */
    cr_assert_eq(kill(srv.pid, 0), 0, "the server died");
    cr_assert_eq(send(holder, "open 60\n", 8, MSG_NOSIGNAL), 8);
    char got[64];
    first_bytes(holder, got, sizeof got, 3000);
    cr_assert_str_eq(got, "opened 60\n", "the admitted request could not open 60 descriptors: [%s]", got);
    int answered = 0;
    for (int i = 0; i < SILENT; i++) {
        char ans[16];
        first_bytes(silent[i], ans, sizeof ans, 2000);
        answered += strncmp(ans, "HTTP/1.1 503", 12) == 0;
        close(silent[i]);
    }
    cr_assert_eq(answered, SILENT, "%d of %d silent clients got the 503", answered, SILENT);
    t_sleep_ms(300);
    long early = stat_value(stats, "sluice_shed_unlingered_total");
    cr_assert_gt(early, 0, "the stats do not say that shed sockets were closed at once (%ld)", early);
    close(holder);
    kill(srv.pid, SIGTERM);
    stop_server(&srv);
    unlink(stats);
}

/* --- big bodies ------------------------------------------------------------------ */

/* Eight clients posting 100 MB bodies: what sluice reads per shed is bounded,
 * so the server's CPU per shed is small, whatever the body. */
Test(shed, a_huge_body_costs_a_bounded_read_not_a_core)
{
    int port = t_free_port();
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_MODE=shed", NULL };
    const char *argv[] = { t_helper("conn_epoll"), port_arg(port), "lt", NULL };
    struct t_proc srv = spawn_server(argv, env);
    cr_assert(t_wait_listening(port, 5000));
    int holder = t_connect(port);
    cr_assert(admitted(holder));
    long t0 = t_cpu_ticks(srv.pid);
    const char *client[] = { t_helper("shed_body_client"), port_arg(port), "8", "104857600", "3", "5", NULL };
    char *out = NULL;
    cr_assert_eq(t_run(client, NULL, false, 30000, &out, NULL), 0);
    t_sleep_ms(1200);   /* anything still lingering is finished */
    long ticks = t_cpu_ticks(srv.pid) - t0;
    long long posts = 0, answered = 0, resets = 0, sent = 0;
    cr_assert_eq(sscanf(out, "posts %lld answered %lld reset %lld sent %lld", &posts, &answered, &resets, &sent),
                 4, "[%s]", out);
    cr_log_info("100 MB bodies: %s; server %ld ticks, %.2f ms per shed", out, ticks,
                posts > 0 ? (double) ticks * 10.0 / (double) posts : 0.0);
    cr_assert_geq(posts, 16, "[%s]", out);
    cr_assert_eq(answered, posts, "every client still gets the 503 [%s]", out);
    /* Reading 100 MB until the linger ends cost ~60 ms of CPU per shed. */
    cr_assert_leq((double) ticks * 10.0 / (double) posts, 5.0, "%ld ticks for %lld sheds", ticks, posts);
    close(holder);
    stop_server(&srv);
}

/* --- SO_RCVTIMEO ------------------------------------------------------------------ */

/* A blocking accept with SO_RCVTIMEO that only sheds still times out: each real
 * accept restarts the kernel's timer, so sluice keeps the call's own clock. */
Test(shed, a_blocking_accept_with_so_rcvtimeo_times_out_while_shedding)
{
    const char *argv[] = { PY, t_source("tests/helpers/shed_rcvtimeo.py"), NULL };
    const char *env[] = { "SLUICE_CONN_MAX=1", "SLUICE_CONN_MODE=shed", NULL };
    char *out = NULL, *err = NULL;
    cr_assert_eq(t_run(argv, env, true, 10000, &out, &err), 0, "[%s]", err);
    double after = -1;
    cr_assert_eq(sscanf(out, "second: EAGAIN after %lf", &after), 1, "got [%s]", out);
    /* 500 ms asked; a shed every 200 ms: answered by the shed after 500 ms. */
    cr_assert(after >= 0.45 && after < 1.2, "timed out after %.3f s", after);
    free(out);
    free(err);
}
