/* stats.c — the counters every gate bumps, and the writer that puts them in
 * SLUICE_STATS in the Prometheus text format: rendered into a buffer, written
 * to a fresh temp file in the same directory (O_EXCL|O_NOFOLLOW, mode 0600),
 * renamed over the target. A forked child writes only if the path has %p: with
 * one file for several processes, they would overwrite each other's figures. */
#include "stats.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fsgate.h"
#include "log.h"
#include "real.h"
#include "threads.h"

struct sluice_stats sluice_stats;

static _Atomic int writer_running;
static bool child_silent;            /* forked child of a %p-less path */

size_t stats_render(char *buf, size_t cap)
{
    size_t len = 0;
    fsgate_sync_stats();
#define RENDER(field, name, type, help) \
    do { \
        int64_t v_ = atomic_load_explicit(&sluice_stats.field, memory_order_relaxed); \
        bool secs_ = strstr(name, "_seconds") != NULL; \
        int n_; \
        if (secs_) \
            n_ = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n%s %lld.%09lld\n", \
                          name, help, name, type, name, (long long) (v_ / 1000000000), \
                          (long long) (v_ % 1000000000)); \
        else \
            n_ = snprintf(buf + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", \
                          name, help, name, type, name, (long long) v_); \
        if (n_ < 0 || (size_t) n_ >= cap - len) \
            return len; \
        len += (size_t) n_; \
    } while (0);
    SLUICE_METRICS(RENDER)
#undef RENDER
    return len;
}

/* The target path for this process: the template with %p as our pid. */
static bool target_path(char *out, size_t cap)
{
    const char *s = sluice_cfg.stats_path;
    int n = 0;
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int) getpid());
    size_t o = 0;
    for (; *s; s++) {
        const char *piece = s;
        size_t plen = 1;
        if (s[0] == '%' && s[1] == 'p') {
            piece = pid;
            plen = strlen(pid);
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            s++;
        }
        if (o + plen + 1 > cap)
            return false;
        memcpy(out + o, piece, plen);
        o += plen;
        n++;
    }
    out[o] = '\0';
    return n > 0;
}

void stats_write_now(void)
{
    if (sluice_cfg.stats_path[0] == '\0' || child_silent)
        return;
    int saved = errno;
    char path[SLUICE_PATH_MAX], tmp[SLUICE_PATH_MAX + 64], text[8192];
    if (!target_path(path, sizeof path))
        goto out;
    size_t len = stats_render(text, sizeof text);
    static _Atomic unsigned serial;
    int fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        /* Same directory as the target, so the rename is atomic. */
        /* Unpredictable, so that names planted in a shared directory cannot
         * make every attempt collide (the writer would give up). */
        unsigned noise = 0;
        if (getrandom(&noise, sizeof noise, GRND_NONBLOCK) != (ssize_t) sizeof noise)
            noise = (unsigned) time(NULL);
        snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int) getpid(),
                 atomic_fetch_add(&serial, 1) ^ noise);
        fd = REAL(open)(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        static _Atomic int warned;
        if (!atomic_exchange(&warned, 1))
            log_warn("SLUICE_STATS: cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = REAL(write)(fd, text + done, len - done);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        done += (size_t) n;
    }
    REAL(close)(fd);
    if (done != len || rename(tmp, path) != 0)
        unlink(tmp);
out:
    errno = saved;
}

/* How often the writer looks whether the program has ended all its threads
 * (threads.c): the longest a process outlives its last thread. */
#define LIVENESS_NS 200000000ULL

static void *writer(void *arg)
{
    (void) arg;
    threads_adopt_self();
    uint64_t interval = sluice_cfg.stats_interval_ns, waited = interval;
    for (;;) {
        if (waited >= interval) {
            stats_write_now();
            waited = 0;
        }
        uint64_t step = interval - waited < LIVENESS_NS ? interval - waited : LIVENESS_NS;
        struct timespec ts = { .tv_sec = (time_t) (step / 1000000000ULL),
                               .tv_nsec = (long) (step % 1000000000ULL) };
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        waited += step;
        threads_exit_if_only_ours();
    }
    return NULL;
}

void stats_start(void)
{
    if (sluice_cfg.stats_path[0] == '\0' || child_silent)
        return;
    if (atomic_exchange(&writer_running, 1))
        return;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Signals are the program's: the writer must never be the thread they land on. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t, &attr, writer, NULL) != 0)
        atomic_store(&writer_running, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

void stats_atfork_child(void)
{
    atomic_store(&writer_running, 0);
    if (strstr(sluice_cfg.stats_path, "%p") == NULL) {
        child_silent = true;
        return;
    }
    /* The child's figures start from what it holds: nothing in flight. */
    STAT_SET(conn_in_flight, 0);
    STAT_SET(fs_in_use, 0);
    stats_start();
}
