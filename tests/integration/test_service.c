/* test_service.c — one connection budget for a whole service
 * (SLUICE_CONN_SCOPE=host): servers of several processes, each started as in
 * production and watched from outside with the servers suite's gates
 * (gates.c) under SLUICE_CONN_MAX=4, SLUICE_CONN_SCOPE=host and a key of this
 * run's own:
 *   pause: 40 clients send a request and hold: exactly 4 served in total (the
 *          answers, and the connections the service's processes hold, ss -tnp),
 *          36 in the accept queue, the service's CPU (every process) ~0, one
 *          close admits exactly one, all 40 served in the end;
 *   shed:  (HTTP) 4 clients arriving one after another are all served, then
 *          each of 12 more gets a whole 503: no 503 while the service holds
 *          fewer than 4, and none admitted beyond them;
 *   a worker killed (SIGKILL) while it holds 2 slots: the 2 clients waiting
 *          next are served within 100 ms, and no third;
 *   nginx reloaded (SIGHUP), apache mpm_event restarted gracefully (SIGUSR1),
 *          with 4 held and 4 waiting: the old workers leave,
 *          the waiting 4 are served, and 4 more arriving wait: 4 held, counted
 *          on both sides;
 *   a fork-per-connection child that exits without closing its connection
 *          gives its slot back; two services with different keys do not share.
 * How each holds: an HTTP answer on a connection kept alive (the client does
 * not close); php-fpm's request holds its worker until the client leaves
 * (hold.php); ForkingTCPServer's child holds the connection until the client
 * closes it; PostgreSQL's backend holds its idle session after the startup
 * handshake. Services: nginx (4 workers as nobody), gunicorn -w 3 gthread,
 * uvicorn --workers 2, puma -w 2, apache mpm_event and mpm_prefork (children as
 * www-data), php-fpm (8 static workers) behind a bare nginx over TCP,
 * socketserver.ForkingTCPServer, PostgreSQL (one backend per connection). */
#include <criterion/criterion.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "servers.h"

/* What a test started and made, and the budget's files of this run's keys
 * (the service's users' own: root's, postgres's), which outlive the service. */
static void leave_nothing_behind(void)
{
    servers_leave_nothing_behind();
    char pattern[96];
    snprintf(pattern, sizeof pattern, "/dev/shm/sluice-*/conn-service-%d*", (int) getpid());
    glob_t g;
    if (glob(pattern, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
    globfree(&g);
}

TestSuite(service, .fini = leave_nothing_behind);

/* A key no other run (another checkout's tests) can share. */
static const char *const *host_settings(bool shed)
{
    static char key[64];
    static const char *settings[6];
    snprintf(key, sizeof key, "SLUICE_CONN_KEY=service-%d", (int) getpid());
    int n = 0;
    settings[n++] = "SLUICE_CONN_MAX=4";
    settings[n++] = "SLUICE_CONN_SCOPE=host";
    settings[n++] = key;
    if (shed) {
        settings[n++] = "SLUICE_CONN_MODE=shed";
        settings[n++] = "SLUICE_RETRY_AFTER=7";
    }
    settings[n] = NULL;
    return settings;
}

#define PAUSE(var) Test(service, var##_pause, .timeout = 60) \
    { servers_pause_gate(&srv_##var, host_settings(false)); }
#define SHED(var) Test(service, var##_shed, .timeout = 60) \
    { servers_shed_gate(&srv_##var, host_settings(true)); }

PAUSE(nginx_workers) SHED(nginx_workers)
PAUSE(gunicorn) SHED(gunicorn)
PAUSE(uvicorn_workers) SHED(uvicorn_workers)
PAUSE(puma_workers) SHED(puma_workers)
PAUSE(apache_event) SHED(apache_event)
PAUSE(apache_prefork) SHED(apache_prefork)
/* Two servers cannot run under the ASan runtime at all, with or without
 * sluice: php-fpm loads its extensions with RTLD_DEEPBIND, which the runtime
 * refuses; PostgreSQL's postmaster hangs at start-up in glibc's gettext lock
 * (bindtextdomain) with only the runtime preloaded. The plain build runs both. */
static void skip_under_asan(const char *server, const char *why)
{
    const char *runtime = getenv("SANITIZER_RUNTIME_FOR_TESTS");
    if (runtime != NULL && strstr(runtime, "asan") != NULL)
        cr_skip_test("%s does not run under the ASan runtime (%s)", server, why);
}

Test(service, php_fpm_pause, .timeout = 60)
{
    skip_under_asan("php-fpm", "RTLD_DEEPBIND");
    servers_pause_gate(&srv_php_fpm, host_settings(false));
}

PAUSE(forking)

Test(service, postgres_pause, .timeout = 60)
{
    skip_under_asan("PostgreSQL", "its postmaster hangs at start-up");
    servers_pause_gate(&srv_postgres, host_settings(false));
}

/* --- a worker killed while it holds slots ------------------------------------------ */

/* A worker that holds some but not all of the `want` served clients, and
 * how many it holds; -1 when one worker holds them all, -2 while ss does not
 * show all `want` yet. */
static pid_t holding_some(const struct site *s, int want, int *held)
{
    pid_t pids[16];
    int peers[16];
    int n = servers_inside(s->port, pids, peers, 16);
    if (n != want)
        return -2;
    for (int i = 0; i < n && i < 16; i++) {
        int same = 0;
        for (int k = 0; k < n && k < 16; k++)
            same += pids[k] == pids[i];
        if (same < n) {
            *held = same;
            return pids[i];
        }
    }
    return -1;
}

static int connect_one(struct clients *c, int port, const char *request)
{
    int i = 0;
    while (i < NCLIENTS && (c->fd[i] >= 0 || c->served[i]))
        i++;
    cr_assert_lt(i, NCLIENTS);
    c->fd[i] = t_connect(port);
    cr_assert_geq(c->fd[i], 0);
    cr_assert_eq(send(c->fd[i], request, strlen(request), MSG_NOSIGNAL), (ssize_t) strlen(request));
    return i;
}

static void worker_killed(const struct server *sv)
{
    struct site s;
    servers_make_site(&s, sv);
    servers_start(&s, host_settings(false), true);
    struct clients c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < NCLIENTS; i++)
        c.fd[i] = -1;
    for (int i = 0; i < LIMIT; i++) {
        connect_one(&c, s.port, sv->request);
        cr_assert_eq(clients_collect(&c, i + 1, 5000, sv->answer), i + 1);
    }
    /* Which worker takes a connection is the kernel's choice: move clients
     * (close one, another comes) until they are not all in one worker. */
    pid_t victim = -1;
    int held = 0;
    for (int tries = 0; tries < 20 && victim < 0; tries++) {
        victim = holding_some(&s, LIMIT, &held);
        if (victim >= 0)
            break;
        if (victim == -2) {
            t_sleep_ms(50);
            continue;
        }
        int client = 0;
        while (client < NCLIENTS && !(c.fd[client] >= 0 && c.served[client]))
            client++;
        cr_assert_lt(client, NCLIENTS);
        close(c.fd[client]);
        c.fd[client] = -1;
        connect_one(&c, s.port, sv->request);
        int target = c.nserved + 1;
        cr_assert_eq(clients_collect(&c, target, 5000, sv->answer), target);
        t_sleep_ms(20);   /* until ss shows it */
    }
    cr_assert_geq(victim, 0, "one worker took all %d clients (or ss showed fewer) 20 times in a row",
                  LIMIT);
    int served = c.nserved;
    for (int i = 0; i < 3; i++)
        connect_one(&c, s.port, sv->request);
    cr_assert_eq(clients_collect(&c, NCLIENTS, 300, sv->answer), served,
                 "%s: %d served over the limit before the kill", sv->name, c.nserved - served);
    int queue = servers_accept_queue(s.port);
    cr_assert_eq(queue, 3, "%s: accept queue %d", sv->name, queue);

    uint64_t t0 = t_now_ms();
    cr_assert_eq(kill(victim, SIGKILL), 0);
    clients_collect(&c, served + held, 2000, sv->answer);
    uint64_t whole_ms = t_now_ms() - t0;
    cr_assert_eq(c.nserved, served + held, "%s: %d of the %d slots came back after the kill",
                 sv->name, c.nserved - served, held);
    cr_assert_eq(clients_collect(&c, NCLIENTS, 300, sv->answer), served + held,
                 "%s: the kill let %d in, not %d", sv->name, c.nserved - served, held);
    cr_log_info("%s: a worker killed holding %d slots; the next %d clients served %llu ms later",
                sv->name, held, held, (unsigned long long) whole_ms);
    cr_assert_leq(whole_ms, 100, "%s: the budget was whole again only %llu ms after the kill",
                  sv->name, (unsigned long long) whole_ms);
    clients_close_all(&c);
    servers_stop(&s, NULL);
}

Test(service, nginx_worker_killed, .timeout = 60)
{
    worker_killed(&srv_nginx_workers);
}

Test(service, gunicorn_worker_killed, .timeout = 60)
{
    worker_killed(&srv_gunicorn);
}

/* A reload (nginx's SIGHUP, apache's graceful SIGUSR1): new workers start,
 * the old ones close their idle kept-alive connections and leave; one budget
 * throughout, nothing leaked. */
static void reload_keeps_one_budget(const struct server *sv, int reload)
{
    struct site s;
    servers_make_site(&s, sv);
    servers_start(&s, host_settings(false), true);
    struct clients c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < NCLIENTS; i++)
        c.fd[i] = -1;
    for (int i = 0; i < 2 * LIMIT; i++)
        connect_one(&c, s.port, sv->request);
    cr_assert_geq(clients_collect(&c, LIMIT, 5000, sv->answer), LIMIT);
    cr_assert_eq(clients_collect(&c, 2 * LIMIT, 300, sv->answer), LIMIT,
                 "%s: %d served before the reload", sv->name, c.nserved);
    cr_assert_eq(kill(s.proc.pid, reload), 0);
    cr_assert_eq(clients_collect(&c, 2 * LIMIT, 10000, sv->answer), 2 * LIMIT,
                 "%s: %d of the %d waiting served after the reload", sv->name,
                 c.nserved - LIMIT, LIMIT);
    /* 4 more. The old workers may still take some while they leave, and close
     * them at once (idle, kept alive): what counts is who is held and who
     * waits, on both sides. */
    for (int i = 0; i < LIMIT; i++)
        connect_one(&c, s.port, sv->request);
    clients_collect(&c, 3 * LIMIT, 500, sv->answer);
    int held = 0, waiting = 0, ended = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        char b[64];
        if (c.fd[i] < 0)
            continue;
        if (!c.served[i])
            waiting++;
        else if (recv(c.fd[i], b, sizeof b, MSG_DONTWAIT | MSG_PEEK) == 0)
            ended++;
        else
            held++;
    }
    int inside = servers_inside(s.port, NULL, NULL, 0), queue = servers_accept_queue(s.port);
    cr_log_info("%s reloaded: %d served (%d since closed by the old workers), %d inside, %d in "
                "the accept queue", sv->name, c.nserved, ended, inside, queue);
    cr_assert_eq(held, LIMIT, "%s: %d clients held after the reload", sv->name, held);
    cr_assert_eq(inside, LIMIT, "%s: %d connections inside after the reload", sv->name, inside);
    cr_assert_eq(queue, waiting, "%s: accept queue %d, %d clients waiting", sv->name, queue,
                 waiting);
    clients_close_all(&c);
    servers_stop(&s, NULL);
}

Test(service, nginx_reload_keeps_one_budget, .timeout = 60)
{
    reload_keeps_one_budget(&srv_nginx_workers, SIGHUP);
}

Test(service, apache_event_graceful_restart_keeps_one_budget, .timeout = 60)
{
    reload_keeps_one_budget(&srv_apache_event, SIGUSR1);
}

/* Not prefork: its old children keep their kept-alive connections through a
 * graceful restart (bare too) until KeepAliveTimeout, and with them their
 * slots, so the waiting wait that long. */

/* --- fork-per-connection children that exit; two keys ------------------------------ */

/* Connects n clients sending request; the first of them is c->fd[first]. */
static void connect_n(struct clients *c, int port, const char *request, int n)
{
    for (int i = 0; i < n; i++)
        connect_one(c, port, request);
}

static void no_clients(struct clients *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NCLIENTS; i++)
        c->fd[i] = -1;
}

Test(service, forking_child_exiting_without_close_frees_its_slot, .timeout = 60)
{
    const struct server *sv = &srv_forking;
    struct site s;
    servers_make_site(&s, sv);
    servers_start(&s, host_settings(false), true);
    /* 12 children answer and exit without closing, 4 at a time at most: each
     * slot must come back for the next to be answered. */
    struct clients gone;
    no_clients(&gone);
    uint64_t t0 = t_now_ms();
    connect_n(&gone, s.port, "exit\n", 3 * LIMIT);
    cr_assert_eq(clients_collect(&gone, 3 * LIMIT, 10000, "bye\n"), 3 * LIMIT,
                 "%s: %d of %d children that exited were answered", sv->name, gone.nserved,
                 3 * LIMIT);
    uint64_t all_ms = t_now_ms() - t0;
    /* The budget is whole, and still a budget: 4 held, the 5th waits. */
    struct clients c;
    no_clients(&c);
    connect_n(&c, s.port, sv->request, LIMIT + 1);
    cr_assert_geq(clients_collect(&c, LIMIT, 5000, sv->answer), LIMIT,
                  "%s: after the exits only %d served", sv->name, c.nserved);
    cr_assert_eq(clients_collect(&c, LIMIT + 1, 500, sv->answer), LIMIT,
                 "%s: %d served at once after the exits", sv->name, c.nserved);
    cr_log_info("%s: 12 children exited without closing, answered in %llu ms; then %d held and "
                "1 waiting", sv->name, (unsigned long long) all_ms, c.nserved);
    clients_close_all(&gone);
    clients_close_all(&c);
    servers_stop(&s, NULL);
}

Test(service, two_keys_do_not_share, .timeout = 60)
{
    const struct server *sv = &srv_forking;
    struct site a, b;
    servers_make_site(&a, sv);
    servers_make_site(&b, sv);
    char key_b[64];
    snprintf(key_b, sizeof key_b, "SLUICE_CONN_KEY=service-%d-b", (int) getpid());
    const char *settings_b[] = { "SLUICE_CONN_MAX=4", "SLUICE_CONN_SCOPE=host", key_b, NULL };
    servers_start(&a, host_settings(false), true);
    servers_start(&b, settings_b, true);
    struct clients ca, cb;
    no_clients(&ca);
    no_clients(&cb);
    connect_n(&ca, a.port, sv->request, 2 * LIMIT);
    connect_n(&cb, b.port, sv->request, 2 * LIMIT);
    clients_collect(&ca, LIMIT, 5000, sv->answer);
    clients_collect(&cb, LIMIT, 5000, sv->answer);
    clients_collect(&ca, 2 * LIMIT, 300, sv->answer);
    clients_collect(&cb, 2 * LIMIT, 300, sv->answer);
    cr_log_info("%s, two keys: %d and %d served", sv->name, ca.nserved, cb.nserved);
    cr_assert_eq(ca.nserved, LIMIT, "%s with the first key: %d served", sv->name, ca.nserved);
    cr_assert_eq(cb.nserved, LIMIT, "%s with the second key: %d served", sv->name, cb.nserved);
    clients_close_all(&ca);
    clients_close_all(&cb);
    servers_stop(&a, NULL);
    servers_stop(&b, NULL);
}
