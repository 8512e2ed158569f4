/* clients.c — the held clients of the connection-gate tests and the server's
 * CPU meanwhile (see clients.h). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"
#include "clients.h"

void clients_connect_all(struct clients *c, int port, const char *request)
{
    clients_connect_len(c, port, request, request != NULL ? strlen(request) : 0);
}

void clients_connect_len(struct clients *c, int port, const char *request, size_t len)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NCLIENTS; i++) {
        c->fd[i] = t_connect(port);
        cr_assert_geq(c->fd[i], 0, "client %d could not connect", i);
        if (request != NULL)
            cr_assert_eq(send(c->fd[i], request, len, MSG_NOSIGNAL), (ssize_t) len);
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

/* The descendants of pid (and pid itself), from every /proc/PID/stat: the
 * kernel may lack /proc/PID/task/TID/children, and a worker may be a
 * grandchild (apache's, forked by a child). */
static int tree_of(pid_t root, pid_t *tree, int max)
{
    static pid_t pids[4096], parents[4096];
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL && n < 4096) {
        pid_t pid = (pid_t) atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        const char *after = strrchr(buf, ')');
        int ppid;
        if (after != NULL && sscanf(after + 1, " %*c %d", &ppid) == 1) {
            pids[n] = pid;
            parents[n++] = (pid_t) ppid;
        }
    }
    if (d != NULL)
        closedir(d);
    int count = 0;
    tree[count++] = root;
    for (int done = 0; done < count; done++)
        for (int i = 0; i < n && count < max; i++)
            if (parents[i] == tree[done])
                tree[count++] = pids[i];
    return count;
}

long tree_ticks(pid_t pid)
{
    pid_t tree[512];
    int n = tree_of(pid, tree, 512);
    long sum = 0;
    for (int i = 0; i < n; i++) {
        long t = t_cpu_ticks(tree[i]);
        sum += t > 0 ? t : 0;
    }
    return sum;
}

int tree_size(pid_t pid)
{
    pid_t tree[512];
    return tree_of(pid, tree, 512);
}
