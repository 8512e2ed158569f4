/* servers.h — the real servers the servers and service suites start (servers.c,
 * services.c), what their gates need to start, watch and stop them, and the
 * gates both suites run (gates.c). */
#ifndef SLUICE_TEST_SERVERS_H
#define SLUICE_TEST_SERVERS_H

#include <stdbool.h>
#include <sys/types.h>

#include "testlib.h"
#include "clients.h"

#define KiB 1024L
#define MiB (1024L * 1024L)
#define LIMIT 4
#define BIG (16 * MiB)
#define PY "/usr/bin/python3"
#define HTTP_HI "GET /hi HTTP/1.1\r\nHost: t\r\n\r\n"
#define HTTP_BIG(path) "GET " path " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

struct site;

struct server {
    const char *name;
    const char *needs;        /* a file that must exist or a command that must succeed
                                 (the package is installed), else skip */
    void (*setup)(struct site *);   /* writes configs, fills argv */
    const char *request;      /* one small request */
    const char *answer;       /* what the answer to it starts with */
    const char *big_request;  /* asks for the 16 MiB file */
    const char *head_end;     /* what ends the big answer's head ("" if none) */
    bool http;
    bool upstream;            /* needs a bare upstream on upport (python http.server) */
    void (*prime)(struct site *);   /* after it listens, before the clients */
    /* A service of several processes (services.c): */
    int processes;            /* how many it runs once started (0: one process) */
    void (*setup_front)(struct site *);   /* a bare front (nginx) on port that the
                                             governed server, then on upport, sits behind */
    size_t request_len;       /* the request's length when it holds NUL bytes (0: strlen) */
    const char *variant;      /* @VARIANT@ of its config (apache's MPM); for uvicorn,
                                 how many workers */
};

struct site {
    const struct server *sv;
    char dir[64], big[96];
    int port, upport;
    struct t_proc proc, up;
    struct output *output;   /* what the server prints, read as it comes */
    char conf[128], big_env[128];
    char args[20][256];
    const char *argv[24];
    const char *env[8];
    int stop_signal;          /* what stops it at once (0: SIGTERM) */
    char front_args[8][256];
    const char *front_argv[10];
};

/* The matrix. */
extern const struct server srv_node_http, srv_node_net, srv_java_nio, srv_java_http,
    srv_webrick, srv_puma, srv_lighttpd, srv_haproxy, srv_memcached, srv_nginx,
    srv_nginx_sendfile_off, srv_nginx_proxy, srv_uvicorn;

/* The services: one budget shared by all their processes. */
extern const struct server srv_nginx_workers, srv_gunicorn, srv_uvicorn_workers, srv_puma_workers,
    srv_apache_event, srv_apache_prefork, srv_php_fpm, srv_forking, srv_postgres;

/* What the servers' setups share (servers.c): argv[i] = printf(fmt, ...); argv from
 * a NULL-ended list; tests/helpers/servers/NAME.in written into the site's dir
 * with @DIR@, @PORT@, @UPPORT@, @SENDFILE@ and @VARIANT@ filled in (its path);
 * the path of tests/helpers/servers/NAME. */
void servers_arg(struct site *s, int i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void servers_argv_of(struct site *s, const char *const *list);
const char *servers_config(struct site *s, const char *name, const char *sendfile);
const char *servers_script(const char *name);
/* uvicorn on uvloop serving asgi_app.py with --workers variant, and puma
 * serving puma.ru with -w variant. */
void servers_setup_uvicorn(struct site *s);
void servers_setup_puma(struct site *s);

/* A fresh dir holding `hi` and the 16 MiB drain_gen stream (seed 42) as `big`;
 * skips the test if the server is not installed. */
void servers_make_site(struct site *s, const struct server *sv);
/* Starts the server (bare or preloaded with `settings`) and waits until it listens. */
void servers_start(struct site *s, const char *const *settings, bool preload);
/* SIGTERM, then the exit status as a number (128+signal if killed); *err (if
 * err is not NULL) gets what it printed on stderr (malloc'd). */
int servers_stop(struct site *s, char **err);
/* The accept queue of the listener on port, IPv4 or IPv6, or -1. */
int servers_accept_queue(int port);
/* Stops whatever a failed test left running and removes its dirs. */
void servers_leave_nothing_behind(void);
/* The port of the governed listener: port, or upport behind a front. */
int servers_governed_port(const struct site *s);
/* Connections on port the server's processes have accepted (ss -tnp: an
 * established socket some process holds); with holders not NULL, the PID
 * holding each and the client's port (up to max), in order. */
int servers_inside(int port, pid_t *holders, int *peers, int max);

/* The gates (gates.c), the server started with `settings`:
 * pause: 40 clients that send a request and hold: exactly 4 served (for a
 *        service, counted on the server's side too), 36 in the accept queue,
 *        CPU ~0, one close admits exactly one, all 40 served in the end;
 * shed:  4 clients served and held, then 12 arriving one after another each get
 *        a whole 503 with Retry-After, and the server answers afterwards. */
void servers_pause_gate(const struct server *sv, const char *const *settings);
void servers_shed_gate(const struct server *sv, const char *const *settings);

#endif
