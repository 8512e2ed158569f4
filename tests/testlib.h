/* testlib.h — what every test needs to run real programs under the library and
 * watch them from outside: spawn with settings, wait with a bound, stop by PID,
 * read CPU time, accept-queue lengths and unsent bytes. */
#ifndef SLUICE_TESTLIB_H
#define SLUICE_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The library under test (build dir's libsluice.so) and the helpers' directory. */
const char *t_lib(void);
const char *t_helper(const char *name);     /* path of build/helpers/NAME */
const char *t_source(const char *relpath);  /* path inside the source tree */

/* The LD_PRELOAD value for a governed child: the library, behind the sanitizer
 * runtime when the build is sanitized. */
const char *t_preload(void);

struct t_proc {
    pid_t pid;
    int out_fd;   /* child's stdout (read end), -1 if not captured */
    int err_fd;   /* child's stderr (read end), -1 if not captured */
};

/* Starts argv with the library preloaded (preload=true) or bare, with env
 * entries "NAME=VALUE" added (NULL-terminated, may be NULL). Captures stdout and
 * stderr into pipes. */
struct t_proc t_spawn(const char *const *argv, const char *const *env, bool preload);
/* Waits at most timeout_ms; returns the exit status as from waitpid (or -1 on
 * timeout, after killing the child with SIGKILL). */
int t_wait(struct t_proc *p, int timeout_ms);
/* SIGTERM, then SIGKILL after grace_ms; reaps. Only the given PID. */
void t_stop(struct t_proc *p, int grace_ms);
/* Reads all of fd until EOF or timeout into a malloc'd NUL-terminated string. */
char *t_slurp(int fd, int timeout_ms);
/* Reads what arrives on fd within timeout_ms, returning after the first chunk
 * (malloc'd, NUL-terminated, possibly empty). */
char *t_slurp_some(int fd, int timeout_ms);
/* Runs argv to completion (bounded); returns exit code, stdout and stderr. */
int t_run(const char *const *argv, const char *const *env, bool preload, int timeout_ms,
          char **out, char **err);

/* A free TCP port on 127.0.0.1 (bound and released). */
int t_free_port(void);
/* Waits until something listens on 127.0.0.1:port (bounded); true if it does. */
bool t_wait_listening(int port, int timeout_ms);
/* Connects to 127.0.0.1:port; returns the socket or -1. */
int t_connect(int port);

/* CPU time (user + system) of pid, in clock ticks, from /proc/PID/stat. */
long t_cpu_ticks(pid_t pid);
/* Resident memory of pid in KiB, from /proc/PID/status (VmRSS). */
long t_rss_kib(pid_t pid);
/* Accept-queue length (Recv-Q of the LISTEN socket) on 127.0.0.1:port, or -1. */
int t_accept_queue(int port);

void t_sleep_ms(int ms);
uint64_t t_now_ms(void);

#endif
