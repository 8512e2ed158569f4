/* leftovers.c — the record of what a test started or made and its clearing
 * (see leftovers.h): children stopped by PID, temporary paths removed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "leftovers.h"

struct t_proc leftovers_spawn(struct leftovers *l, const char *const *argv,
                              const char *const *env, bool preload)
{
    struct t_proc p = t_spawn(argv, env, preload);
    if (p.pid > 0 && l->nchildren < LEFTOVERS_MAX) {
        l->stop_signal[l->nchildren] = 0;
        l->children[l->nchildren++] = p.pid;
    }
    return p;
}

void leftovers_stop_with(struct leftovers *l, pid_t pid, int sig)
{
    for (int i = 0; i < l->nchildren; i++)
        if (l->children[i] == pid)
            l->stop_signal[i] = sig;
}

void leftovers_path(struct leftovers *l, const char *path)
{
    if (l->npaths < LEFTOVERS_MAX)
        snprintf(l->paths[l->npaths++], sizeof l->paths[0], "%s", path);
}

void leftovers_clear(struct leftovers *l)
{
    for (int i = 0; i < l->nchildren; i++) {
        pid_t pid = l->children[i];
        if (waitpid(pid, NULL, WNOHANG) != 0)
            continue;   /* reaped already (or gone): not ours to signal */
        /* nginx's master ends its workers */
        kill(pid, l->stop_signal[i] != 0 ? l->stop_signal[i] : SIGTERM);
        for (int t = 0; t < l->term_polls && waitpid(pid, NULL, WNOHANG) == 0; t++)
            t_sleep_ms(50);
        if (waitpid(pid, NULL, WNOHANG) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        /* Its workers, if they outlived it: the child leads its own process
         * group (t_spawn), whose id no other process can take while one of
         * them lives. */
        kill(-pid, SIGKILL);
    }
    l->nchildren = 0;
    for (int i = 0; i < l->npaths; i++) {
        char cmd[sizeof l->paths[0] + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%.127s'", l->paths[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", l->paths[i]);
    }
    l->npaths = 0;
}
