/* cgroupmem.c — the process's memory cgroup (see cgroupmem.h).
 *
 * /proc/self/cgroup names the process's cgroup in each hierarchy ("0::/path"
 * for v2, "N:...memory...:/path" for v1); /proc/self/mountinfo says where each
 * hierarchy is mounted and which part of it the mount shows. A limit binds
 * from any ancestor too, so the walk goes up to the mount and keeps the
 * tightest; usage is read where that limit is. Runs at start-up (maybe before
 * malloc is ready): static buffers only, under the caller's one-time init. */
#include "cgroupmem.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "real.h"

#define UNLIMITED (1ull << 62)   /* v1 writes "no limit" as a page-rounded LLONG_MAX */

static char filebuf[65536];

/* Reads path into filebuf (NUL-terminated); its length, or -1. */
static ssize_t slurp(const char *path)
{
    int fd = REAL(open)(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    for (;;) {
        ssize_t n = REAL(read)(fd, filebuf + got, sizeof filebuf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t) n;
        if (got == sizeof filebuf - 1)
            break;
    }
    REAL(close)(fd);
    filebuf[got] = '\0';
    return (ssize_t) got;
}

/* A small file's first number; "max" is no limit (0). false if unreadable. */
static bool read_u64(const char *path, uint64_t *out)
{
    char b[64];
    int fd = REAL(open)(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = REAL(read)(fd, b, sizeof b - 1);
    REAL(close)(fd);
    if (n <= 0)
        return false;
    b[n] = '\0';
    if (strncmp(b, "max", 3) == 0) {
        *out = 0;
        return true;
    }
    uint64_t v = 0;
    int i = 0;
    for (; b[i] >= '0' && b[i] <= '9'; i++)
        v = v * 10 + (uint64_t) (b[i] - '0');
    if (i == 0)
        return false;
    *out = v >= UNLIMITED ? 0 : v;
    return true;
}

/* The path of the process's cgroup for v2 (want_v1 false) or v1's memory
 * hierarchy, copied into out; false if there is none. */
static bool own_cgroup(bool want_v1, char *out, size_t cap)
{
    if (slurp("/proc/self/cgroup") < 0)
        return false;
    for (char *line = filebuf; line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 != NULL) {
            *c2 = '\0';
            const char *ctl = c1 + 1, *path = c2 + 1;
            bool hit = false;
            if (!want_v1) {
                hit = line[0] == '0' && c1 == line + 1 && *ctl == '\0';
            } else {
                for (const char *p = ctl; *p != '\0';) {
                    size_t n = strcspn(p, ",");
                    if (n == 6 && strncmp(p, "memory", 6) == 0)
                        hit = true;
                    p += n + (p[n] == ',');
                }
            }
            if (hit && strlen(path) < cap) {
                memcpy(out, path, strlen(path) + 1);
                return true;
            }
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* Where the hierarchy holding cgroup path `cg` is mounted: the directory of
 * cg in it, in out. v1: a "cgroup" mount with the memory option. */
static bool mount_dir(bool v1, const char *cg, char *out, size_t cap, size_t *mount_len)
{
    if (slurp("/proc/self/mountinfo") < 0)
        return false;
    for (char *line = filebuf; line != NULL && *line != '\0';) {
        char *end = strchr(line, '\n');
        if (end != NULL)
            *end = '\0';
        char root[CGROUPMEM_PATH_MAX], point[CGROUPMEM_PATH_MAX], fstype[32], opts[256];
        char *sep = strstr(line, " - ");
        if (sep != NULL && sscanf(line, "%*s %*s %*s %511s %511s", root, point) == 2
            && sscanf(sep + 3, "%31s %*s %255s", fstype, opts) == 2) {
            bool ok = v1 ? strcmp(fstype, "cgroup") == 0 && (strstr(opts, ",memory") != NULL
                                                             || strncmp(opts, "memory", 6) == 0)
                         : strcmp(fstype, "cgroup2") == 0;
            size_t rl = strlen(root);
            const char *rel = cg;
            if (ok && strcmp(root, "/") != 0) {
                if (strncmp(cg, root, rl) == 0 && (cg[rl] == '/' || cg[rl] == '\0'))
                    rel = cg + rl;
                else
                    ok = false;
            }
            if (ok && strlen(point) + strlen(rel) + 1 < cap) {
                *mount_len = strlen(point);
                snprintf(out, cap, "%s%s", point, strcmp(rel, "/") == 0 ? "" : rel);
                return true;
            }
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* Walks from dir up to the mount (mount_len characters), keeping the
 * tightest limit and the usage file beside it. */
static void tightest(struct cgroupmem *m, char *dir, size_t mount_len, const char *limit_name,
                     const char *usage_name)
{
    char path[CGROUPMEM_PATH_MAX + 32];
    for (;;) {
        uint64_t lim;
        snprintf(path, sizeof path, "%s/%s", dir, limit_name);
        if (read_u64(path, &lim)) {
            if (m->usage_path[0] == '\0' || (lim != 0 && (m->limit == 0 || lim < m->limit))) {
                snprintf(m->usage_path, sizeof m->usage_path, "%s/%s", dir, usage_name);
                m->limit = lim;
            }
        }
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t) (slash - dir) < mount_len)
            break;
        *slash = '\0';
    }
}

bool cgroupmem_find(struct cgroupmem *m)
{
    memset(m, 0, sizeof *m);
    char cg[CGROUPMEM_PATH_MAX], dir[CGROUPMEM_PATH_MAX];
    size_t mount_len = 0;
    if (own_cgroup(false, cg, sizeof cg) && mount_dir(false, cg, dir, sizeof dir, &mount_len)) {
        memcpy(m->v2_dir, dir, sizeof dir);
        char probe[CGROUPMEM_PATH_MAX + 32];
        snprintf(probe, sizeof probe, "%s/memory.current", dir);
        if (access(probe, R_OK) == 0) {
            m->version = 2;
            tightest(m, dir, mount_len, "memory.max", "memory.current");
            return m->usage_path[0] != '\0';
        }
    }
    if (own_cgroup(true, cg, sizeof cg) && mount_dir(true, cg, dir, sizeof dir, &mount_len)) {
        m->version = 1;
        tightest(m, dir, mount_len, "memory.limit_in_bytes", "memory.usage_in_bytes");
        return m->usage_path[0] != '\0';
    }
    return false;
}

uint64_t cgroupmem_usage(const struct cgroupmem *m)
{
    uint64_t v = 0;
    if (m->usage_path[0] == '\0' || !read_u64(m->usage_path, &v))
        return 0;
    return v;
}

uint64_t cgroupmem_rss(void)
{
    char b[128];
    int fd = REAL(open)("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = REAL(read)(fd, b, sizeof b - 1);
    REAL(close)(fd);
    if (n <= 0)
        return 0;
    b[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (sscanf(b, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t) resident * (uint64_t) sysconf(_SC_PAGESIZE);
}
