/* servers.c — the servers of the servers suite (see servers.h): how each is
 * configured and started (configs and scripts in tests/helpers/servers/), on a
 * free port with its own temporary dir, its output read as it comes, and
 * stopped by PID; whatever a failed assertion leaves is stopped by the suite's
 * fini. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers/drain_gen.h"
#include "testlib.h"
#include "servers.h"
#include "leftovers.h"

/* --- what a test started, so that a failed assertion leaves nothing behind --- */

static struct leftovers leftovers = { .term_polls = 40 };

static struct t_proc spawn(const char *const *argv, const char *const *env, bool preload)
{
    return leftovers_spawn(&leftovers, argv, env, preload);
}

void servers_leave_nothing_behind(void)
{
    leftovers_clear(&leftovers);
}

/* --- the servers ------------------------------------------------------------- */

void servers_arg(struct site *s, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->args[i], sizeof s->args[i], fmt, ap);
    va_end(ap);
    s->argv[i] = s->args[i];
}

void servers_argv_of(struct site *s, const char *const *list)
{
    int i = 0;
    for (; list[i] != NULL; i++) {
        cr_assert_lt(i, (int) (sizeof s->args / sizeof s->args[0]), "too many arguments");
        servers_arg(s, i, "%s", list[i]);
    }
    s->argv[i] = NULL;
}

/* Writes tests/helpers/servers/NAME.in into the site's dir as NAME with @DIR@,
 * @PORT@, @UPPORT@, @SENDFILE@ and @VARIANT@ filled in; returns its path. */
const char *servers_config(struct site *s, const char *name, const char *sendfile)
{
    char in[256];
    snprintf(in, sizeof in, "tests/helpers/servers/%s.in", name);
    FILE *f = fopen(t_source(in), "r");
    cr_assert_not_null(f, "%s", in);
    static char text[8192], out[12288];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char port[16], upport[16];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(upport, sizeof upport, "%d", s->upport);
    const char *keys[] = { "@DIR@", "@PORT@", "@UPPORT@", "@SENDFILE@", "@VARIANT@" };
    const char *values[] = { s->dir, port, upport, sendfile != NULL ? sendfile : "on",
                             s->sv->variant != NULL ? s->sv->variant : "" };
    size_t o = 0;
    for (const char *p = text; *p != '\0' && o < sizeof out - 128;) {
        int k = 0;
        while (k < 5 && strncmp(p, keys[k], strlen(keys[k])) != 0)
            k++;
        if (k < 5) {
            o += (size_t) snprintf(out + o, sizeof out - o, "%s", values[k]);
            p += strlen(keys[k]);
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    snprintf(s->conf, sizeof s->conf, "%s/%s", s->dir, name);
    f = fopen(s->conf, "w");
    cr_assert_not_null(f);
    fputs(out, f);
    fclose(f);
    return s->conf;
}

const char *servers_script(const char *name)
{
    static char path[4][256];
    static int next;
    char rel[128];
    snprintf(rel, sizeof rel, "tests/helpers/servers/%s", name);
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s", t_source(rel));
    return p;
}

static void setup_node_http(struct site *s)
{
    const char *a[] = { "/usr/bin/node", servers_script("node_http.js"), "", s->big, NULL };
    servers_argv_of(s, a);
    servers_arg(s, 2, "%d", s->port);
}

static void setup_node_net(struct site *s)
{
    const char *a[] = { "/usr/bin/node", servers_script("node_net.js"), "", s->big, NULL };
    servers_argv_of(s, a);
    servers_arg(s, 2, "%d", s->port);
}

/* The Java sources, compiled once per build into BUILD/servers-java. */
static const char *java_classes(void)
{
    static char dir[256];
    snprintf(dir, sizeof dir, "%s/servers-java", SLUICE_BUILD_DIR);
    const char *names[] = { "JavaNio", "JavaHttp" };
    for (int i = 0; i < 2; i++) {
        char src[256], cls[300];
        snprintf(src, sizeof src, "%s", servers_script(names[i]));
        strcat(src, ".java");
        snprintf(cls, sizeof cls, "%s/%s.class", dir, names[i]);
        struct stat a, b;
        cr_assert_eq(stat(src, &a), 0, "%s", src);
        if (stat(cls, &b) == 0 && b.st_mtime >= a.st_mtime)
            continue;
        const char *argv[] = { "/usr/bin/javac", "-d", dir, src, NULL };
        char *err = NULL;
        int rc = t_run(argv, NULL, false, 60000, NULL, &err);
        cr_assert_eq(rc, 0, "javac %s: %s", src, err);
        free(err);
    }
    return dir;
}

static void setup_java(struct site *s, const char *cls)
{
    const char *a[] = { "/usr/bin/java", "-Dsun.net.httpserver.idleInterval=60", "-cp",
                        java_classes(), cls, "", s->big, NULL };
    servers_argv_of(s, a);
    servers_arg(s, 5, "%d", s->port);
}

static void setup_java_nio(struct site *s)
{
    setup_java(s, "JavaNio");
}

static void setup_java_http(struct site *s)
{
    setup_java(s, "JavaHttp");
}

static void setup_webrick(struct site *s)
{
    const char *a[] = { "/usr/bin/ruby", servers_script("webrick.rb"), "", s->big, NULL };
    servers_argv_of(s, a);
    servers_arg(s, 2, "%d", s->port);
}

/* With -w variant (0 when not given: one process). */
void servers_setup_puma(struct site *s)
{
    const char *a[] = { "/usr/bin/puma", "-b", "", "-t", "4:4", "-e", "production", "--no-config",
                        "-w", s->sv->variant != NULL ? s->sv->variant : "0",
                        servers_script("puma.ru"), NULL };
    servers_argv_of(s, a);
    servers_arg(s, 2, "tcp://127.0.0.1:%d", s->port);
    snprintf(s->big_env, sizeof s->big_env, "SERVERS_BIG=%s", s->big);
    s->env[0] = s->big_env;
}

static void setup_lighttpd(struct site *s)
{
    const char *conf = servers_config(s, "lighttpd.conf", NULL);
    const char *a[] = { "/usr/sbin/lighttpd", "-D", "-f", conf, NULL };
    servers_argv_of(s, a);
}

static void setup_haproxy(struct site *s)
{
    const char *conf = servers_config(s, "haproxy.cfg", NULL);
    const char *a[] = { "/usr/sbin/haproxy", "-db", "-f", conf, NULL };
    servers_argv_of(s, a);
}

static void setup_memcached(struct site *s)
{
    const char *a[] = { "/usr/bin/memcached", "-l", "127.0.0.1", "-p", "", "-U", "0", "-u", "root",
                        "-m", "256", "-I", "32m", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 4, "%d", s->port);
}

static void setup_nginx_with(struct site *s, const char *sendfile)
{
    const char *conf = servers_config(s, "nginx.conf", sendfile);
    const char *a[] = { "/usr/sbin/nginx", "-p", s->dir, "-c", conf, "-e", "", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 6, "%s/error.log", s->dir);
}

static void setup_nginx(struct site *s)
{
    setup_nginx_with(s, "on");
}

static void setup_nginx_sendfile_off(struct site *s)
{
    setup_nginx_with(s, "off");
}

/* With --workers N (variant; 1 when not given: one process). */
void servers_setup_uvicorn(struct site *s)
{
    const char *a[] = { PY, "-m", "uvicorn", "--loop", "uvloop", "--app-dir",
                        servers_script(""), "asgi_app:app", "--host", "127.0.0.1", "--port", "",
                        "--timeout-keep-alive", "60", "--log-level", "warning", "--workers",
                        s->sv->variant != NULL ? s->sv->variant : "1", NULL };
    servers_argv_of(s, a);
    servers_arg(s, 11, "%d", s->port);
    snprintf(s->big_env, sizeof s->big_env, "SERVERS_BIG=%s", s->big);
    s->env[0] = s->big_env;
}

/* memcached holds the big value only once a client has stored it. */
static void prime_memcached(struct site *s)
{
    int c = t_connect(s->port);
    cr_assert_geq(c, 0);
    char head[64];
    int n = snprintf(head, sizeof head, "set big 0 0 %ld\r\n", BIG);
    cr_assert_eq(send(c, head, (size_t) n, MSG_NOSIGNAL), n);
    FILE *f = fopen(s->big, "r");
    static char buf[1 << 16];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t off = 0; off < r;) {
            ssize_t w = send(c, buf + off, r - off, MSG_NOSIGNAL);
            cr_assert_gt(w, 0);
            off += (size_t) w;
        }
    fclose(f);
    cr_assert_eq(send(c, "\r\n", 2, MSG_NOSIGNAL), 2);
    char *ans = t_slurp_some(c, 10000);
    cr_assert_str_eq(ans, "STORED\r\n");
    free(ans);
    close(c);
}


const struct server srv_node_http = { "node http", "/usr/bin/node", setup_node_http, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };
const struct server srv_node_net = { "node net", "/usr/bin/node", setup_node_net, "hi\n",
    "hi\n", "big\n", "", false, false, NULL, 0, NULL, 0, NULL };
const struct server srv_java_nio = { "java nio", "/usr/bin/javac", setup_java_nio, "hi\n",
    "hi\n", "big\n", "", false, false, NULL, 0, NULL, 0, NULL };
const struct server srv_java_http = { "java httpserver", "/usr/bin/javac", setup_java_http,
    HTTP_HI, "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };
const struct server srv_webrick = { "webrick",
    "/usr/bin/ruby -e 'require \"webrick\"' >/dev/null 2>&1", setup_webrick, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };
const struct server srv_puma = { "puma", "/usr/bin/puma", servers_setup_puma, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };
const struct server srv_lighttpd = { "lighttpd", "/usr/sbin/lighttpd", setup_lighttpd, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };
const struct server srv_haproxy = { "haproxy", "/usr/sbin/haproxy", setup_haproxy, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, true, NULL, 0, NULL, 0, NULL };
const struct server srv_memcached = { "memcached", "/usr/bin/memcached", setup_memcached,
    "version\r\n", "VERSION ", "get big\r\n", "\r\n", false, false, prime_memcached, 0, NULL, 0,
    NULL };
const struct server srv_nginx = { "nginx", "/usr/sbin/nginx", setup_nginx, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };
const struct server srv_nginx_sendfile_off = { "nginx sendfile off", "/usr/sbin/nginx",
    setup_nginx_sendfile_off, HTTP_HI, "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false,
    NULL, 0, NULL, 0, NULL };
const struct server srv_nginx_proxy = { "nginx proxy_pass", "/usr/sbin/nginx",
    setup_nginx_sendfile_off, HTTP_HI, "HTTP/1.1 200", HTTP_BIG("/proxied/big"), "\r\n\r\n", true,
    false, NULL, 0, NULL, 0, NULL };
const struct server srv_uvicorn = { "uvicorn uvloop",
    "/usr/lib/python3/dist-packages/uvloop/__init__.py", servers_setup_uvicorn, HTTP_HI,
    "HTTP/1.1 200", HTTP_BIG("/big"), "\r\n\r\n", true, false, NULL, 0, NULL, 0, NULL };

/* --- starting and stopping one ------------------------------------------------ */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, 0644);
}

/* A fresh dir (readable by nginx's unprivileged workers) holding `hi` and the
 * 16 MiB drain_gen stream (seed 42) as `big`. */
void servers_make_site(struct site *s, const struct server *sv)
{
    memset(s, 0, sizeof *s);
    s->sv = sv;
    s->proc.pid = s->up.pid = -1;
    s->proc.out_fd = s->proc.err_fd = s->up.out_fd = s->up.err_fd = -1;
    if (strchr(sv->needs, ' ') != NULL ? system(sv->needs) != 0 : access(sv->needs, F_OK) != 0)
        cr_skip_test("%s is not installed (%s missing): scripts/deps.sh installs it", sv->name,
                     sv->needs);
    snprintf(s->dir, sizeof s->dir, "/tmp/sluice-servers-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    leftovers_path(&leftovers, s->dir);
    chmod(s->dir, 0755);
    char path[128];
    snprintf(path, sizeof path, "%s/hi", s->dir);
    write_text(path, "hi\n");
    snprintf(s->big, sizeof s->big, "%s/big", s->dir);
    FILE *f = fopen(s->big, "w");
    cr_assert_not_null(f);
    static unsigned char buf[1 << 16];
    struct drain_gen g;
    drain_gen_init(&g, 42);
    for (long left = BIG; left > 0; left -= (long) sizeof buf) {
        drain_gen_fill(&g, buf, sizeof buf);
        cr_assert_eq(fwrite(buf, 1, sizeof buf, f), sizeof buf);
    }
    fclose(f);
    chmod(s->big, 0644);
    /* The same Last-Modified and ETag in every run. */
    struct timespec when[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    utimensat(AT_FDCWD, path, when, 0);
    utimensat(AT_FDCWD, s->big, when, 0);
}

/* The accept queue of the listener on port, IPv4 or IPv6 (Java listens on a
 * dual-stack socket, which /proc/net/tcp6 shows), or -1. */
int servers_accept_queue(int port)
{
    int q = t_accept_queue(port);
    if (q >= 0)
        return q;
    FILE *f = fopen("/proc/net/tcp6", "r");
    if (f == NULL)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned lport, st;
        unsigned long txq, rxq;
        if (sscanf(line, "%*d: %*32x:%4x %*32x:%*4x %2x %8lx:%8lx", &lport, &st, &txq, &rxq) == 4
            && (int) lport == port && st == 0x0A) {
            q = (int) rxq;
            break;
        }
    }
    fclose(f);
    return q;
}

static bool wait_listening(int port, int timeout_ms)
{
    uint64_t end = t_now_ms() + (uint64_t) timeout_ms;
    while (t_now_ms() < end) {
        if (servers_accept_queue(port) >= 0)
            return true;
        t_sleep_ms(20);
    }
    return false;
}

/* What the server prints on stdout and stderr, read on a thread as it comes:
 * a server whose pipe filled would block in its own logging and look stalled. */
struct output {
    pthread_t thread;
    int fds[2];
    _Atomic bool stop, done;
    char err[1 << 20];
    size_t len;
};

static void *read_output(void *arg)
{
    struct output *o = arg;
    bool open[2] = { o->fds[0] >= 0, o->fds[1] >= 0 };
    while (!atomic_load(&o->stop) && (open[0] || open[1])) {
        struct pollfd p[2] = { { open[0] ? o->fds[0] : -1, POLLIN, 0 },
                               { open[1] ? o->fds[1] : -1, POLLIN, 0 } };
        if (poll(p, 2, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++)
            if (p[i].revents) {
                char buf[8192];
                ssize_t n = read(o->fds[i], buf, sizeof buf);
                if (n <= 0) {
                    open[i] = false;
                } else if (i == 1) {
                    size_t take = (size_t) n < sizeof o->err - 1 - o->len
                                      ? (size_t) n : sizeof o->err - 1 - o->len;
                    memcpy(o->err + o->len, buf, take);
                    o->len += take;
                }
            }
    }
    o->err[o->len] = '\0';
    atomic_store(&o->done, true);
    return NULL;
}

static void settle(struct site *s);

/* Starts the server (bare or preloaded with `settings`) and waits until it listens. */
void servers_start(struct site *s, const char *const *settings, bool preload)
{
    s->port = t_free_port();
    s->upport = t_free_port();
    if (s->sv->upstream) {
        char port[16];
        snprintf(port, sizeof port, "%d", s->upport);
        const char *argv[] = { PY, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                               s->dir, port, NULL };
        s->up = spawn(argv, NULL, false);
        cr_assert(t_wait_listening(s->upport, 10000), "upstream did not listen");
    }
    memset(s->env, 0, sizeof s->env);
    s->sv->setup(s);
    int n = 0;
    while (s->env[n] != NULL)
        n++;
    for (int i = 0; settings != NULL && settings[i] != NULL && n < 7; i++)
        s->env[n++] = settings[i];
    s->proc = spawn(s->argv, s->env, preload);
    if (s->stop_signal != 0)
        leftovers_stop_with(&leftovers, s->proc.pid, s->stop_signal);
    s->output = calloc(1, sizeof *s->output);
    s->output->fds[0] = s->proc.out_fd;
    s->output->fds[1] = s->proc.err_fd;
    cr_assert_eq(pthread_create(&s->output->thread, NULL, read_output, s->output), 0);
    int governed = servers_governed_port(s);
    if (!wait_listening(governed, 20000)) {
        atomic_store(&s->output->stop, true);
        pthread_join(s->output->thread, NULL);
        cr_assert_fail("%s did not listen on %d; it printed [%s]", s->sv->name, governed,
                       s->output->err);
    }
    if (s->sv->setup_front != NULL) {
        s->sv->setup_front(s);
        s->up = spawn(s->front_argv, NULL, false);
        cr_assert(wait_listening(s->port, 10000), "the front of %s did not listen", s->sv->name);
    }
    if (s->sv->processes > 0)
        settle(s);
    if (s->sv->prime != NULL)
        s->sv->prime(s);
}

int servers_governed_port(const struct site *s)
{
    return s->sv->setup_front != NULL ? s->upport : s->port;
}

/* Until a service runs all its processes and they have finished starting (no
 * CPU for 300 ms): a worker still importing its framework would be counted as
 * the gate's CPU, and one not yet there would take no part in the budget. */
static void settle(struct site *s)
{
    uint64_t end = t_now_ms() + 20000;
    int n = 0;
    long spent = 1;
    while (t_now_ms() < end && (n < s->sv->processes || spent > 0)) {
        long before = tree_ticks(s->proc.pid);
        t_sleep_ms(300);
        spent = tree_ticks(s->proc.pid) - before;
        n = tree_size(s->proc.pid);
    }
    cr_assert_geq(n, s->sv->processes, "%s runs %d processes, not %d", s->sv->name, n,
                  s->sv->processes);
}

int servers_inside(int port, pid_t *holders, int *peers, int max)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ss -tnpH state established '( sport = :%d )' 2>/dev/null", port);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *pid = strstr(line, "pid=");
        if (pid == NULL)
            continue;   /* still in the accept queue: no process holds it */
        if (holders != NULL && n < max) {
            int peer = -1;
            sscanf(line, "%*d %*d %*s %*[^:]:%d", &peer);
            holders[n] = (pid_t) atoi(pid + 4);
            peers[n] = peer;
        }
        n++;
    }
    pclose(f);
    return n;
}

/* SIGTERM, then the exit status as a number (128+signal if killed). */
int servers_stop(struct site *s, char **err)
{
    int code = -1;
    if (s->proc.pid > 0) {
        kill(s->proc.pid, s->stop_signal != 0 ? s->stop_signal : SIGTERM);
        int status = t_wait(&s->proc, 10000);
        if (status != -1)
            code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (s->output != NULL) {
        /* Until both pipes end (its workers may hold them a little longer). */
        for (int i = 0; i < 50 && !atomic_load(&s->output->done); i++)
            t_sleep_ms(20);
        atomic_store(&s->output->stop, true);
        pthread_join(s->output->thread, NULL);
        if (err != NULL)
            *err = strdup(s->output->err);
        free(s->output);
        s->output = NULL;
    } else if (err != NULL) {
        *err = strdup("");
    }
    t_stop(&s->proc, 1000);
    t_stop(&s->up, 1000);
    return code;
}

