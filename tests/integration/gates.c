/* gates.c — the connection gates watched from outside, shared by the servers
 * and service suites (see servers.h): pause (4 served, the rest in the accept
 * queue, CPU ~0, one close admits one, all served in the end) and shed (a
 * whole 503 for every client over the limit, none below it). A service's
 * "served" is counted on both sides: answers the clients got, and
 * connections the server's processes hold (ss -tnp). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "servers.h"

/* --- pause ---------------------------------------------------------------------- */

void servers_pause_gate(const struct server *sv, const char *const *settings)
{
    struct site s;
    servers_make_site(&s, sv);
    servers_start(&s, settings, true);
    int port = servers_governed_port(&s);
    bool service = sv->processes > 0;
    uint64_t t0 = t_now_ms();
    struct clients c;
    clients_connect_len(&c, s.port, sv->request,
                        sv->request_len > 0 ? sv->request_len : strlen(sv->request));
    cr_assert_geq(clients_collect(&c, LIMIT, 5000, sv->answer), LIMIT, "%s: served %d at first",
                  sv->name, c.nserved);
    /* A service is given a second to show what its workers would take
     * together (apache's prefork grows its children meanwhile). */
    clients_collect(&c, NCLIENTS, service ? 1000 : 300, sv->answer);
    int inside = servers_inside(port, NULL, NULL, 0);
    cr_log_info("%s pause: %d served (%d connections inside the server)", sv->name, c.nserved,
                inside);
    cr_assert_eq(c.nserved, LIMIT, "%s: served %d (%d inside), over the limit", sv->name,
                 c.nserved, inside);
    if (service)
        cr_assert_eq(inside, LIMIT, "%s: its processes hold %d connections", sv->name, inside);
    int queue = -1;
    for (int i = 0; i < 50 && queue != NCLIENTS - LIMIT; i++) {
        queue = servers_accept_queue(port);
        t_sleep_ms(20);
    }
    cr_assert_eq(queue, NCLIENTS - LIMIT, "%s: accept queue %d", sv->name, queue);

    long ticks = tree_ticks(s.proc.pid);
    t_sleep_ms(1000);
    ticks = tree_ticks(s.proc.pid) - ticks;
    cr_assert_leq(ticks, 5, "%s: the paused server used %ld ticks in 1 s", sv->name, ticks);
    cr_assert_eq(clients_collect(&c, NCLIENTS, 50, sv->answer), LIMIT, "%s: served %d while paused",
                 sv->name, c.nserved);

    clients_close_one_served(&c);
    uint64_t t1 = t_now_ms();
    cr_assert_eq(clients_collect(&c, LIMIT + 1, 2000, sv->answer), LIMIT + 1,
                 "%s: one close let %d in", sv->name, c.nserved - LIMIT);
    uint64_t next_ms = t_now_ms() - t1;
    cr_assert_eq(clients_collect(&c, NCLIENTS, 300, sv->answer), LIMIT + 1,
                 "%s: one close let %d in", sv->name, c.nserved - LIMIT);

    /* Then waves: close every served client, the next ones come in. */
    uint64_t end = t_now_ms() + 20000;
    while (c.nserved < NCLIENTS && t_now_ms() < end) {
        int open_served = 0;
        for (int i = 0; i < NCLIENTS; i++)
            if (c.served[i] && c.fd[i] >= 0) {
                close(c.fd[i]);
                c.fd[i] = -1;
                open_served++;
            }
        int target = c.nserved + open_served;
        clients_collect(&c, target < NCLIENTS ? target : NCLIENTS, 3000, sv->answer);
        int open = 0;
        for (int i = 0; i < NCLIENTS; i++)
            open += c.served[i] && c.fd[i] >= 0;
        cr_assert_leq(open, LIMIT, "%s: %d served and open at once", sv->name, open);
    }
    cr_assert_eq(c.nserved, NCLIENTS, "%s: %d of %d served in the end", sv->name, c.nserved,
                 NCLIENTS);
    cr_log_info("%s pause: served %d at first, %d queued, %ld CPU ticks in 1 s paused, next one "
                "%llu ms after a close, all %d in %llu ms", sv->name, LIMIT, queue, ticks,
                (unsigned long long) next_ms, NCLIENTS, (unsigned long long) (t_now_ms() - t0));
    clients_close_all(&c);
    char *err = NULL;
    servers_stop(&s, &err);
    /* A paused listener is not ready, so the program's accept does not fail for
     * it (memcached prints each EAGAIN its accept4 gets; bare, none). Before:
     * 59 to 2,318 a run while a worker thread was still applying the pause
     * (the listener shown, no slot); 0 to 4 while a wait that began during the
     * change could still report the listener about to be hidden; 0 in 8 runs
     * since readiness waits let the change finish first. One is allowed for a
     * scheduler's worst case, not for a loop. */
    int eagains = 0;
    for (const char *p = err; (p = strstr(p, "Resource temporarily unavailable")) != NULL; p++)
        eagains++;
    cr_assert_leq(eagains, 1, "%s: its accept failed with EAGAIN %d times while paused",
                 sv->name, eagains);
    free(err);
}

/* --- shed ------------------------------------------------------------------------ */

/* Connects, sends the request, reads to EOF (bounded): the whole answer. */
static char *exchange(int port, const char *request, int *reset)
{
    int c = t_connect(port);
    cr_assert_geq(c, 0);
    struct timeval tv = { 3, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t len = (ssize_t) strlen(request);
    cr_assert_eq(send(c, request, (size_t) len, MSG_NOSIGNAL), len);
    char *buf = malloc(8192);
    size_t got = 0;
    ssize_t r;
    while (got < 8191 && (r = recv(c, buf + got, 8191 - got, 0)) > 0)
        got += (size_t) r;
    if (reset != NULL)
        *reset = got < 8191 && r < 0 && errno == ECONNRESET;
    buf[got] = '\0';
    close(c);
    return buf;
}

/* What a client over the limit gets: read to EOF when it is a 503 (whose
 * whole body and clean close are checked), its first bytes otherwise (an
 * admitted client is held, not closed). Bounded: 3 s. */
static char *answer_of(int c, int *reset)
{
    struct timeval tv = { 3, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char *buf = malloc(8192);
    size_t got = 0;
    ssize_t r = 0;
    while (got < 8191 && (r = recv(c, buf + got, 8191 - got, 0)) > 0) {
        got += (size_t) r;
        if (got >= 12 && strncmp(buf, "HTTP/1.1 503", 12) != 0)
            break;
    }
    *reset = got < 8191 && r < 0 && errno == ECONNRESET;
    buf[got] = '\0';
    return buf;
}

static bool whole_503(const char *ans)
{
    const char *body = strstr(ans, "\r\n\r\n");
    const char *cl = strstr(ans, "Content-Length: ");
    return strncmp(ans, "HTTP/1.1 503 ", 13) == 0 && strstr(ans, "\r\nRetry-After: 7\r\n") != NULL
           && body != NULL && cl != NULL && strlen(body + 4) == (size_t) atoi(cl + 16);
}

void servers_shed_gate(const struct server *sv, const char *const *settings)
{
    struct site s;
    servers_make_site(&s, sv);
    servers_start(&s, settings, true);
    struct clients c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < NCLIENTS; i++)
        c.fd[i] = -1;
    /* Arriving one after another, each held once served: no 503 while the
     * server (the whole service) holds fewer than 4. */
    for (int i = 0; i < LIMIT; i++) {
        c.fd[i] = t_connect(s.port);
        cr_assert_eq(send(c.fd[i], sv->request, strlen(sv->request), MSG_NOSIGNAL),
                     (ssize_t) strlen(sv->request));
        cr_assert_eq(clients_collect(&c, i + 1, 5000, sv->answer), i + 1,
                     "%s: client %d, below the limit, was not served", sv->name, i);
    }
    /* Then each one over the limit gets a whole 503; one that is served
     * instead is held too (the slot it took stays taken). */
    int whole = 0, resets = 0, admitted = 0;
    const int over = 12;
    char *wrong = NULL;
    for (int i = 0; i < over; i++) {
        int fd = t_connect(s.port);
        cr_assert_geq(fd, 0);
        const char *req = "GET /hi HTTP/1.1\r\nHost: t\r\n\r\n";
        cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t) strlen(req));
        int reset = 0;
        char *ans = answer_of(fd, &reset);
        if (whole_503(ans)) {
            whole++;
            resets += reset;
            close(fd);
        } else {
            admitted++;
            if (wrong == NULL)
                wrong = strdup(ans);
            c.fd[LIMIT + i] = fd;
        }
        free(ans);
    }
    cr_log_info("%s shed: %d of %d over the limit got a whole 503, %d were served", sv->name,
                whole, over, admitted);
    cr_assert_eq(whole, over, "%s: %d of %d clients over the limit got a whole 503, %d were "
                 "served (the first: [%s])", sv->name, whole, over, admitted, wrong);
    cr_assert_eq(resets, 0, "%s: %d of %d shed clients saw a reset after the 503", sv->name,
                 resets, over);
    free(wrong);
    clients_close_all(&c);
    /* The server itself was never disturbed: with the slots free it answers. */
    uint64_t end = t_now_ms() + 3000;
    char *ans = NULL;
    do {
        free(ans);
        t_sleep_ms(50);
        ans = exchange(s.port, HTTP_BIG("/hi"), NULL);
    } while (strncmp(ans, "HTTP/1.1 200", 12) != 0 && t_now_ms() < end);
    cr_assert(strncmp(ans, "HTTP/1.1 200", 12) == 0, "%s after shedding: [%s]", sv->name, ans);
    free(ans);
    servers_stop(&s, NULL);
}

