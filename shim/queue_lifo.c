/* queue_lifo.c — newest first (see queue_lifo.h).
 *
 * The kernel's accept queue is first in, first out; to serve the newest first
 * sluice must hold the waiting connections itself. While every slot is busy
 * its thread accepts arrivals (non-blocking, close-on-exec, the peer address
 * kept) onto a stack per listener, marked as sluice's own descriptors (a
 * program closing everything cannot take them). The stack holds at most
 * LIFO_CAP, SLUICE_QUEUE_MAX, and a quarter of the descriptor numbers still
 * free above the newest (the program must never meet EMFILE because of it);
 * past that, and past SLUICE_QUEUE_TIMEOUT, the OLDEST gets the shed answer.
 *
 * Hand-off: the program's accept, once it holds a slot, pops the newest (its
 * flags applied with fcntl, the peer address copied as the kernel would). A
 * loop that waits in epoll/poll/select must first be told: the connections are
 * no longer in the kernel's queue, so when a slot is free and something is
 * held the thread rings a doorbell, a connection of its own to the listener.
 * The kernel then reports the listener readable to every kind of waiter (an
 * edge for edge-triggered ones); the program's accept recognises the doorbell
 * by its peer port, closes it and returns the newest held connection instead.
 * Limits: TCP listeners on an address sluice can connect to (a wildcard one via
 * loopback); in a SO_REUSEPORT group the doorbell may reach another socket. */
#include "real.h"

#include "queue_lifo.h"

#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "config.h"
#include "fdtab.h"
#include "queue_stats.h"
#include "shed.h"
#include "slots.h"
#include "sys.h"

#define MAX_LISTENERS 64
#define LIFO_CAP 1024
#define DRAIN_MAX 256

struct held {
    int fd;
    socklen_t alen;
    uint64_t stamp;
    struct sockaddr_storage addr;
};

struct lstack {
    _Atomic int fd_plus_one;
    _Atomic pid_t lock;            /* holder's thread id, 0: free */
    struct held *h;                /* LIFO_CAP places, a ring: [bottom, bottom + count) */
    uint32_t bottom, count;
    _Atomic uint32_t held_now;     /* count, for lock-free looks */
    _Atomic int bell;              /* the doorbell's client socket + 1, 0: none */
    _Atomic int bell_port;         /* its local port (host order) */
};

static struct lstack stacks[MAX_LISTENERS];
static bool enabled;

bool lifo_on(void)
{
    return enabled;
}

static struct lstack *find(int fd)
{
    for (int i = 0; i < MAX_LISTENERS; i++) {
        int v = atomic_load_explicit(&stacks[i].fd_plus_one, memory_order_relaxed);
        if (v == fd + 1)
            return &stacks[i];
        if (v == 0)
            return NULL;
    }
    return NULL;
}

void lifo_note_listener(int fd)
{
    if (!enabled || find(fd) != NULL)
        return;
    for (int i = 0; i < MAX_LISTENERS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&stacks[i].fd_plus_one, &expected, fd + 1)
            || expected == fd + 1)
            return;
    }
}

/* The lock: short, never held across a blocking call. A signal handler that
 * accepts on the thread holding it gets false (it leaves the stack alone). */
static bool lock(struct lstack *s)
{
    pid_t me = sys_gettid(), free_word = 0;
    if (atomic_load(&s->lock) == me)
        return false;
    while (!atomic_compare_exchange_weak(&s->lock, &free_word, me)) {
        free_word = 0;
        sched_yield();
    }
    return true;
}

static void unlock(struct lstack *s)
{
    atomic_store(&s->lock, 0);
}

int lifo_take(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct lstack *s = find(fd);
    if (s == NULL || atomic_load(&s->held_now) == 0 || !lock(s))
        return -1;
    struct held h = { .fd = -1 };
    if (s->count > 0) {
        s->count--;
        h = s->h[(s->bottom + s->count) % LIFO_CAP];
        atomic_store(&s->held_now, s->count);
    }
    unlock(s);
    if (h.fd < 0)
        return -1;
    int saved = errno;
    if (!(flags & SOCK_CLOEXEC))
        REAL(fcntl)(h.fd, F_SETFD, 0);
    REAL(fcntl)(h.fd, F_SETFL, (flags & SOCK_NONBLOCK) ? O_NONBLOCK : 0);
    if (addr != NULL && len != NULL) {
        memcpy(addr, &h.addr, *len < h.alen ? *len : h.alen);
        *len = h.alen;
    }
    uint64_t now = sys_mono_ns();
    queue_stats_served(now > h.stamp ? now - h.stamp : 0, now);
    /* More held and a slot free: the next doorbell. */
    if (atomic_load(&s->held_now) != 0 && slots_any_free())
        gate_thread_kick();
    errno = saved;
    return h.fd;   /* conn.c records it (fdtab_accepted clears sluice's mark) */
}

static int port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *) a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *) a)->sin6_port);
    return -1;
}

bool lifo_doorbell(int fd, int c)
{
    struct lstack *s = find(fd);
    if (s == NULL || atomic_load(&s->bell) == 0)
        return false;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int saved = errno;
    bool bell = getpeername(c, (struct sockaddr *) &peer, &plen) == 0
                && port_of(&peer) == atomic_load(&s->bell_port);
    if (bell) {
        REAL(close)(c);
        int b = atomic_exchange(&s->bell, 0);
        if (b != 0)
            fdtab_close_own(b - 1);
    }
    errno = saved;
    return bell;
}

static long nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX)
        return INT_MAX;
    return (long) rl.rlim_cur;
}

/* The thread: the oldest held connection leaves the stack and is answered. */
static void answer_oldest(struct lstack *s, bool late)
{
    int c = -1;
    if (lock(s)) {
        if (s->count > 0) {
            c = s->h[s->bottom].fd;
            s->bottom = (s->bottom + 1) % LIFO_CAP;
            s->count--;
            atomic_store(&s->held_now, s->count);
        }
        unlock(s);
    }
    if (c >= 0) {
        queue_stats_answered(late);
        shed_connection(c);
    }
}

/* The thread, while paused: arrivals onto the stack. */
static void drain(struct lstack *s, int fd, uint64_t now)
{
    uint32_t cap = LIFO_CAP;
    if (sluice_cfg.queue_max != 0 && sluice_cfg.queue_max < cap)
        cap = sluice_cfg.queue_max;
    for (int i = 0; i < DRAIN_MAX; i++) {
        /* Never block: the listener may be in blocking mode. */
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (REAL(poll)(&p, 1, 0) != 1 || !(p.revents & POLLIN))
            return;
        struct held h = { .alen = sizeof h.addr, .stamp = now };
        h.fd = REAL(accept4)(fd, (struct sockaddr *) &h.addr, &h.alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (h.fd < 0)
            return;
        if (lifo_doorbell(fd, h.fd))
            continue;
        fdtab_own(h.fd);
        /* Headroom: a quarter of the numbers above it stay the program's. */
        long room = (nofile() - h.fd - 1) / 4;
        while (s->count > 0 && (s->count >= cap || (long) s->count >= room))
            answer_oldest(s, false);
        if (room <= 0 || !lock(s)) {
            queue_stats_answered(false);
            shed_connection(h.fd);
            continue;
        }
        s->h[(s->bottom + s->count) % LIFO_CAP] = h;
        s->count++;
        atomic_store(&s->held_now, s->count);
        unlock(s);
    }
}

/* The thread: a slot is free and something is held: wake the program's loop
 * with a connection of sluice's own to the listener. */
static void ring(struct lstack *s, int fd)
{
    if (atomic_load(&s->bell) != 0)
        return;
    struct sockaddr_storage self;
    socklen_t slen = sizeof self;
    if (getsockname(fd, (struct sockaddr *) &self, &slen) != 0)
        return;
    if (self.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *) &self;
        if (a->sin_addr.s_addr == htonl(INADDR_ANY))
            a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (self.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &self;
        if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
            a->sin6_addr = in6addr_loopback;
    } else {
        return;
    }
    int b = REAL(socket)(self.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (b < 0)
        return;
    fdtab_own(b);
    if (connect(b, (struct sockaddr *) &self, slen) != 0 && errno != EINPROGRESS) {
        fdtab_close_own(b);
        return;
    }
    struct sockaddr_storage mine;
    socklen_t mlen = sizeof mine;
    if (getsockname(b, (struct sockaddr *) &mine, &mlen) != 0) {
        fdtab_close_own(b);
        return;
    }
    atomic_store(&s->bell_port, port_of(&mine));
    atomic_store(&s->bell, b + 1);
}

uint64_t lifo_tick(uint64_t now, uint64_t *oldest_ns, bool may_take)
{
    uint64_t total = 0, oldest = 0;
    /* Every slot bound to a connection: a slot merely reserved may belong to a
     * thread blocked in the listener's accept, which the stack must not starve
     * (the doorbell reaches it instead). */
    bool full = slots_full();
    for (int i = 0; i < MAX_LISTENERS; i++) {
        struct lstack *s = &stacks[i];
        int fd = atomic_load(&s->fd_plus_one) - 1;
        if (fd < 0)
            break;
        if (s->h == NULL) {
            void *m = mmap(NULL, LIFO_CAP * sizeof(struct held), PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (m == MAP_FAILED)
                continue;
            s->h = m;
        }
        if (full && may_take)
            drain(s, fd, now);
        while (sluice_cfg.queue_timeout_ns != 0 && atomic_load(&s->held_now) > 0
               && now - s->h[s->bottom].stamp >= sluice_cfg.queue_timeout_ns)
            answer_oldest(s, true);
        uint32_t n = atomic_load(&s->held_now);
        if (n > 0 && !full)
            ring(s, fd);
        total += n;
        if (n > 0 && now - s->h[s->bottom].stamp > oldest)
            oldest = now - s->h[s->bottom].stamp;
    }
    *oldest_ns = oldest;
    return total;
}

uint64_t lifo_due(void)
{
    uint64_t first = 0;
    for (int i = 0; i < MAX_LISTENERS && atomic_load(&stacks[i].fd_plus_one) != 0; i++) {
        struct lstack *s = &stacks[i];
        if (sluice_cfg.queue_timeout_ns == 0 || s->h == NULL || atomic_load(&s->held_now) == 0)
            continue;
        uint64_t d = s->h[s->bottom].stamp + sluice_cfg.queue_timeout_ns;
        if (first == 0 || d < first)
            first = d;
    }
    return first;
}

void lifo_init(bool queue_enabled)
{
    enabled = queue_enabled && sluice_cfg.queue_lifo;
}

void lifo_atfork_child(void)
{
    /* The held connections are the parent's to serve. */
    for (int i = 0; i < MAX_LISTENERS; i++) {
        struct lstack *s = &stacks[i];
        for (uint32_t k = 0; s->h != NULL && k < s->count; k++)
            fdtab_close_own(s->h[(s->bottom + k) % LIFO_CAP].fd);
        s->count = 0;
        atomic_store(&s->held_now, 0);
        atomic_store(&s->lock, 0);
        int b = atomic_exchange(&s->bell, 0);
        if (b != 0)
            fdtab_close_own(b - 1);
    }
}
