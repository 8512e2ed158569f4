/* load_client.c PORT open RATE SECONDS TIMEOUT_MS [STATS_FILE [SIGNAL_AT_S PID]]
 *               PORT closed CONCURRENCY SECONDS TIMEOUT_MS
 * An HTTP load generator, one connection per request (GET /, read to EOF).
 * open: RATE requests a second on a fixed schedule, whatever the answers
 * (open loop: a slow server does not slow the offer). closed: CONCURRENCY
 * requests always in flight. A request not answered within TIMEOUT_MS is
 * closed and counted late. With STATS_FILE, each second's line shows
 * sluice_auto_limit read from it; with SIGNAL_AT_S PID, SIGUSR1 goes to PID
 * that many seconds in (the server's cost doubles).
 * Prints one line per second, "sec S ok N p99_ms X limit L", then
 * "total sent N ok N shed N late N failed N goodput R p50_ms X p99_ms X". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 16384
#define MAX_SAMPLES 400000

struct req {
    int fd;
    uint64_t start;
    int status;          /* HTTP status once read */
    size_t got;
    char head[16];
};

static struct req reqs[MAX_CONNS];
static int free_list[MAX_CONNS], nfree;
static uint32_t lat_all[MAX_SAMPLES], lat_sec[MAX_SAMPLES];
static size_t n_all, n_sec;
static uint64_t sent, ok, shed, late, failed;
static struct sockaddr_in addr;
static int ep;

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000u + (uint64_t) t.tv_nsec / 1000u;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static double pct(uint32_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_u32);
    size_t i = (size_t) (p * (double) (n - 1) + 0.5);
    return v[i] / 1000.0;
}

static long read_limit(const char *path)
{
    if (path == NULL)
        return -1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "sluice_auto_limit ", 18) == 0)
            v = atol(line + 18);
    fclose(f);
    return v;
}

static void finish(int i, bool timed_out)
{
    struct req *r = &reqs[i];
    uint64_t lat = now_us() - r->start;
    if (timed_out) {
        struct linger lg = { 1, 0 };   /* no TIME_WAIT left behind */
        setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        late++;
    } else if (r->status == 200) {
        ok++;
        if (n_all < MAX_SAMPLES)
            lat_all[n_all++] = (uint32_t) lat;
        if (n_sec < MAX_SAMPLES)
            lat_sec[n_sec++] = (uint32_t) lat;
    } else if (r->status == 503 || r->status == 429) {
        shed++;
    } else {
        failed++;
    }
    close(r->fd);
    r->fd = -1;
    free_list[nfree++] = i;
}

static void start_one(void)
{
    if (nfree == 0) {
        failed++;
        return;
    }
    int i = free_list[--nfree];
    struct req *r = &reqs[i];
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r->start = now_us();
    r->status = 0;
    r->got = 0;
    sent++;
    if (r->fd < 0 || (connect(r->fd, (struct sockaddr *) &addr, sizeof addr) != 0 && errno != EINPROGRESS)) {
        if (r->fd >= 0)
            close(r->fd);
        r->fd = -1;
        failed++;
        free_list[nfree++] = i;
        return;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t) i };
    epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &ev);
}

static void on_event(int i, uint32_t events)
{
    struct req *r = &reqs[i];
    if (r->fd < 0)
        return;
    if (events & EPOLLOUT) {
        static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if (write(r->fd, get, sizeof get - 1) != (ssize_t) sizeof get - 1) {
            finish(i, false);
            return;
        }
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t) i };
        epoll_ctl(ep, EPOLL_CTL_MOD, r->fd, &ev);
        return;
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n > 0) {
            for (ssize_t k = 0; k < n && r->got < sizeof r->head - 1; k++)
                r->head[r->got++] = buf[k];
            r->head[r->got] = '\0';
            if (r->status == 0 && r->got >= 12)
                r->status = atoi(r->head + 9);
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            return;
        finish(i, false);
        return;
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: load_client PORT open|closed RATE|CONC SECONDS TIMEOUT_MS [STATS [AT PID]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t) atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool open_loop = strcmp(argv[2], "open") == 0;
    double level = atof(argv[3]);
    double seconds = atof(argv[4]);
    uint64_t timeout = (uint64_t) atol(argv[5]) * 1000u;
    const char *stats = argc > 6 ? argv[6] : NULL;
    double signal_at = argc > 8 ? atof(argv[7]) : -1;
    pid_t signal_pid = argc > 8 ? (pid_t) atoi(argv[8]) : 0;
    ep = epoll_create1(0);
    for (int i = MAX_CONNS - 1; i >= 0; i--) {
        reqs[i].fd = -1;
        free_list[nfree++] = i;
    }
    uint64_t t0 = now_us(), end = t0 + (uint64_t) (seconds * 1e6), next_sec = t0 + 1000000u;
    uint64_t scheduled = 0, ok_sec = 0;
    bool signalled = false;
    int sec = 0;
    while (now_us() < end) {
        uint64_t now = now_us();
        if (open_loop) {
            uint64_t due = (uint64_t) ((double) (now - t0) / 1e6 * level);
            while (scheduled < due) {
                start_one();
                scheduled++;
            }
        } else {
            while (MAX_CONNS - nfree < (int) level)
                start_one();
        }
        if (!signalled && signal_at >= 0 && now - t0 >= (uint64_t) (signal_at * 1e6)) {
            signalled = true;
            kill(signal_pid, SIGUSR1);
        }
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 1);
        for (int k = 0; k < n; k++)
            on_event((int) evs[k].data.u32, evs[k].events);
        now = now_us();
        for (int i = 0; i < MAX_CONNS; i++)
            if (reqs[i].fd >= 0 && now - reqs[i].start > timeout)
                finish(i, true);
        if (now >= next_sec) {
            sec++;
            printf("sec %d ok %llu p99_ms %.1f limit %ld\n", sec, (unsigned long long) (ok - ok_sec),
                   pct(lat_sec, n_sec, 0.99), read_limit(stats));
            fflush(stdout);
            ok_sec = ok;
            n_sec = 0;
            next_sec += 1000000u;
        }
    }
    /* What is still in flight at the end gets its timeout to finish. */
    uint64_t drain_end = now_us() + timeout;
    while (nfree < MAX_CONNS && now_us() < drain_end) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 5);
        for (int k = 0; k < n; k++)
            on_event((int) evs[k].data.u32, evs[k].events);
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (reqs[i].fd >= 0)
            finish(i, true);
    printf("total sent %llu ok %llu shed %llu late %llu failed %llu goodput %.1f p50_ms %.1f p99_ms %.1f\n",
           (unsigned long long) sent, (unsigned long long) ok, (unsigned long long) shed,
           (unsigned long long) late, (unsigned long long) failed, (double) ok / seconds,
           pct(lat_all, n_all, 0.50), pct(lat_all, n_all, 0.99));
    return 0;
}
