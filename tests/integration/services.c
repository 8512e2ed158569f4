/* services.c — the services of the service suite (see servers.h): servers of
 * several processes that share one connection budget — worker pools (nginx,
 * gunicorn, uvicorn, puma, apache, php-fpm behind nginx) and fork-per-connection
 * servers (ForkingTCPServer, PostgreSQL). Each is started as in production:
 * nginx and apache as root with unprivileged workers, PostgreSQL as the
 * postgres user; configs and scripts in tests/helpers/servers/. */
#include <criterion/criterion.h>
#include <glob.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "servers.h"

#define HTTP_HOLD "GET /hold.php HTTP/1.1\r\nHost: t\r\n\r\n"

/* The first path matching pattern (a versioned binary: php-fpm8.2). */
static const char *first_match(const char *pattern, char *out, size_t size)
{
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "nothing matches %s", pattern);
    snprintf(out, size, "%s", g.gl_pathv[0]);
    globfree(&g);
    return out;
}

static void setup_nginx_workers(struct site *s)
{
    const char *conf = servers_config(s, "nginx_service.conf", NULL);
    const char *a[] = { "/usr/sbin/nginx", "-p", s->dir, "-c", conf, "-e", "", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 6, "%s/error.log", s->dir);
}

static void setup_gunicorn(struct site *s)
{
    const char *a[] = { "/usr/bin/gunicorn", "-w", "3", "-k", "gthread", "--threads", "4",
                        "--keep-alive", "120", "-b", "", "--chdir", servers_script(""),
                        "--log-level", "warning", "wsgi_app:app", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 10, "127.0.0.1:%d", s->port);
}

static void setup_apache(struct site *s)
{
    const char *conf = servers_config(s, "apache.conf", NULL);
    const char *a[] = { "/usr/sbin/apache2", "-d", s->dir, "-f", conf, "-DFOREGROUND", NULL };
    servers_argv_of(s, a);
}

/* php-fpm on upport; nginx (bare) in front of it on port. */
static void setup_php_fpm(struct site *s)
{
    char src[256], dst[128], fpm[128];
    snprintf(src, sizeof src, "cp '%s' '%s/hold.php'", servers_script("hold.php"), s->dir);
    cr_assert_eq(system(src), 0);
    snprintf(dst, sizeof dst, "%s/hold.php", s->dir);
    chmod(dst, 0644);
    const char *conf = servers_config(s, "php-fpm.conf", NULL);
    const char *a[] = { first_match("/usr/sbin/php-fpm*", fpm, sizeof fpm), "-F", "-y", conf,
                        "-d", "output_buffering=0", NULL };
    servers_argv_of(s, a);
}

static void setup_php_front(struct site *s)
{
    const char *conf = servers_config(s, "nginx_service.conf", NULL);
    const char *a[] = { "/usr/sbin/nginx", "-p", s->dir, "-c", conf, "-e", NULL };
    int i = 0;
    for (; a[i] != NULL; i++)
        snprintf(s->front_args[i], sizeof s->front_args[i], "%s", a[i]);
    snprintf(s->front_args[i++], sizeof s->front_args[0], "%s/front.log", s->dir);
    for (int k = 0; k < i; k++)
        s->front_argv[k] = s->front_args[k];
    s->front_argv[i] = NULL;
}

static void setup_forking(struct site *s)
{
    const char *a[] = { PY, servers_script("forking_server.py"), "", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 2, "%d", s->port);
}

/* A cluster made by initdb as the postgres user in the site's dir, its unix
 * socket there too; the server listens on 127.0.0.1 only. */
static void setup_postgres(struct site *s)
{
    struct passwd *pw = getpwnam("postgres");
    cr_assert_not_null(pw, "no postgres user");
    char data[128], sock[128], bin[128], initdb[160];
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(sock, sizeof sock, "%s/sock", s->dir);
    const char *made[] = { data, sock };
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(mkdir(made[i], 0700), 0, "%s", made[i]);
        cr_assert_eq(chown(made[i], pw->pw_uid, pw->pw_gid), 0);
    }
    first_match("/usr/lib/postgresql/*/bin/postgres", bin, sizeof bin);
    snprintf(initdb, sizeof initdb, "%.*sinitdb", (int) (strlen(bin) - strlen("postgres")), bin);
    const char *init[] = { "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                           initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync",
                           "--locale=C", "-E", "UTF8", NULL };
    char *err = NULL;
    int rc = t_run(init, NULL, false, 60000, NULL, &err);
    cr_assert_eq(rc, 0, "initdb: %s", err);
    free(err);
    const char *a[] = { "setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", bin,
                        "-D", data, "-k", sock, "-p", "", "-c", "listen_addresses=127.0.0.1",
                        "-c", "max_connections=64", "-c", "fsync=off", "-c",
                        "dynamic_shared_memory_type=mmap", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 10, "%d", s->port);
    /* A fast shutdown: SIGTERM would wait for every session to end. The
     * dynamic shared memory lives in the data dir, removed with it. */
    s->stop_signal = SIGINT;
}

/* The startup message of protocol 3.0 (user and database postgres): trust
 * authentication answers it at once with AuthenticationOk ('R'), then the
 * session stays idle until the client closes it. */
static const char pg_startup[] = "\0\0\0\x29\0\x03\0\0user\0postgres\0database\0postgres\0";

const struct server srv_nginx_workers = { .name = "nginx 4 workers", .needs = "/usr/sbin/nginx",
    .setup = setup_nginx_workers, .request = HTTP_HI, .answer = "HTTP/1.1 200", .http = true,
    .processes = 5 };
const struct server srv_gunicorn = { .name = "gunicorn -w 3 gthread", .needs = "/usr/bin/gunicorn",
    .setup = setup_gunicorn, .request = HTTP_HI, .answer = "HTTP/1.1 200", .http = true,
    .processes = 4 };
const struct server srv_uvicorn_workers = { .name = "uvicorn --workers 2",
    .needs = "/usr/lib/python3/dist-packages/uvloop/__init__.py",
    .setup = servers_setup_uvicorn, .variant = "2", .request = HTTP_HI,
    .answer = "HTTP/1.1 200", .http = true, .processes = 3 };
const struct server srv_puma_workers = { .name = "puma -w 2", .needs = "/usr/bin/puma",
    .setup = servers_setup_puma, .variant = "2", .request = HTTP_HI, .answer = "HTTP/1.1 200",
    .http = true, .processes = 3 };
const struct server srv_apache_event = { .name = "apache mpm_event", .needs = "/usr/sbin/apache2",
    .setup = setup_apache, .variant = "event", .request = HTTP_HI, .answer = "HTTP/1.1 200",
    .http = true, .processes = 4 };
const struct server srv_apache_prefork = { .name = "apache mpm_prefork",
    .needs = "/usr/sbin/apache2", .setup = setup_apache, .variant = "prefork",
    .request = HTTP_HI, .answer = "HTTP/1.1 200", .http = true, .processes = 6 };
const struct server srv_php_fpm = { .name = "php-fpm behind nginx",
    .needs = "ls /usr/sbin/php-fpm* >/dev/null 2>&1", .setup = setup_php_fpm,
    .request = HTTP_HOLD, .answer = "HTTP/1.1 200", .http = true, .processes = 9,
    .setup_front = setup_php_front };
const struct server srv_forking = { .name = "ForkingTCPServer", .needs = PY,
    .setup = setup_forking, .request = "hi\n", .answer = "hi\n", .processes = 1 };
const struct server srv_postgres = { .name = "postgresql",
    .needs = "ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1", .setup = setup_postgres,
    .request = pg_startup, .request_len = sizeof pg_startup, .answer = "R", .processes = 6 };
