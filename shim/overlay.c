/* overlay.c — the readiness overlay (see overlay.h).
 *
 * epoll: every registration of a socket is remembered in its fdtab entry (epoll
 * instance, events, data). Hiding is an EPOLL_CTL_MOD without the hidden events;
 * an EPOLLEXCLUSIVE registration (MOD refuses those) is deleted instead and added
 * back on unhide. Unhiding with MOD/ADD also makes the kernel wake a sleeping
 * epoll_wait when the descriptor is ready, level- and edge-triggered alike. An
 * EPOLLONESHOT registration that has fired (the kernel's mask in fdinfo has no
 * events left) is left disarmed until the program re-arms it. Where a gate
 * answers EAGAIN with the kernel's readiness unchanged (a shed that stops at its
 * budget), overlay_requeue has edge-triggered registrations report it again.
 *
 * Kernel-originated wakes (a socket became writable) come through one internal
 * epoll instance, nested in the program's instances under a data value only
 * sluice owns; its events are consumed in the epoll_wait wrapper.
 *
 * poll/select (overlay_poll.c): while something is hidden the request is
 * rewritten (hidden events removed) plus the calling thread's own eventfd,
 * which every unhide here writes (overlay_waiters.c keeps them). */
#include "real.h"

#include "overlay.h"

#include <sched.h>

#include "fdtab.h"
#include "gate.h"
#include "log.h"
#include "sys.h"

_Atomic int overlay_hidden_fds;
_Atomic int overlay_epoll_nested;

/* Private bits kept in ep_reg.events beside the program's own. */
#define REG_ABSENT   (1u << 20)  /* hidden EPOLLEXCLUSIVE registration, deleted from the kernel */
#define REG_DISARMED (1u << 21)  /* EPOLLONESHOT that fired and was not re-armed */
#define REG_PRIVATE  (REG_ABSENT | REG_DISARMED)

static char ov_token;                 /* its address is the data only sluice owns */
static _Atomic int ov_epfd = -1;      /* internal epoll: writable watches */
static void (*_Atomic on_writable)(int fd);   /* the gate that watches (drain) */

/* --- per-descriptor lock around registrations ------------------------------ */

/* ep_lock: EP_HELD while a thread changes the entry's registrations. A signal
 * handler may interrupt that thread and close the descriptor (or free a slot,
 * which unhides a listener): waiting for the lock there would wait forever on
 * the thread's own hold. So the handler makes its change to what is hidden
 * (atomic), leaves a note in the lock word, and the holder carries it out on
 * the kernel's side before it lets go. */
#define EP_HELD   0x1u
#define EP_REDO   0x2u   /* what is hidden changed meanwhile: apply it again */
#define EP_FORGET 0x4u   /* the descriptor was forgotten meanwhile */

/* The entry whose lock this thread is taking or holds (one at a time). */
static __thread struct fdent *holding;

struct lock_ctx {
    struct fdent *outer;   /* what `holding` was before */
    bool locked;           /* false: left a note for this thread's own hold */
};

static struct lock_ctx lock_fd(struct fdent *e)
{
    struct lock_ctx c = { holding, true };
    if (holding == e && (atomic_load(&e->ep_lock) & EP_HELD)) {
        c.locked = false;
        return c;
    }
    /* Said before waiting: a handler that comes now sees the lock as ours. */
    holding = e;
    uint8_t free_word = 0;
    while (!atomic_compare_exchange_weak_explicit(&e->ep_lock, &free_word, EP_HELD,
                                                  memory_order_acquire, memory_order_relaxed)) {
        free_word = 0;
        sched_yield();
    }
    return c;
}

/* Leaves note (EP_REDO or EP_FORGET) for the holder of e's lock. */
static void note_for_holder(struct fdent *e, uint8_t note)
{
    atomic_fetch_or(&e->ep_lock, note);
}

static void apply_reg(int fd, struct ep_reg *reg, uint32_t hidden, bool hiding);
static void forget_locked(struct fdent *e);

static void unlock_fd(int fd, struct fdent *e, struct lock_ctx c)
{
    if (!c.locked)
        return;
    for (;;) {
        uint8_t notes = atomic_exchange(&e->ep_lock, EP_HELD) & (uint8_t) ~EP_HELD;
        if (notes == 0) {
            uint8_t held = EP_HELD;
            if (atomic_compare_exchange_strong_explicit(&e->ep_lock, &held, 0,
                                                        memory_order_release, memory_order_relaxed))
                break;
            continue;   /* a note came after the look */
        }
        if (notes & EP_FORGET) {
            forget_locked(e);
        } else {
            uint32_t hidden = atomic_load(&e->hidden);
            for (int i = 0; i < FD_EPOLL_REGS; i++)
                apply_reg(fd, &e->regs[i], hidden, hidden != 0);
        }
    }
    holding = c.outer;
}

static uint32_t epoll_mask_of(uint32_t hidden)
{
    uint32_t m = 0;
    if (hidden & EPOLLIN)
        m |= EPOLLIN | EPOLLRDNORM | EPOLLRDBAND;
    if (hidden & EPOLLOUT)
        m |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
    return m;
}

static int find_reg(struct fdent *e, int epfd)
{
    for (int i = 0; i < FD_EPOLL_REGS; i++)
        if (atomic_load(&e->regs[i].epfd_plus_one) == epfd + 1)
            return i;
    return -1;
}

/* Makes the kernel's registration agree with the program's and what is hidden.
 * Called with the entry locked. */
static void apply_reg(int fd, struct ep_reg *reg, uint32_t hidden, bool hiding)
{
    int epfd = atomic_load(&reg->epfd_plus_one) - 1;
    uint32_t ev = atomic_load(&reg->events);
    if (epfd < 0 || (ev & REG_DISARMED))
        return;
    uint32_t prog = ev & ~REG_PRIVATE;
    uint32_t want = prog & ~epoll_mask_of(hidden);
    struct epoll_event k = { .events = want, .data.u64 = atomic_load(&reg->data) };
    if (prog & EPOLLEXCLUSIVE) {
        if (want != prog && !(ev & REG_ABSENT)) {
            REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, fd, NULL);
            ev |= REG_ABSENT;
        } else if (want == prog && (ev & REG_ABSENT)) {
            REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &k);
            ev &= ~REG_ABSENT;
        }
    } else {
        if (hiding && (prog & EPOLLONESHOT) && !sys_epoll_armed(epfd, fd))
            ev |= REG_DISARMED;
        else
            REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &k);
    }
    atomic_store(&reg->events, ev);
}

/* --- the gates' side ---------------------------------------------------------- */

int overlay_writable_epfd(void)
{
    return atomic_load(&ov_epfd);
}

void overlay_init(void)
{
    /* fdtab sits below us: it tells us of a forgotten descriptor this way. */
    fdtab_hook_overlay(overlay_forget);
}

void overlay_on_writable(void (*fn)(int fd))
{
    atomic_store_explicit(&on_writable, fn, memory_order_release);
}

void overlay_hide(int fd, uint32_t events)
{
    struct fdent *e = fdtab_get(fd);
    if (e == NULL)
        return;
    int saved = errno;
    struct lock_ctx c = lock_fd(e);
    uint32_t old = atomic_fetch_or(&e->hidden, events), now = old | events;
    if (now != old) {
        if (old == 0)
            atomic_fetch_add(&overlay_hidden_fds, 1);
        if (!c.locked)
            note_for_holder(e, EP_REDO);
        else
            for (int i = 0; i < FD_EPOLL_REGS; i++)
                apply_reg(fd, &e->regs[i], now, true);
    }
    unlock_fd(fd, e, c);
    errno = saved;
}

void overlay_unhide(int fd, uint32_t events)
{
    struct fdent *e = fdtab_peek(fd);
    if (e == NULL)
        return;
    int saved = errno;
    struct lock_ctx c = lock_fd(e);
    uint32_t old = atomic_fetch_and(&e->hidden, ~events), now = old & ~events;
    if (now != old) {
        if (now == 0)
            atomic_fetch_sub(&overlay_hidden_fds, 1);
        if (!c.locked)
            note_for_holder(e, EP_REDO);
        else
            for (int i = 0; i < FD_EPOLL_REGS; i++)
                apply_reg(fd, &e->regs[i], now, false);
    }
    unlock_fd(fd, e, c);
    if (now != old)
        overlay_wake_waiters();
    errno = saved;
}

void overlay_poke(void)
{
    overlay_wake_waiters();
}

/* Edge-triggered epoll reports a descriptor only when its readiness changes, so
 * a program that was answered EAGAIN while the kernel still has something for
 * it would sleep through it. EPOLL_CTL_MOD re-queues a ready item; an
 * EPOLLEXCLUSIVE one (MOD refuses those) is deleted and added back. Level
 * registrations report again by themselves and a one-shot's re-arm polls anew. */
void overlay_requeue(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (e == NULL)
        return;
    int saved = errno;
    struct lock_ctx c = lock_fd(e);
    if (!c.locked) {
        /* A handler on the holder's own thread: this best-effort nudge waits
         * for the next shed instead. */
        errno = saved;
        return;
    }
    uint32_t hidden = atomic_load(&e->hidden);
    for (int i = 0; i < FD_EPOLL_REGS; i++) {
        int epfd = atomic_load(&e->regs[i].epfd_plus_one) - 1;
        uint32_t ev = atomic_load(&e->regs[i].events);
        if (epfd < 0 || (ev & REG_PRIVATE) || !(ev & EPOLLET) || (ev & EPOLLONESHOT))
            continue;
        struct epoll_event k = { .events = ev & ~epoll_mask_of(hidden),
                                 .data.u64 = atomic_load(&e->regs[i].data) };
        if (ev & EPOLLEXCLUSIVE) {
            if (REAL(epoll_ctl)(epfd, EPOLL_CTL_DEL, fd, NULL) == 0)
                REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, fd, &k);
        } else {
            REAL(epoll_ctl)(epfd, EPOLL_CTL_MOD, fd, &k);
        }
    }
    unlock_fd(fd, e, c);
    errno = saved;
}

/* Registers the internal epoll instance inside the program's epfd, once. */
static void nest_into(int epfd)
{
    int ov = atomic_load(&ov_epfd);
    struct fdent *p = fdtab_get(epfd);
    if (ov < 0 || p == NULL || (atomic_load(&p->flags) & FDF_EP_OVERLAY))
        return;
    struct epoll_event k = { .events = EPOLLIN, .data.ptr = &ov_token };
    if (REAL(epoll_ctl)(epfd, EPOLL_CTL_ADD, ov, &k) == 0 || errno == EEXIST) {
        atomic_fetch_or(&p->flags, FDF_EP_OVERLAY);
        atomic_store(&overlay_epoll_nested, 1);
    }
}

static int internal_epoll(void)
{
    int ov = atomic_load(&ov_epfd);
    if (ov >= 0)
        return ov;
    int fresh = REAL(epoll_create1)(EPOLL_CLOEXEC);
    if (fresh < 0)
        return -1;
    int expected = -1;
    if (!atomic_compare_exchange_strong(&ov_epfd, &expected, fresh)) {
        REAL(close)(fresh);
        return expected;
    }
    fdtab_own(fresh);
    overlay_poke();   /* poll/select waiters add the new instance to their set */
    return fresh;
}

void overlay_watch_writable(int fd)
{
    int saved = errno;
    int ov = internal_epoll();
    if (ov >= 0) {
        struct epoll_event k = { .events = EPOLLOUT | EPOLLONESHOT, .data.u64 = (uint64_t) fd };
        if (REAL(epoll_ctl)(ov, EPOLL_CTL_MOD, fd, &k) != 0 && errno == ENOENT)
            REAL(epoll_ctl)(ov, EPOLL_CTL_ADD, fd, &k);
        struct fdent *e = fdtab_peek(fd);
        if (e != NULL)
            for (int i = 0; i < FD_EPOLL_REGS; i++) {
                int epfd = atomic_load(&e->regs[i].epfd_plus_one) - 1;
                if (epfd >= 0)
                    nest_into(epfd);
            }
    }
    errno = saved;
}

void overlay_unwatch(int fd)
{
    int ov = atomic_load(&ov_epfd);
    if (ov >= 0)
        KEEP_ERRNO(REAL(epoll_ctl)(ov, EPOLL_CTL_DEL, fd, NULL));
}

/* Calls the gates back for every watched socket that became writable. */
void overlay_dispatch_writable(void)
{
    int ov = atomic_load(&ov_epfd);
    if (ov < 0)
        return;
    void (*fn)(int) = atomic_load_explicit(&on_writable, memory_order_acquire);
    struct epoll_event evs[64];
    int n;
    do {
        n = REAL(epoll_wait)(ov, evs, 64, 0);
        for (int i = 0; i < n && fn != NULL; i++)
            fn((int) evs[i].data.u64);
    } while (n == 64);
}

void overlay_forget(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (e == NULL)
        return;
    struct lock_ctx c = lock_fd(e);
    if (atomic_exchange(&e->hidden, 0) != 0)
        atomic_fetch_sub(&overlay_hidden_fds, 1);
    if (!c.locked)
        note_for_holder(e, EP_FORGET);
    else
        forget_locked(e);
    unlock_fd(fd, e, c);
}

static void forget_locked(struct fdent *e)
{
    for (int i = 0; i < FD_EPOLL_REGS; i++) {
        atomic_store(&e->regs[i].epfd_plus_one, 0);
        atomic_store(&e->regs[i].events, 0);
        atomic_store(&e->regs[i].data, 0);
    }
}

void overlay_atfork_child(void)
{
    /* The child shares the parent's epoll instances and eventfds: it must not
     * wake or rewire the parent's waits. It starts with nothing hidden. */
    int used = fdtab_extent();
    for (int fd = 0; fd < used; fd++) {
        struct fdent *e = fdtab_peek(fd);
        if (e != NULL) {
            atomic_store(&e->hidden, 0);
            atomic_store(&e->ep_lock, 0);
        }
    }
    atomic_store(&overlay_hidden_fds, 0);
    overlay_waiters_atfork_child();
    int ov = atomic_exchange(&ov_epfd, -1);
    if (ov >= 0)
        fdtab_close_own(ov);
}

/* --- the wrappers' side ------------------------------------------------------- */

int overlay_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    enum fd_kind kind = fdtab_kind(fd);
    struct fdent *e = (kind == FD_LISTENER || kind == FD_CONN || kind == FD_STREAM)
        ? fdtab_get(fd) : NULL;
    if (e == NULL || (op != EPOLL_CTL_DEL && event == NULL))
        return REAL(epoll_ctl)(epfd, op, fd, event);
    struct lock_ctx c = lock_fd(e);
    if (!c.locked)   /* from a handler, inside our own epoll_ctl of fd: as is */
        return REAL(epoll_ctl)(epfd, op, fd, event);
    uint32_t hidden = atomic_load(&e->hidden);
    int slot = find_reg(e, epfd);
    uint32_t prog = event != NULL ? event->events : 0;
    struct epoll_event k = event != NULL ? *event : (struct epoll_event) { 0 };
    k.events = prog & ~epoll_mask_of(hidden);
    int r;
    switch (op) {
    case EPOLL_CTL_ADD:
        if (slot >= 0 && (atomic_load(&e->regs[slot].events) & REG_ABSENT)) {
            errno = EEXIST;
            r = -1;
            break;
        }
        if (slot < 0)
            slot = find_reg(e, -1);
        uint32_t rec = prog;
        if ((prog & EPOLLEXCLUSIVE) && k.events != prog && slot >= 0) {
            rec |= REG_ABSENT;   /* added for real when unhidden */
            r = 0;
        } else {
            r = REAL(epoll_ctl)(epfd, op, fd, &k);
        }
        if (r == 0 && slot >= 0) {
            atomic_store(&e->regs[slot].events, rec);
            atomic_store(&e->regs[slot].data, event->data.u64);
            atomic_store(&e->regs[slot].epfd_plus_one, epfd + 1);
        } else if (r == 0) {
            static _Atomic int warned;
            if (!atomic_exchange(&warned, 1))
                log_warn("descriptor %d is in more than %d epoll instances: not hidden in the others",
                         fd, FD_EPOLL_REGS);
        }
        break;
    case EPOLL_CTL_MOD:
        if (slot >= 0 && (atomic_load(&e->regs[slot].events) & REG_ABSENT)) {
            errno = EINVAL;  /* as the kernel answers MOD of an EPOLLEXCLUSIVE one */
            r = -1;
            break;
        }
        r = REAL(epoll_ctl)(epfd, op, fd, &k);
        if (r == 0) {
            if (slot < 0)
                slot = find_reg(e, -1);
            if (slot >= 0) {
                atomic_store(&e->regs[slot].events, prog);   /* re-armed: not disarmed */
                atomic_store(&e->regs[slot].data, event->data.u64);
                atomic_store(&e->regs[slot].epfd_plus_one, epfd + 1);
            }
        }
        break;
    case EPOLL_CTL_DEL:
        if (slot >= 0 && (atomic_load(&e->regs[slot].events) & REG_ABSENT))
            r = 0;
        else
            r = REAL(epoll_ctl)(epfd, op, fd, event);
        if (slot >= 0 && (r == 0 || errno == ENOENT || errno == EBADF)) {
            atomic_store(&e->regs[slot].epfd_plus_one, 0);
            atomic_store(&e->regs[slot].events, 0);
        }
        break;
    default:
        r = REAL(epoll_ctl)(epfd, op, fd, event);
    }
    unlock_fd(fd, e, c);
    if (r == 0 && op == EPOLL_CTL_ADD && atomic_load(&ov_epfd) >= 0)
        KEEP_ERRNO(nest_into(epfd));
    return r;
}

int overlay_epoll_wait(enum ep_variant v, int epfd, struct epoll_event *events, int maxevents,
                       int timeout_ms, const struct timespec *timeout, const sigset_t *sigmask)
{
    bool forever = v == EP_PWAIT2 ? timeout == NULL : timeout_ms < 0;
    uint64_t span = v == EP_PWAIT2 ? (timeout ? sys_ts_ns(timeout) : 0) : (uint64_t) (timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    uint64_t deadline = sys_mono_ns() + span;
    int saved = errno;
    for (;;) {
        uint64_t now = sys_mono_ns();
        uint64_t left = forever ? 0 : (deadline > now ? deadline - now : 0);
        int r;
        if (v == EP_PWAIT2) {
            struct timespec t = sys_ns_ts(left);
            r = REAL(epoll_pwait2)(epfd, events, maxevents, forever ? NULL : &t, sigmask);
        } else {
            int ms = forever ? -1 : (int) ((left + 999999u) / 1000000u);
            r = v == EP_PWAIT ? REAL(epoll_pwait)(epfd, events, maxevents, ms, sigmask)
                              : REAL(epoll_wait)(epfd, events, maxevents, ms);
        }
        if (r <= 0)
            return r;
        int kept = 0;
        bool ours = false;
        for (int i = 0; i < r; i++) {
            if (events[i].data.ptr == &ov_token)
                ours = true;
            else
                events[kept++] = events[i];
        }
        if (ours)
            overlay_dispatch_writable();
        if (kept > 0 || (!forever && sys_mono_ns() >= deadline)) {
            errno = saved;
            return kept;
        }
    }
}
