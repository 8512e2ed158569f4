/* connhost_watch.c — host scope's sleepers and watchers: sleeping for a slot
 * of the shared budget (and checking, on the way, who is alive and the watched
 * slots), and the connections that cross a fork.
 *
 * A fork-per-connection server accepts, forks, and closes its copy at once
 * (Python's ForkingTCPServer, inetd-style servers, PostgreSQL's postmaster):
 * the connection lives on in the child, which sluice never saw accept it. So
 * at fork (pthread_atfork's prepare handler, in host scope only) each TCP
 * connection this process holds a slot for is marked FORKED in the shared
 * table, with its 4-tuple (getsockname, getpeername) and socket inode (fstat):
 * system calls at fork only, and only for held connections. When its holder's
 * last descriptor closes, or its holder dies, a FORKED slot is not freed but
 * WATCHED: still counted. Watchers (any sleeping member's thread every
 * CONNHOST_WATCH_NS, and the thread of the process that made it WATCHED, on
 * its tick) ask the kernel about the socket with one exact NETLINK_SOCK_DIAG
 * lookup by 4-tuple (no dump): once the last descriptor of a TCP socket is
 * closed in every process, the kernel reports its inode as 0 (an orphan or
 * TIME_WAIT socket) or no longer knows it (ENOENT); a different inode means the
 * 4-tuple was reused by a new connection. Then the slot is freed.
 *
 * UNIX-socket connections have no 4-tuple to look up: they are not marked, and
 * their slot is freed at their holder's last close, as in process scope. */
#include "real.h"

#include "connhost.h"

#include <errno.h>
#include <pthread.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "connhost_int.h"
#include "log.h"
#include "sys.h"

/* Copies a socket address's IP and port into the entry's form. */
static bool take_address(const struct sockaddr_storage *ss, uint16_t family, uint8_t addr[16],
                         uint16_t *port)
{
    if (ss->ss_family != family)
        return false;
    memset(addr, 0, 16);
    if (family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *) ss;
        memcpy(addr, &in->sin_addr, 4);
        *port = in->sin_port;
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) ss;
        memcpy(addr, &in6->sin6_addr, 16);
        *port = in6->sin6_port;
    }
    return true;
}

void connhost_mark_forked(uint32_t s, int fd)
{
    struct connhost_holder *h = atomic_load(&connhost_me);
    if (h == NULL || !connhost_usable() || s >= connhost_slots())
        return;
    uint32_t me = (uint32_t) (h - connhost_st->holders) + 1;
    struct connhost_slot *e = &connhost_st->slots[s];
    uint32_t own = atomic_load(&e->own);
    if ((own & ~CONNHOST_BOUND) != me)
        return;   /* not ours, or FORKED already (its 4-tuple is known) */
    int saved = errno;
    struct sockaddr_storage l, r;
    socklen_t llen = sizeof l, rlen = sizeof r;
    struct stat sb;
    if (getsockname(fd, (struct sockaddr *) &l, &llen) != 0
        || (l.ss_family != AF_INET && l.ss_family != AF_INET6)
        || getpeername(fd, (struct sockaddr *) &r, &rlen) != 0 || fstat(fd, &sb) != 0) {
        errno = saved;
        return;   /* not TCP, or no longer connected: freed at the last close here */
    }
    e->family = l.ss_family;
    if (!take_address(&l, e->family, e->laddr, &e->lport)
        || !take_address(&r, e->family, e->raddr, &e->rport)) {
        errno = saved;
        return;
    }
    e->ino = (uint64_t) sb.st_ino;
    /* The fields before the flag: a watcher reads them after seeing it. */
    atomic_compare_exchange_strong(&e->own, &own, own | CONNHOST_FORKED);
    errno = saved;
}

/* --- the watch ---------------------------------------------------------------------- */

enum socket_fate { SOCKET_LIVES, SOCKET_GONE, SOCKET_UNKNOWN };

/* One exact lookup of entry e's socket. */
static enum socket_fate look_up(int nl, const struct connhost_slot *e)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } q;
    memset(&q, 0, sizeof q);
    q.nlh.nlmsg_len = sizeof q;
    q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    q.nlh.nlmsg_flags = NLM_F_REQUEST;
    q.req.sdiag_family = (uint8_t) e->family;
    q.req.sdiag_protocol = IPPROTO_TCP;
    q.req.idiag_states = ~0u;
    q.req.id.idiag_sport = e->lport;
    q.req.id.idiag_dport = e->rport;
    memcpy(q.req.id.idiag_src, e->laddr, 16);
    memcpy(q.req.id.idiag_dst, e->raddr, 16);
    q.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    q.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (REAL(sendto)(nl, &q, sizeof q, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
        return SOCKET_UNKNOWN;
    union {
        struct nlmsghdr nlh;
        char bytes[8192];
    } a;
    ssize_t n = REAL(recv)(nl, &a, sizeof a, 0);
    if (n < (ssize_t) sizeof(struct nlmsghdr))
        return SOCKET_UNKNOWN;
    if (a.nlh.nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr *err = NLMSG_DATA(&a.nlh);
        return n >= (ssize_t) NLMSG_LENGTH(sizeof *err) && err->error == -ENOENT ? SOCKET_GONE
                                                                                 : SOCKET_UNKNOWN;
    }
    if (a.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY
        || n < (ssize_t) NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        return SOCKET_UNKNOWN;
    const struct inet_diag_msg *m = NLMSG_DATA(&a.nlh);
    return m->idiag_inode == 0 || (uint64_t) m->idiag_inode != e->ino ? SOCKET_GONE : SOCKET_LIVES;
}

void connhost_watch(void)
{
    if (!connhost_usable())
        return;
    int saved = errno;
    int nl = -1;
    bool blind = false;
    uint32_t freed = 0, limit = connhost_slots();
    for (uint32_t s = 0; s < limit && atomic_load(&connhost_st->watched) != 0; s++) {
        struct connhost_slot *e = &connhost_st->slots[s];
        uint32_t own = atomic_load(&e->own);
        if (own != (CONNHOST_FORKED | CONNHOST_WATCHED))
            continue;
        if (nl < 0 && !blind) {
            nl = REAL(socket)(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
            if (nl < 0) {
                static _Atomic int said;
                blind = true;
                if (!atomic_exchange(&said, 1))
                    log_warn("SLUICE_CONN_SCOPE=host: cannot ask the kernel about sockets "
                             "(NETLINK_SOCK_DIAG: %s); a connection handed to a forked child "
                             "frees its slot when its parent closes it", strerror(errno));
            }
        }
        enum socket_fate fate = blind ? SOCKET_GONE : look_up(nl, e);
        if (fate == SOCKET_GONE && atomic_compare_exchange_strong(&e->own, &own, 0)) {
            atomic_fetch_sub(&connhost_st->watched, 1);
            connhost_count_sub(1);
            freed++;
        }
    }
    if (nl >= 0)
        REAL(close)(nl);
    uint64_t c = atomic_load(&connhost_st->count);
    if (freed != 0 && CONNHOST_HIGH(c) != 0)
        connhost_wake((int) freed);
    errno = saved;
}

/* --- sleeping for a slot -------------------------------------------------------------- */

/* Checks who is alive, at most every CONNHOST_CHECK_NS across the budget (one
 * member at a time), and the watched slots every CONNHOST_WATCH_NS. */
static void check_if_due(uint64_t now)
{
    uint64_t last = atomic_load(&connhost_st->last_check);
    if (now - last >= CONNHOST_CHECK_NS
        && atomic_compare_exchange_strong(&connhost_st->last_check, &last, now)) {
        /* Never waits for the lock: a member that holds it is alive (and
         * checks itself), one that died in it is recovered now. */
        int r = pthread_mutex_trylock(&connhost_st->lock);
        if (r == EOWNERDEAD) {
            pthread_mutex_consistent(&connhost_st->lock);
            atomic_store(&connhost_st->recount, 0);
            connhost_reap(true);
            connhost_unlock();
        } else if (r == 0) {
            connhost_reap(false);
            connhost_unlock();
        }
    }
    if (atomic_load(&connhost_st->watched) != 0) {
        last = atomic_load(&connhost_st->last_watch);
        if (now - last >= CONNHOST_WATCH_NS
            && atomic_compare_exchange_strong(&connhost_st->last_watch, &last, now))
            connhost_watch();
    }
}

int connhost_tick(uint64_t now)
{
    if (!connhost_usable())
        return 0;
    check_if_due(now);
    /* Only the processes that left slots watched (and the sleepers) look
     * often, and every CONNHOST_WATCH_NS only while someone waits for a slot:
     * a fork-per-connection server below its limit looks 4 times a second
     * (one lookup per watched slot each time), not 50. */
    if (atomic_load(&connhost_st->watched) == 0)
        atomic_store(&connhost_i_made_watched, false);
    if (!atomic_load(&connhost_i_made_watched))
        return 0;
    uint64_t c = atomic_load(&connhost_st->count);
    return CONNHOST_HIGH(c) != 0 || CONNHOST_LOW(c) >= connhost_limit()
               ? (int) (CONNHOST_WATCH_NS / 1000000u) : CONNHOST_WATCH_IDLE_MS;
}

static void sleeper_gone(void *holder)
{
    struct connhost_holder *h = holder;
    atomic_fetch_sub(&connhost_st->count, CONNHOST_HIGH_ONE);
    atomic_fetch_sub(&h->sleepers, 1);
}

/* (A frame of its own for the cleanup's setjmp.) */
static int sleep_cancellable(struct connhost_holder *h, uint32_t seq, uint64_t until)
{
    volatile int r = 0;
    pthread_cleanup_push(sleeper_gone, h);
    r = sys_futex_wait_cancellable(&connhost_st->wake, seq, until, false);
    pthread_cleanup_pop(0);
    return r;
}

int connhost_sleep(uint64_t deadline, bool cancellable)
{
    if (!connhost_usable())
        return 0;
    struct connhost_holder *h = atomic_load(&connhost_me);
    if (h == NULL && (h = connhost_my_holder()) == NULL)
        return 0;
    uint64_t now = sys_mono_ns();
    check_if_due(now);
    /* Counted first, then the look: a release after the look sees us. */
    atomic_fetch_add(&h->sleepers, 1);
    atomic_fetch_add(&connhost_st->count, CONNHOST_HIGH_ONE);
    uint32_t seq = atomic_load(&connhost_st->wake);
    int r = 0;
    if (CONNHOST_LOW(atomic_load(&connhost_st->count)) >= connhost_limit()) {
        uint64_t until = now + (atomic_load(&connhost_st->watched) != 0 ? CONNHOST_WATCH_NS
                                                                        : CONNHOST_CHECK_NS);
        if (deadline != 0 && deadline < until)
            until = deadline;
        r = cancellable ? sleep_cancellable(h, seq, until)
                        : sys_futex_wait(&connhost_st->wake, seq, until, false);
        if (r == ETIMEDOUT && (deadline == 0 || sys_mono_ns() < deadline))
            r = 0;    /* our own bound, not the caller's: look again */
    }
    sleeper_gone(h);
    return r;
}

void connhost_pass_on(void)
{
    if (!connhost_usable())
        return;
    uint64_t c = atomic_load(&connhost_st->count);
    if (CONNHOST_HIGH(c) != 0 && CONNHOST_LOW(c) < connhost_limit())
        connhost_wake(1);
}
