/* statsfile_writers.c — who writes the stats file (see statsfile_writers.h):
 * this process's identity (pid and start time), the header line that names
 * the writer, whether an older writer of a %p-less path still lives, the names
 * of named temp files (NAME.tmp.PID.START.RAND), and the sweep of the temp
 * files of writers that are gone. The directory, the file's name and the lock
 * are statsfile.c's: it calls these under that lock, with its directory
 * descriptor and names. */
#include "statsfile_writers.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "procstat.h"
#include "real.h"
#include "statsfile.h"

#define HEADER_FORMAT "# sluice: written by pid %d (start time %llu)\n"

static pid_t my_pid;
static unsigned long long my_start;         /* field 22 of /proc/self/stat */

/* When pid started (clock ticks after boot), 0 if unknown; *gone: a zombie. */
static unsigned long long start_time(pid_t pid, bool *gone)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    const char *p = procstat_fields(path, buf, sizeof buf);   /* field 3 */
    *gone = p == NULL || *p == 'Z' || *p == 'X';
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    return p != NULL ? strtoull(p, NULL, 10) : 0;
}

/* Whether the process that started at start as pid is still running. */
static bool running(pid_t pid, unsigned long long start)
{
    bool gone;
    unsigned long long now = start_time(pid, &gone);
    return !gone && now == start;
}

void statsfile_know_myself(void)
{
    bool gone;
    my_pid = getpid();
    my_start = start_time(my_pid, &gone);
}

size_t statsfile_header(char *buf, size_t cap)
{
    int n = snprintf(buf, cap, HEADER_FORMAT, (int) my_pid, my_start);
    return n > 0 && (size_t) n < cap ? (size_t) n : 0;
}

/* Without %p: whether the file's writer is another live process that started
 * before this one (the parent of an exec'd child, the first of several). */
bool statsfile_older_writer_lives(int dir_fd, const char *name)
{
    int fd = REAL(openat)(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    char line[128];
    ssize_t n = -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        n = REAL(read)(fd, line, sizeof line - 1);
    REAL(close)(fd);
    if (n <= 0)
        return false;
    line[n] = '\0';
    int pid;
    unsigned long long start;
    if (sscanf(line, HEADER_FORMAT, &pid, &start) != 2 || pid <= 0)
        return false;
    if ((pid_t) pid == my_pid && start == my_start)
        return false;   /* this process, before an exec */
    bool older = start < my_start || (start == my_start && pid < my_pid);
    return older && running((pid_t) pid, start);
}

void statsfile_temp_name(const char *name, char *tmp, size_t cap)
{
    unsigned noise = 0;
    if (getrandom(&noise, sizeof noise, GRND_NONBLOCK) != (ssize_t) sizeof noise)
        noise = (unsigned) time(NULL) ^ (unsigned) (uintptr_t) &noise;
    snprintf(tmp, cap, "%s.tmp.%d.%llu.%08x", name, (int) my_pid, my_start, noise);
}

/* Whether entry is NAME.tmp.PID.START.RAND for a name of this template; the
 * writer's pid and start time. */
static bool temp_of_template(const char *template_abs, const char *entry, pid_t *pid,
                             unsigned long long *start)
{
    const char *mark = NULL;
    for (const char *p = strstr(entry, ".tmp."); p != NULL; p = strstr(p + 1, ".tmp."))
        mark = p;
    if (mark == NULL || mark[5] < '0' || mark[5] > '9')
        return false;
    char *end;
    long v = strtol(mark + 5, &end, 10);
    if (*end != '.' || end[1] < '0' || end[1] > '9' || v <= 0)
        return false;
    *pid = (pid_t) v;
    *start = strtoull(end + 1, &end, 10);
    if (*end != '.' || strlen(end + 1) != 8 || strspn(end + 1, "0123456789abcdef") != 8)
        return false;
    /* The part before .tmp. against the template's last component. */
    const char *tpl = strrchr(template_abs, '/');
    tpl = tpl != NULL ? tpl + 1 : template_abs;
    const char *s = entry;
    for (; *tpl; tpl++) {
        if (tpl[0] == '%' && tpl[1] == 'p') {
            const char *digits = s;
            while (s < mark && *s >= '0' && *s <= '9')
                s++;
            if (s == digits)
                return false;
            tpl++;
            continue;
        }
        if (tpl[0] == '%' && tpl[1] == '%')
            tpl++;
        if (s >= mark || *s != *tpl)
            return false;
        s++;
    }
    return s == mark;
}

/* Removes the temp files of this template's writers that are gone, ours
 * (same uid) only. Not without /proc: every writer would look gone. */
void statsfile_sweep_dead_temps(int dir_fd, const char *template_abs)
{
    if (my_start == 0)
        return;
    int fd = REAL(openat)(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    uid_t me = geteuid();
    char buf[8192];
    for (;;) {
        long n = REAL(syscall)(SYS_getdents64, (long) fd, (long) buf, (long) sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *) (buf + off);
            off += d->d_reclen;
            pid_t pid;
            unsigned long long start;
            struct stat st;
            if (temp_of_template(template_abs, d->d_name, &pid, &start)
                && !(pid == my_pid && start == my_start) && !running(pid, start)
                && fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == me)
                unlinkat(fd, d->d_name, 0);
        }
    }
    REAL(close)(fd);
}
