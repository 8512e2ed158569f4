/* nginx_fixture.h — an nginx of the edges and drain suites: a fresh dir
 * holding a drain_gen file, a config with one worker on 127.0.0.1 only, and
 * the start (bare or preloaded) until it listens. */
#ifndef SLUICE_TEST_NGINX_FIXTURE_H
#define SLUICE_TEST_NGINX_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "leftovers.h"
#include "testlib.h"

/* A fresh dir made from template (mkdtemp; remembered in l; readable by
 * nginx's unprivileged workers) holding `size` bytes of the drain_gen stream
 * (seed 42) as DIR/big. */
void nginx_make_site(char *dir, size_t dirsize, const char *template, long size,
                     struct leftovers *l);

/* Writes DIR/nginx.conf (one worker, temp paths and logs in dir) whose http
 * block holds http_settings and servers, starts nginx (preloaded with env when
 * governed, bare otherwise; remembered in l) and waits until each of ports (0
 * ends the list) listens. */
struct t_proc nginx_start(const char *dir, const char *http_settings, const char *servers,
                          const char *const *env, bool governed, const int *ports,
                          struct leftovers *l);

#endif
