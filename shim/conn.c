/* conn.c — the connection gate's front (see conn.h): accept and listen.
 *
 * In pause mode accept takes a busy slot (slots.c) before the real call and
 * keeps it if a connection came; a blocking accept waits for the slot first,
 * then for a connection, on the slot pool's futex without a timeout, so the
 * kernel gives it exactly the real call's signal behaviour (EINTR, or a restart
 * under SA_RESTART). While every slot is held the listeners are hidden
 * (pause.c). Threads blocked in accept take turns (ticket.c). With a queue
 * timeout or maximum, sluice times the waits in the accept queue and answers
 * those that waited too long (queue.c). With idle=hold a connection is busy from accept to its last
 * close; with idle=free (idle.c) it gives its slot back while idle, so there
 * are objects for every descriptor the process may hold.
 *
 * Shed: at the limit the connection is taken from the kernel and shed
 * (shed.c) without the program seeing it. Shed mode accepts first and takes a
 * slot after: a slot taken before a blocking accept would let the kernel give
 * the next connection to another thread, which would shed it with a slot free.
 * A blocking accept goes on shedding for as long as it takes (it never answers
 * EAGAIN); a non-blocking one gives the program its turn every SHED_BUDGET. */
#include "real.h"

#include "conn.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "autolimit.h"
#include "config.h"
#include "fdtab.h"
#include "idle.h"
#include "log.h"
#include "overlay.h"
#include "pause.h"
#include "queue.h"
#include "queue_lifo.h"
#include "retry_after.h"
#include "shed.h"
#include "slots.h"
#include "stats.h"
#include "sys.h"
#include "ticket.h"

#define SHED_BUDGET 256          /* sheds per call before a non-blocking accept returns */
#define MAX_CONNS (1u << 20)      /* connection objects at most (idle=free) */

/* --- accept, listen ------------------------------------------------------------------ */

static int accept_for_real(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    return is_accept4 ? REAL(accept4)(fd, addr, len, flags) : REAL(accept)(fd, addr, len);
}

static void record(int fd, uint32_t slot, int flags)
{
    int saved = errno;
    fdtab_accepted(fd, flags);
    struct fdent *e = fdtab_get(fd);
    int64_t cid = e != NULL ? slots_new_conn() : -1;
    if (cid < 0) {
        /* Beyond the table: untrackable, so it must not hold a slot. */
        slots_untake(slot);
        errno = saved;
        return;
    }
    struct conn *c = slots_conn((uint32_t) cid);
    atomic_store(&c->refs, 1);
    atomic_store(&c->fd, fd);
    atomic_store(&c->nonblock, 0);
    atomic_store(&c->st, (slot + 1) << CONN_SLOT_SHIFT);
    slots_bind(slot, (uint32_t) cid);
    struct stat st;
    if (fstat(fd, &st) == 0)
        atomic_store(&e->ino, (uint64_t) st.st_ino);
    atomic_store(&e->conn, (uint32_t) cid + 1);
    STAT_ADD(conn_accepted, 1);
    if (sluice_cfg.retry_after_auto || queue_on())
        retry_after_slot_used(sys_mono_ns());
    STAT_ADD(conn_in_flight, 1);
    slots_held(slot);
    errno = saved;
}

/* Whether a blocking accept that has shed `shed` connections since `since`
 * should go on: always, unless the listener has SO_RCVTIMEO and it has passed
 * (a real accept would have timed out with nothing to show). Asked from the
 * second shed on (a non-blocking accept rarely gets there), then on each. */
static bool still_waiting(int fd, uint64_t since, uint64_t *timeout_ns)
{
    if (*timeout_ns == UINT64_MAX) {
        struct timeval tv = { 0, 0 };
        socklen_t tvlen = sizeof tv;
        KEEP_ERRNO(getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen));
        *timeout_ns = (uint64_t) tv.tv_sec * 1000000000u + (uint64_t) tv.tv_usec * 1000u;
    }
    return *timeout_ns == 0 || sys_mono_ns() - since < *timeout_ns;
}

/* Shed mode: the connection first, then a slot for it, or it is shed. */
static int accept_or_shed(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    socklen_t len_given = len != NULL ? *len : 0;
    uint64_t since = sys_mono_ns(), timeout_ns = UINT64_MAX;
    int nonblocking = -1;   /* not asked yet */
    for (unsigned shed = 0;;) {
        if (len != NULL)
            *len = len_given;
        int c = accept_for_real(fd, addr, len, flags, is_accept4);
        if (c < 0)
            return -1;   /* EAGAIN: nothing waits; EINTR, EMFILE...: as the real call */
        int64_t id = slots_reserve();
        if (id >= 0) {
            record(c, (uint32_t) id, flags);
            return c;
        }
        shed_connection(c);
        if (++shed < 2)
            continue;
        if (nonblocking < 0)
            nonblocking = sys_nonblocking(fd);
        /* A non-blocking accept returns now and then: the program's loop has
         * other work. A blocking one never returns EAGAIN for a shed. */
        if (nonblocking ? shed % SHED_BUDGET == 0 : !still_waiting(fd, since, &timeout_ns)) {
            /* More may wait, and no new arrival need come to say so: an
             * edge-triggered loop is owed its event again. */
            overlay_requeue(fd);
            errno = EAGAIN;
            return -1;
        }
    }
}

int conn_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    struct fdent *l = NULL;
    if (slots_count() != 0 && fdtab_kind(fd) == FD_LISTENER)
        l = fdtab_peek(fd);
    if (l == NULL || !(atomic_load(&l->flags) & FDF_GOVERNED)) {
        int r = accept_for_real(fd, addr, len, flags, is_accept4);
        if (r >= 0)
            fdtab_accepted(r, flags);
        return r;
    }
    /* sluice's thread starts here, at the first governed accept: nothing a
     * signal handler can reach (a close that pauses) has to start it, and a
     * process that only listens and forks its workers (nginx's master) never
     * has one, so no fork of it can copy a lock that thread holds. */
    gate_thread_ensure();
    pause_note_listener(fd);
    bool queued = queue_on();
    if (queued)
        queue_note_listener(fd);
    if (sluice_cfg.conn_mode == CONN_SHED)
        return accept_or_shed(fd, addr, len, flags, is_accept4);
    for (;;) {
        /* With threads in line a blocking accept joins it (ticket.c); the
         * first look costs no system call. A non-blocking accept does not
         * sleep, so it has no place in the line: it takes a free slot. */
        int64_t id = ticket_line_empty() ? slots_reserve() : -1;
        if (id < 0 && !sys_nonblocking(fd)) {
            if ((id = ticket_reserve(fd)) < 0)
                return -1;
        } else if (id < 0 && (id = slots_reserve()) < 0) {
            bool slot_freed;
            KEEP_ERRNO(slot_freed = pause_await_applied());
            if (slot_freed)
                continue;
            errno = EAGAIN;
            return -1;
        }
        /* Newest first (queue_lifo.c): a held connection before the kernel's. */
        int r = queued ? lifo_take(fd, addr, len, flags) : -1;
        if (r >= 0) {
            record(r, (uint32_t) id, flags);
            return r;
        }
        /* The queue (queue.c) counts what leaves the kernel's accept queue. */
        if (queued)
            queue_enter();
        socklen_t len_given = len != NULL ? *len : 0;
        bool popped = false;
        for (;;) {
            r = accept_for_real(fd, addr, len, flags, is_accept4);
            if (r < 0 && queued && errno == EAGAIN) {
                /* sluice's thread may have just taken it onto its stack. */
                int saved = errno;
                if ((r = lifo_take(fd, addr, len, flags)) >= 0)
                    popped = true;
                else
                    errno = saved;
                break;
            }
            if (r < 0 || !queued || !lifo_doorbell(fd, r))
                break;
            /* sluice's doorbell: the newest held connection instead. */
            if (len != NULL)
                *len = len_given;
            if ((r = lifo_take(fd, addr, len, flags)) >= 0) {
                popped = true;
                break;
            }
        }
        if (queued)
            KEEP_ERRNO(queue_leave(fd, r >= 0 && !popped));
        if (r < 0) {
            KEEP_ERRNO(slots_untake((uint32_t) id));
            return r;
        }
        record(r, (uint32_t) id, flags);
        return r;
    }
}

int conn_listen(int fd, int backlog)
{
    if (sluice_cfg.backlog != 0 && (backlog <= 0 || (uint32_t) backlog > sluice_cfg.backlog))
        backlog = (int) sluice_cfg.backlog;
    int r = REAL(listen)(fd, backlog);
    if (r == 0 && slots_count() != 0) {
        int saved = errno;
        if (fdtab_kind(fd) != FD_LISTENER) {
            fdtab_reborn(fd);
            (void) fdtab_kind(fd);
        }
        struct fdent *e = fdtab_peek(fd);
        if (e != NULL && (atomic_load(&e->flags) & FDF_GOVERNED))
            pause_note_listener(fd);
        errno = saved;
    }
    return r;
}

bool conn_governs(int fd)
{
    if (sluice_cfg.nports == 0)
        return true;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int saved = errno;
    int r = getsockname(fd, (struct sockaddr *) &ss, &len);
    errno = saved;
    if (r != 0)
        return false;
    unsigned port;
    if (ss.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *) &ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
    else
        return false;   /* a port list names TCP ports: UNIX listeners go free */
    for (uint32_t i = 0; i < sluice_cfg.nports; i++)
        if (sluice_cfg.ports[i] == port)
            return true;
    return false;
}

void conn_init(void)
{
    uint32_t nslots = sluice_cfg.conn_max;
    if (nslots != 0) {
        /* With idle=free a connection outlives its slot: room for every
         * descriptor the process may hold (pages are touched only when used). */
        uint32_t conns = nslots > MAX_CONNS / 2 ? MAX_CONNS : 2 * nslots;
        struct rlimit rl;
        if (sluice_cfg.conn_idle == CONN_IDLE_FREE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rlim_t most = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > MAX_CONNS ? MAX_CONNS : rl.rlim_max;
            if (most > conns)
                conns = (uint32_t) most;
        }
        if (sluice_cfg.conn_idle == CONN_IDLE_FREE && idle_init(conns) != 0)
            log_error("cannot allocate %u connection slots: the connection limit is off", nslots);
        else if (sluice_cfg.conn_scope == CONN_SCOPE_HOST) {
            if (slots_init_host(nslots, sluice_cfg.conn_key, conns) == 0)   /* says why if not */
                autolimit_init();
        } else if (slots_init(nslots, conns) != 0)
            log_error("cannot allocate %u connection slots: the connection limit is off", nslots);
        else
            autolimit_init();
    }
    fdtab_hook_conn(conn_governs, conn_release, conn_addref);
    pause_init();
    shed_init();
    queue_init();
}

void conn_atfork_prepare(void)
{
    slots_atfork_prepare();
}

void conn_atfork_child(void)
{
    /* fdtab already dropped the child's references: it holds no slots. */
    slots_atfork_child();
    ticket_atfork_child();
    idle_atfork_child();
    STAT_SET(conn_busy, 0);
    STAT_SET(conn_idle, 0);
    pause_atfork_child();
    STAT_SET(conn_in_flight, 0);
    shed_atfork_child();
    queue_atfork_child();
    autolimit_atfork_child();
}
