/* test_queue.c — waiting for a slot, observed from outside: threads blocked in
 * accept take turns in the order they began to wait (a freed slot is handed to
 * the longest waiting thread, none barges in). */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testlib.h"

static pid_t server_pid;

static void stop_leftover_server(void)
{
    if (server_pid > 0)
        kill(server_pid, SIGKILL);
    server_pid = 0;
}

TestSuite(queue, .fini = stop_leftover_server);

/* Connects n clients at once, then closes each as soon as its greeting comes
 * (which frees the slot for the next): returns how many were greeted. */
static int greet_and_close(int port, int n, int ms)
{
    int *fd = calloc((size_t) n, sizeof *fd);
    for (int i = 0; i < n; i++)
        fd[i] = t_connect(port);
    int greeted = 0;
    uint64_t end = t_now_ms() + (uint64_t) ms;
    struct pollfd *p = calloc((size_t) n, sizeof *p);
    while (greeted < n && t_now_ms() < end) {
        for (int i = 0; i < n; i++)
            p[i] = (struct pollfd) { .fd = fd[i], .events = POLLIN };
        if (poll(p, (nfds_t) n, 200) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (fd[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char buf[64];
            if (read(fd[i], buf, sizeof buf) > 0)
                greeted++;
            close(fd[i]);
            fd[i] = -1;
        }
    }
    for (int i = 0; i < n; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    free(p);
    free(fd);
    return greeted;
}

/* Eight threads blocked in accept, four slots, 80 connections: a thread that
 * closes its connection and comes back to accept queues behind the threads
 * already waiting, so every thread serves its tenth, give or take two. */
Test(queue, thread_pool_takes_turns)
{
    int port = t_free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[] = { t_helper("conn_threaded"), ports, "8", NULL };
    const char *env[] = { "SLUICE_CONN_MAX=4", NULL };
    struct t_proc srv = t_spawn(argv, env, true);
    server_pid = srv.pid;
    cr_assert(t_wait_listening(port, 5000), "server did not listen");
    t_sleep_ms(200);   /* every pool thread is in accept */
    int greeted = greet_and_close(port, 80, 20000);
    t_sleep_ms(200);
    kill(srv.pid, SIGTERM);
    char *out = t_slurp(srv.out_fd, 3000);
    t_stop(&srv, 1000);
    server_pid = 0;
    cr_assert_eq(greeted, 80, "only %d of 80 greeted", greeted);
    int per[8] = { 0 };
    for (const char *p = out; (p = strstr(p, " by ")) != NULL; p += 4) {
        int t = atoi(p + 4);
        if (t >= 0 && t < 8)
            per[t]++;
    }
    cr_log_info("per pool thread: %d %d %d %d %d %d %d %d", per[0], per[1], per[2], per[3],
                per[4], per[5], per[6], per[7]);
    for (int t = 0; t < 8; t++)
        cr_expect(per[t] >= 8 && per[t] <= 12, "pool thread %d served %d of 80: %d %d %d %d %d %d %d %d",
                  t, per[t], per[0], per[1], per[2], per[3], per[4], per[5], per[6], per[7]);
    free(out);
}
