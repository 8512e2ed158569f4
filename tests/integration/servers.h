/* servers.h — the real servers the servers suite starts (servers.c) and what the
 * suite's gates (test_servers.c) need to start, watch and stop them. */
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
};

/* The matrix. */
extern const struct server srv_node_http, srv_node_net, srv_java_nio, srv_java_http,
    srv_webrick, srv_puma, srv_lighttpd, srv_haproxy, srv_memcached, srv_nginx,
    srv_nginx_sendfile_off, srv_nginx_proxy, srv_uvicorn;

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

#endif
