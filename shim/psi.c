/* psi.c — the memory-pressure trigger (see psi.h).
 *
 * A PSI trigger is a write of "some|full STALL_US WINDOW_US" to a pressure
 * file kept open; the kernel then reports POLLPRI on it at most once per
 * window while the stall threshold is crossed (Documentation/accounting/
 * psi.rst). systemd hands a service its own choice in $MEMORY_PRESSURE_WATCH
 * (a pressure file, or a FIFO it writes to) and $MEMORY_PRESSURE_WRITE (what
 * to write, base64); "/dev/null" means: do not watch. */
#include "psi.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"

#define DEFAULT_TRIGGER "some 150000 1000000"
/* Without CAP_SYS_RESOURCE the kernel takes only windows of whole multiples
 * of 2 s (since Linux 6.4): the same share of stalled time over 2 s. */
#define UNPRIVILEGED_TRIGGER "some 300000 2000000"

static int b64(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

long psi_base64_decode(const char *src, char *out, unsigned long cap)
{
    unsigned long n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (const char *p = src; *p != '\0' && *p != '='; p++) {
        int v = b64(*p);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char) ((acc >> bits) & 0xff);
        }
    }
    out[n] = '\0';
    return (long) n;
}

/* Opens path for a trigger and writes it (ours: the default, which may
 * fall back to the unprivileged form); the descriptor, or -1. */
static int trigger(const char *path, const char *text, size_t len, bool ours)
{
    int fd = REAL(open)(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (REAL(write)(fd, text, len) == (ssize_t) len)
        return fd;
    if (ours
        && REAL(write)(fd, UNPRIVILEGED_TRIGGER, sizeof UNPRIVILEGED_TRIGGER - 1)
               == (ssize_t) (sizeof UNPRIVILEGED_TRIGGER - 1))
        return fd;
    REAL(close)(fd);
    return -1;
}

struct psi_watch psi_open(const char *cgroup_v2_dir)
{
    struct psi_watch w = { -1, EPOLLPRI, NULL };
    const char *watch = getenv("MEMORY_PRESSURE_WATCH");
    if (watch != NULL && *watch != '\0') {
        if (strcmp(watch, "/dev/null") == 0)
            return w;
        char text[256];
        const char *write_b64 = getenv("MEMORY_PRESSURE_WRITE");
        long len = -1;
        if (write_b64 != NULL && *write_b64 != '\0')
            len = psi_base64_decode(write_b64, text, sizeof text);
        struct stat st;
        if (stat(watch, &st) == 0 && S_ISFIFO(st.st_mode)) {
            /* Read-write: a FIFO whose last writer left reports a hang-up
             * for ever; holding a write end ourselves, it never does. */
            w.fd = REAL(open)(watch, O_RDWR | O_NONBLOCK | O_CLOEXEC);
            w.events = EPOLLIN;
        } else if (len > 0) {
            w.fd = trigger(watch, text, (size_t) len, false);
        } else {
            w.fd = trigger(watch, DEFAULT_TRIGGER, sizeof DEFAULT_TRIGGER - 1, true);
        }
        w.source = watch;
        return w;
    }
    static char own[600];
    if (cgroup_v2_dir != NULL && *cgroup_v2_dir != '\0') {
        snprintf(own, sizeof own, "%s/memory.pressure", cgroup_v2_dir);
        w.fd = trigger(own, DEFAULT_TRIGGER, sizeof DEFAULT_TRIGGER - 1, true);
        w.source = own;
    }
    if (w.fd < 0) {
        w.fd = trigger("/proc/pressure/memory", DEFAULT_TRIGGER, sizeof DEFAULT_TRIGGER - 1, true);
        w.source = "/proc/pressure/memory";
    }
    return w;
}
