/* shed.c — connections the gate sheds, and the connection gate's own thread.
 *
 * Shedding happens on the program's thread, inside its accept: the answer is
 * written (MSG_DONTWAIT: it fits an empty socket buffer) and SHUT_WR sent. Then
 * the socket goes to sluice's thread, which discards the client's input until
 * the client closes, for at most SHED_LINGER_MS and at most SHED_READ_MAX bytes.
 * Reading the request first is what lets the client read the whole answer (a
 * close with unread input is a reset); a client still sending past the bound
 * is closed on (and may see a reset) rather than costing a core to discard.
 * Input is discarded with MSG_TRUNC: TCP drops it without copying it out.
 *
 * Descriptors: lingering sockets are sluice's, taken from the program's
 * RLIMIT_NOFILE. At most SHED_CAP linger, and at most a quarter of the numbers
 * still free above the one just accepted (the kernel hands out the lowest free
 * number, so every number below it is in use). Past that a shed socket is closed
 * at once, after reading what has already arrived (usually the whole request,
 * so the close is a FIN, not a reset); sluice_shed_unlingered_total counts them.
 *
 * Hand-off: the program's threads put sockets in handoff[] (any free place,
 * from a rotating start) and wake the thread once per batch. The thread keeps
 * its lingering sockets in hand-off order, which is deadline order: the next
 * timeout is the head's and expiry pops from the head, with no scan.
 *
 * The thread (started the first time it is needed, all signals blocked) also
 * does the pause's periodic work (gate_thread_on_tick), at least once a second,
 * and the waiting queue's (gate_thread_on_queue): it watches the listeners for
 * arrivals and wakes when the oldest waiting connection is due. With
 * SLUICE_RETRY_AFTER=auto the answer's Retry-After is the queue's estimate.
 * In host scope, while its process is paused, it sleeps on the shared budget
 * instead (gate_thread_on_park), looking at its own events (the queue's too)
 * between sleeps of at most 50 ms. */
#include "real.h"

#include "shed.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "config.h"
#include "fdtab.h"
#include "log.h"
#include "stats.h"
#include "threads.h"
#include "sys.h"

#define SHED_CAP 512
#define SHED_LINGER_MS 1000
#define SHED_READ_MAX (256u * 1024u)   /* bytes discarded per shed at most */
#define TICK_MS 1000
#define NOFILE_REFRESH_NS 100000000ull  /* the program may change its limit */

static char shed_answer[512];
static size_t shed_answer_len;
static _Atomic long nofile_limit;       /* RLIMIT_NOFILE's soft limit */

static _Atomic int thread_state;        /* 0 none, 1 starting (or failed), 2 running */
static _Atomic int thread_epfd = -1, thread_efd = -1;
static bool (*_Atomic on_park)(uint64_t now_ns);   /* host scope: sleeps on the budget */
static _Atomic int tick_within_ms;      /* the next tick is wanted this soon (0: no wish) */
/* The waiting queue's (queue.c): a connection arrived on a watched listener;
 * its own periodic work; when it wants the thread next (absolute ns, 0: none). */
static void (*_Atomic on_arrival)(int fd);
static void (*_Atomic on_queue_tick)(uint64_t now_ns);
static uint64_t (*_Atomic queue_due)(void);
#define LISTENER_TAG (1ull << 62)      /* epoll data: a watched listener's fd */
/* SLUICE_RETRY_AFTER=auto: the answer for each whole second 1..60, and which
 * one is sent now (queue.c's estimate). */
#define AUTO_MAX 60
static char auto_answers[AUTO_MAX + 1][192];
static size_t auto_lens[AUTO_MAX + 1];
static _Atomic unsigned auto_now;
#define TICKERS 4
static void (*_Atomic on_tick[TICKERS])(uint64_t now_ns);   /* periodic work (pause, auto) */
static _Atomic uint32_t tick_ms = TICK_MS;  /* the shortest period asked for */
#define WATCH_ID (UINT64_MAX - 1)         /* epoll data of the watched descriptor */
static void (*watch_fn)(uint64_t now_ns, uint32_t events); /* the thread's own */
static _Atomic int handoff[SHED_CAP];   /* shed socket + 1, waiting for the thread */
static _Atomic unsigned handoff_next;   /* where the next hand-off starts looking */
static _Atomic int shed_held;           /* shed sockets handed off, not yet closed */
static _Atomic bool handoff_kicked;     /* a wake for new hand-offs is pending */
/* The thread's own: lingering sockets, in a list oldest first, and free places. */
struct lingering {
    int fd;              /* -1: a free place */
    int prev, next;      /* in the live list, or next free place */
    uint32_t left;       /* bytes still to discard before closing anyway */
    uint64_t deadline;
};
static struct lingering lingering[SHED_CAP];
static int live_head = -1, live_tail = -1, free_head = -1;
/* Where the program's threads throw away a request before an early close. */
static char early_sink[65536];

static void refresh_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        atomic_store(&nofile_limit, rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX
                                        ? (long) INT_MAX : (long) rl.rlim_cur);
}

void gate_thread_kick(void)
{
    int efd = atomic_load(&thread_efd);
    uint64_t one = 1;
    if (efd >= 0)
        KEEP_ERRNO((void) !REAL(write)(efd, &one, sizeof one));
}

/* --- the thread's lists (its own, no atomics) -------------------------------- */

static void live_append(int at)
{
    lingering[at].prev = live_tail;
    lingering[at].next = -1;
    if (live_tail >= 0)
        lingering[live_tail].next = at;
    else
        live_head = at;
    live_tail = at;
}

static void live_remove(int at)
{
    int p = lingering[at].prev, n = lingering[at].next;
    if (p >= 0)
        lingering[p].next = n;
    else
        live_head = n;
    if (n >= 0)
        lingering[n].prev = p;
    else
        live_tail = p;
}

static void place_free(int at)
{
    lingering[at].fd = -1;
    lingering[at].next = free_head;
    free_head = at;
}

static void finish(int at)
{
    fdtab_close_own(lingering[at].fd);   /* closing removes it from the epoll set */
    live_remove(at);
    place_free(at);
    atomic_fetch_sub(&shed_held, 1);
}

static void take_handoffs(int epfd, uint64_t now)
{
    atomic_store(&handoff_kicked, false);
    for (int i = 0; i < SHED_CAP; i++) {
        if (atomic_load(&handoff[i]) == 0)   /* a load is cheap; an exchange is not */
            continue;
        int v = atomic_exchange(&handoff[i], 0);
        if (v == 0)
            continue;
        int fd = v - 1, at = free_head;
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t) at };
        if (at < 0 || REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            fdtab_close_own(fd);
            atomic_fetch_sub(&shed_held, 1);
            continue;
        }
        free_head = lingering[at].next;
        lingering[at] = (struct lingering) { fd, -1, -1, SHED_READ_MAX,
                                             now + SHED_LINGER_MS * 1000000ull };
        live_append(at);
    }
}

/* Input arrived (or the client closed): discard it, up to what is left. A
 * read shorter than asked found the queue empty, so no second call is made
 * to hear EAGAIN; and once the client's FIN is in (EPOLLRDHUP), nothing more
 * can come: an empty queue then means done, without a read that returns 0. */
static void discard(int at, uint32_t events, char *sink, size_t cap)
{
    struct lingering *l = &lingering[at];
    ssize_t got = 0;
    bool drained = false;
    while (l->left > 0) {
        size_t want = l->left < cap ? l->left : cap;
        got = REAL(recv)(l->fd, sink, want, MSG_DONTWAIT | MSG_TRUNC);
        if (got <= 0)
            break;
        l->left -= (size_t) got < want ? (uint32_t) got : (uint32_t) want;
        if ((size_t) got < want) {
            drained = true;
            break;
        }
    }
    if (l->left == 0) {
        STAT_ADD(conn_shed_cut, 1);
        finish(at);
    } else if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)
               || (drained && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))) {
        finish(at);
    }
}

static void *gate_thread(void *arg)
{
    (void) arg;
    int epfd = atomic_load(&thread_epfd), efd = atomic_load(&thread_efd);
    char sink[16384];
    uint64_t refreshed = sys_mono_ns(), alone_checked = refreshed;
    for (;;) {
        uint64_t now = sys_mono_ns();
        /* At least once a second, even idle: this thread must not keep alive a
         * process whose own threads have all ended (see threads.h). */
        int timeout = (int) atomic_load_explicit(&tick_ms, memory_order_relaxed);
        uint64_t (*due)(void) = atomic_load_explicit(&queue_due, memory_order_acquire);
        uint64_t when = due != NULL ? due() : 0;
        if (when != 0) {
            int ms = when > now ? (int) ((when - now + 999999u) / 1000000u) : 0;
            if (ms < timeout)
                timeout = ms;
        }
        if (live_head >= 0) {
            uint64_t d = lingering[live_head].deadline;
            int ms = d > now ? (int) ((d - now) / 1000000u) + 1 : 0;
            if (ms < timeout)
                timeout = ms;
        }
        int soon = atomic_exchange(&tick_within_ms, 0);
        if (soon > 0 && soon < timeout)
            timeout = soon;
        /* Parked (slept on the shared budget already): only look at events. */
        bool (*park)(uint64_t) = atomic_load_explicit(&on_park, memory_order_acquire);
        if (park != NULL && live_head < 0 && park(now))
            timeout = 0;
        struct epoll_event evs[64];
        int n = REAL(epoll_wait)(epfd, evs, 64, timeout);
        /* Once a second, however fast the ticks (parked, the thread never idles
         * in epoll_wait, so it does not wait for a timeout to ask). */
        if (n == 0 && now - alone_checked >= TICK_MS * 1000000ull) {
            alone_checked = now;
            threads_exit_if_only_ours();
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == UINT64_MAX) {
                uint64_t junk;
                (void) !REAL(read)(efd, &junk, sizeof junk);
                continue;
            }
            if (evs[i].data.u64 == WATCH_ID) {
                if (watch_fn != NULL)
                    watch_fn(sys_mono_ns(), evs[i].events);
                continue;
            }
            if (evs[i].data.u64 & LISTENER_TAG) {
                void (*arrived)(int) = atomic_load_explicit(&on_arrival, memory_order_acquire);
                if (arrived != NULL)
                    arrived((int) (evs[i].data.u64 & ~LISTENER_TAG));
                continue;
            }
            int at = (int) evs[i].data.u64;
            if (at >= 0 && at < SHED_CAP && lingering[at].fd >= 0)
                discard(at, evs[i].events, sink, sizeof sink);
        }
        now = sys_mono_ns();
        take_handoffs(epfd, now);
        while (live_head >= 0 && lingering[live_head].deadline <= now)
            finish(live_head);
        if (now - refreshed >= NOFILE_REFRESH_NS) {
            refreshed = now;
            refresh_nofile();
        }
        for (int t = 0; t < TICKERS; t++) {
            void (*tick)(uint64_t) = atomic_load_explicit(&on_tick[t], memory_order_acquire);
            if (tick != NULL)
                tick(now);
        }
        void (*qtick)(uint64_t) = atomic_load_explicit(&on_queue_tick, memory_order_acquire);
        if (qtick != NULL)
            qtick(now);
    }
    return NULL;
}

void gate_thread_on_tick(void (*fn)(uint64_t now_ns))
{
    for (int t = 0; t < TICKERS; t++) {
        void (*none)(uint64_t) = NULL;
        if (atomic_load(&on_tick[t]) == fn
            || atomic_compare_exchange_strong(&on_tick[t], &none, fn))
            return;
    }
}

void gate_thread_tick_ms(uint32_t ms)
{
    if (ms < 1)
        ms = 1;
    if (ms > TICK_MS)
        ms = TICK_MS;
    atomic_store_explicit(&tick_ms, ms, memory_order_relaxed);
}

int gate_thread_watch_one(int fd, uint32_t events, void (*fn)(uint64_t now_ns, uint32_t events))
{
    int epfd = atomic_load(&thread_epfd);
    struct epoll_event ev = { .events = events, .data.u64 = WATCH_ID };
    if (epfd < 0 || watch_fn != NULL)
        return -1;
    watch_fn = fn;
    if (REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        watch_fn = NULL;
        return -1;
    }
    return 0;
}

void gate_thread_unwatch_one(int fd)
{
    int epfd = atomic_load(&thread_epfd);
    if (epfd >= 0)
        REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, fd, NULL);
    watch_fn = NULL;
}

void gate_thread_on_park(bool (*fn)(uint64_t now_ns))
{
    atomic_store_explicit(&on_park, fn, memory_order_release);
}

void gate_thread_tick_within(int ms)
{
    int cur = atomic_load(&tick_within_ms);
    while ((cur == 0 || ms < cur) && !atomic_compare_exchange_weak(&tick_within_ms, &cur, ms))
        ;
}

void gate_thread_on_queue(void (*arrival)(int fd), void (*tick)(uint64_t now_ns),
                          uint64_t (*due)(void))
{
    atomic_store_explicit(&on_arrival, arrival, memory_order_release);
    atomic_store_explicit(&on_queue_tick, tick, memory_order_release);
    atomic_store_explicit(&queue_due, due, memory_order_release);
}

int gate_thread_watch(int fd, bool watch)
{
    int epfd = atomic_load(&thread_epfd);
    if (epfd < 0)
        return -1;
    struct epoll_event ev = { .events = watch ? EPOLLIN | EPOLLET : 0,
                              .data.u64 = LISTENER_TAG | (uint64_t) fd };
    int r;
    KEEP_ERRNO(r = REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0
                   : errno == ENOENT ? REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &ev) : -1);
    return r;
}

void shed_retry_after(unsigned seconds)
{
    atomic_store_explicit(&auto_now, seconds < 1 ? 1 : seconds > AUTO_MAX ? AUTO_MAX : seconds,
                          memory_order_relaxed);
}

void gate_thread_ensure(void)
{
    if (atomic_load(&thread_state) != 0)
        return;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&thread_state, &expected, 1))
        return;
    int saved = errno;
    live_head = live_tail = free_head = -1;
    for (int i = SHED_CAP - 1; i >= 0; i--)
        place_free(i);
    refresh_nofile();
    int epfd = REAL(epoll_create1)(EPOLL_CLOEXEC);
    int efd = REAL(eventfd)(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
    if (epfd < 0 || efd < 0 || REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, efd, &ev) != 0) {
        log_warn("cannot start the connection gate's thread: %d", errno);
        errno = saved;
        return;   /* thread_state stays 1: no thread, shed sockets are closed at once */
    }
    fdtab_own(epfd);
    fdtab_own(efd);
    atomic_store(&thread_epfd, epfd);
    atomic_store(&thread_efd, efd);
    if (threads_start(gate_thread, 128 * 1024))
        atomic_store(&thread_state, 2);
    else
        log_warn("cannot start the connection gate's thread");
    errno = saved;
}

/* --- shedding ------------------------------------------------------------------ */

/* Whether socket c may linger: a place among SHED_CAP, and no more than a
 * quarter of the descriptor numbers above c, all of which may be free. */
static bool room_to_linger(int c)
{
    long room = (atomic_load_explicit(&nofile_limit, memory_order_relaxed) - c - 1) / 4;
    if (room > SHED_CAP)
        room = SHED_CAP;
    if (atomic_fetch_add(&shed_held, 1) < room)
        return true;
    atomic_fetch_sub(&shed_held, 1);
    return false;
}

void shed_connection(int c)
{
    int saved = errno;
    STAT_ADD(conn_shed, 1);
    fdtab_reborn(c);
    if (sluice_cfg.shed == SHED_RESET) {
        struct linger lg = { 1, 0 };
        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        REAL(close)(c);
        errno = saved;
        return;
    }
    if (sluice_cfg.shed != SHED_CLOSE) {
        unsigned a = atomic_load_explicit(&auto_now, memory_order_relaxed);
        (void) !REAL(send)(c, a != 0 ? auto_answers[a] : shed_answer,
                           a != 0 ? auto_lens[a] : shed_answer_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    shutdown(c, SHUT_WR);
    gate_thread_ensure();
    /* From here the socket is sluice's: a program closing every descriptor must
     * not close it, nor may sluice later close a number the program reuses. */
    fdtab_own(c);
    if (atomic_load(&thread_state) != 2 || !room_to_linger(c)) {
        (void) !REAL(recv)(c, early_sink, sizeof early_sink, MSG_DONTWAIT | MSG_TRUNC);
        STAT_ADD(conn_shed_unlingered, 1);
        fdtab_close_own(c);
        errno = saved;
        return;
    }
    /* A free place exists: shed_held counts every socket in handoff[]. */
    unsigned start = atomic_fetch_add_explicit(&handoff_next, 1, memory_order_relaxed);
    for (unsigned i = start;; i++) {
        int zero = 0;
        if (atomic_compare_exchange_strong(&handoff[i % SHED_CAP], &zero, c + 1))
            break;
    }
    /* One wake at a time: under a flood the thread takes many per wake. */
    if (!atomic_exchange(&handoff_kicked, true))
        gate_thread_kick();
    errno = saved;
}

void shed_init(void)
{
    refresh_nofile();
    const char *status = sluice_cfg.shed == SHED_HTTP429 ? "429 Too Many Requests"
                                                         : "503 Service Unavailable";
    const char *body = sluice_cfg.shed == SHED_HTTP429 ? "Too many requests, retry later.\n"
                                                       : "Server busy, retry later.\n";
    const char *form = "HTTP/1.1 %s\r\nRetry-After: %u\r\nConnection: close\r\n"
                       "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n%s";
    int n = snprintf(shed_answer, sizeof shed_answer, form, status, sluice_cfg.retry_after_s,
                     strlen(body), body);
    shed_answer_len = n > 0 ? (size_t) n : 0;
    if (sluice_cfg.retry_after_auto) {
        for (unsigned s = 1; s <= AUTO_MAX; s++) {
            n = snprintf(auto_answers[s], sizeof auto_answers[s], form, status, s, strlen(body), body);
            auto_lens[s] = n > 0 && (size_t) n < sizeof auto_answers[s] ? (size_t) n : 0;
        }
        shed_retry_after(1);
    }
}

void shed_atfork_child(void)
{
    /* The parent's thread did not come along; its shed sockets are the parent's. */
    if (atomic_load(&thread_state) == 0)
        return;
    for (int i = 0; i < SHED_CAP; i++) {
        int v = atomic_exchange(&handoff[i], 0);
        if (v != 0)
            fdtab_close_own(v - 1);
        if (lingering[i].fd >= 0)
            fdtab_close_own(lingering[i].fd);
        lingering[i].fd = -1;
    }
    int epfd = atomic_exchange(&thread_epfd, -1), efd = atomic_exchange(&thread_efd, -1);
    if (epfd >= 0)
        fdtab_close_own(epfd);
    if (efd >= 0)
        fdtab_close_own(efd);
    atomic_store(&shed_held, 0);
    atomic_store(&handoff_kicked, false);
    watch_fn = NULL;
    atomic_store(&thread_state, 0);
}
