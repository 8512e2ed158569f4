/* fwd_probe.c — tells from inside a process whether sluice governs it and with
 * which limits (the public sluice_gauges, found with dlsym), after an exec or
 * a fork that wipes the environment the way nginx does for its workers.
 *   fwd_probe limits          print "conn_limit=N fs_limit=M" or "no sluice"
 *   fwd_probe exec            exec itself with "limits"
 *   fwd_probe fork-clearenv   fork; the child clears its environment, then prints
 *   fwd_probe fork-linger     print "parent PID" after 200 ms, fork; the child
 *                             prints "child PID", lives 500 ms more and exits
 *                             normally; the parent ends at once with _exit */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice.h"

static int print_limits(void)
{
    int (*gauges)(struct sluice_gauges *, size_t) =
        (int (*)(struct sluice_gauges *, size_t)) dlsym(RTLD_DEFAULT, "sluice_gauges");
    struct sluice_gauges g;
    if (gauges == NULL || gauges(&g, sizeof g) != 0) {
        printf("no sluice\n");
        return 0;
    }
    printf("conn_limit=%u fs_limit=%u\n", g.conn_limit, g.fs_limit);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "limits";
    if (strcmp(mode, "limits") == 0)
        return print_limits();
    if (strcmp(mode, "exec") == 0) {
        execl("/proc/self/exe", argv[0], "limits", (char *) NULL);
        perror("exec");
        return 1;
    }
    if (strcmp(mode, "fork-clearenv") == 0) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            clearenv();
            printf("child env %s; ", getenv("SLUICE_CONN_MAX") == NULL ? "wiped" : "kept");
            print_limits();
            fflush(stdout);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (strcmp(mode, "fork-linger") == 0) {
        usleep(200000);
        printf("parent %d\n", (int) getpid());
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            printf("child %d\n", (int) getpid());
            fflush(stdout);
            usleep(500000);
            exit(0);
        }
        _exit(pid > 0 ? 0 : 1);
    }
    fprintf(stderr, "usage: fwd_probe limits|exec|fork-clearenv|fork-linger\n");
    return 2;
}
