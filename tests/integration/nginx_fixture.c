/* nginx_fixture.c — nginx's site, config and start for the edges and drain
 * suites (see nginx_fixture.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "helpers/drain_gen.h"
#include "nginx_fixture.h"

void nginx_make_site(char *dir, size_t dirsize, const char *template, long size,
                     struct leftovers *l)
{
    snprintf(dir, dirsize, "%s", template);
    cr_assert(mkdtemp(dir) != NULL);
    leftovers_path(l, dir);
    chmod(dir, 0755);   /* the workers run as nobody */
    char path[256];
    snprintf(path, sizeof path, "%s/big", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    static unsigned char buf[1 << 16];
    struct drain_gen g;
    drain_gen_init(&g, 42);
    for (long left = size; left > 0; left -= (long) sizeof buf) {
        size_t n = left < (long) sizeof buf ? (size_t) left : sizeof buf;
        drain_gen_fill(&g, buf, n);
        cr_assert_eq(fwrite(buf, 1, n, f), n);
    }
    cr_assert_eq(fclose(f), 0);
    chmod(path, 0644);
}

struct t_proc nginx_start(const char *dir, const char *http_settings, const char *servers,
                          const char *const *env, bool governed, const int *ports,
                          struct leftovers *l)
{
    char path[256], conf[2048];
    snprintf(conf, sizeof conf,
             "daemon off; master_process on; worker_processes 1;\n"
             "pid %1$s/nginx.pid; error_log %1$s/error.log;\n"
             "events { worker_connections 64; }\n"
             "http { access_log off; %2$s\n"
             "  client_body_temp_path %1$s/t1; proxy_temp_path %1$s/t2; fastcgi_temp_path %1$s/t3;\n"
             "  uwsgi_temp_path %1$s/t4; scgi_temp_path %1$s/t5;\n"
             "%3$s }\n",
             dir, http_settings, servers);
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL, "%s", path);
    fputs(conf, f);
    fclose(f);
    char errlog[128];
    snprintf(errlog, sizeof errlog, "%s/error.log", dir);
    const char *argv[] = { "/usr/sbin/nginx", "-p", dir, "-c", path, "-e", errlog, NULL };
    struct t_proc p = leftovers_spawn(l, argv, governed ? env : NULL, governed);
    for (int i = 0; ports[i] != 0; i++)
        cr_assert(t_wait_listening(ports[i], 5000), "nginx did not listen");
    return p;
}
