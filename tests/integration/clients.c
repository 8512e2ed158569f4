/* clients.c — the held clients of the connection-gate tests and the server's
 * CPU meanwhile (see clients.h). */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"
#include "clients.h"

void clients_connect_all(struct clients *c, int port, const char *request)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NCLIENTS; i++) {
        c->fd[i] = t_connect(port);
        cr_assert_geq(c->fd[i], 0, "client %d could not connect", i);
        if (request != NULL)
            cr_assert_eq(send(c->fd[i], request, strlen(request), MSG_NOSIGNAL),
                         (ssize_t) strlen(request));
    }
}

int clients_collect(struct clients *c, int target, int ms, const char *answer)
{
    uint64_t end = t_now_ms() + (uint64_t) ms;
    while (c->nserved < target && t_now_ms() < end) {
        struct pollfd pf[NCLIENTS];
        int idx[NCLIENTS], n = 0;
        for (int i = 0; i < NCLIENTS; i++)
            if (!c->served[i] && c->fd[i] >= 0) {
                pf[n] = (struct pollfd) { .fd = c->fd[i], .events = POLLIN };
                idx[n++] = i;
            }
        if (n == 0 || poll(pf, (nfds_t) n, 20) <= 0)
            continue;
        for (int k = 0; k < n; k++)
            if (pf[k].revents) {
                char buf[1024];
                ssize_t r = recv(pf[k].fd, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (r > 0) {
                    buf[r] = '\0';
                    if (answer != NULL)
                        cr_assert(strncmp(buf, answer, strlen(answer)) == 0,
                                  "client %d got [%s]", idx[k], buf);
                    c->served[idx[k]] = true;
                    c->nserved++;
                } else if (r == 0 && answer != NULL) {
                    cr_assert_fail("client %d: the server closed without answering", idx[k]);
                }
            }
    }
    return c->nserved;
}

void clients_close_one_served(struct clients *c)
{
    for (int i = 0; i < NCLIENTS; i++)
        if (c->served[i] && c->fd[i] >= 0) {
            close(c->fd[i]);
            c->fd[i] = -1;
            return;
        }
}

void clients_close_served(struct clients *c)
{
    for (int i = 0; i < NCLIENTS; i++)
        if (c->served[i] && c->fd[i] >= 0) {
            close(c->fd[i]);
            c->fd[i] = -1;
        }
}

void clients_close_all(struct clients *c)
{
    for (int i = 0; i < NCLIENTS; i++)
        if (c->fd[i] >= 0)
            close(c->fd[i]);
}

long tree_ticks(pid_t pid)
{
    long sum = t_cpu_ticks(pid);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int) pid, (int) pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        int child;
        while (fscanf(f, "%d", &child) == 1)
            sum += t_cpu_ticks(child);
        fclose(f);
    }
    return sum;
}
