/* ticket.c — turns for threads blocked in accept (see ticket.h).
 *
 * Without turns a thread that has just closed its connection comes back to
 * accept and reserves the slot it freed before the waiter the slot pool woke
 * for it gets to run: in a pool of eight threads on four slots some threads
 * served 15 of 80 connections and others 6. A ticket lock puts them in line:
 * each blocking accept takes the next ticket; only the head of the line waits
 * on the slot pool (slots_wait) and reserves; the others sleep on `serving`,
 * which the head moves on once it holds its slot.
 *
 * A waiter that leaves early (a signal, SO_RCVTIMEO, cancellation) marks its
 * ticket gone in a ring; whoever moves `serving` onto a gone ticket, or the
 * leaver finding its ticket already served, skips it: exactly one of them wins
 * the mark by compare-and-swap. A signal handler that accepts on a thread
 * already in line (it could never reach the head) reserves as before, without
 * a ticket; so do waits beyond the ring's size (minus a margin for threads
 * taking tickets at the same moment).
 *
 * Non-blocking accepts and idle connections (idle=free) still take a free slot
 * as they find it: they do not sleep, so they have no place in the line. */
#include "ticket.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "slots.h"
#include "sys.h"

#define RING 1024   /* tickets in line at most (threads blocked in accept) */

static _Atomic uint32_t next_ticket;
static _Atomic uint32_t serving;          /* the head's ticket; also a futex word */
static _Atomic uint32_t gone[RING];       /* ticket + 1 of a waiter that left */
static _Atomic int sleepers;              /* threads asleep on serving */
static __thread bool in_line;             /* this thread holds a ticket */

/* Serving moves past ticket t (the head's, held or gone) and past any gone
 * tickets behind it, and wakes the line to look. */
static void move_on(uint32_t t)
{
    for (;;) {
        t++;
        atomic_store(&serving, t);
        uint32_t mark = t + 1;
        if (!atomic_compare_exchange_strong(&gone[t % RING], &mark, 0))
            break;
    }
    if (atomic_load(&sleepers) != 0)
        sys_futex_wake(&serving, INT32_MAX, true);
}

/* The waiter with ticket t leaves without its slot. */
static void leave(uint32_t t)
{
    atomic_store(&gone[t % RING], t + 1);
    if (atomic_load(&serving) == t) {
        uint32_t mark = t + 1;
        if (atomic_compare_exchange_strong(&gone[t % RING], &mark, 0))
            move_on(t);
    }
}

struct turn {
    uint32_t t;
    bool asleep;   /* counted in sleepers (a cancellation there takes it back) */
};

static void turn_cancelled(void *arg)
{
    struct turn *turn = arg;
    if (turn->asleep)
        atomic_fetch_sub(&sleepers, 1);
    leave(turn->t);
    in_line = false;
}

static int64_t wait_turn(int fd, struct turn *turn, uint64_t deadline)
{
    for (;;) {
        uint32_t s = atomic_load(&serving);
        if (s == turn->t)
            break;
        atomic_fetch_add(&sleepers, 1);
        turn->asleep = true;
        int r = sys_futex_wait_cancellable(&serving, s, deadline, true);
        turn->asleep = false;
        atomic_fetch_sub(&sleepers, 1);
        if (r == EINTR)
            return -1;
        if (r == ETIMEDOUT) {
            errno = EAGAIN;
            return -1;
        }
    }
    for (;;) {
        int64_t id = slots_reserve();
        if (id >= 0)
            return id;
        if (slots_wait(fd) < 0)
            return -1;
    }
}

/* A frame of its own for the cleanup's setjmp (see slots.c). */
static int64_t wait_turn_cancellable(int fd, struct turn *turn, uint64_t deadline)
{
    volatile int64_t id = -1;
    pthread_cleanup_push(turn_cancelled, turn);
    id = wait_turn(fd, turn, deadline);
    pthread_cleanup_pop(0);
    return id;
}

static uint64_t rcvtimeo_deadline(int fd)
{
    struct timeval tv = { 0, 0 };
    socklen_t tvlen = sizeof tv;
    int saved = errno;
    getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tvlen);
    errno = saved;
    uint64_t span = (uint64_t) tv.tv_sec * 1000000000u + (uint64_t) tv.tv_usec * 1000u;
    return span != 0 ? sys_mono_ns() + span : 0;
}

static int64_t reserve_unticketed(int fd)
{
    for (;;) {
        int64_t id = slots_reserve();
        if (id >= 0 || slots_wait(fd) < 0)
            return id;
    }
}

bool ticket_line_empty(void)
{
    /* serving first: it only grows towards next_ticket, so a head waiting
     * between the two reads is never taken for an empty line. */
    uint32_t s = atomic_load_explicit(&serving, memory_order_acquire);
    return atomic_load_explicit(&next_ticket, memory_order_acquire) == s;
}

int64_t ticket_reserve(int fd)
{
    if (in_line || atomic_load(&next_ticket) - atomic_load(&serving) >= RING - 64)
        return reserve_unticketed(fd);   /* a handler on a waiting thread; or a full ring */
    struct turn turn = { .t = atomic_fetch_add(&next_ticket, 1), .asleep = false };
    /* Fast path: nobody ahead and a slot free. */
    if (atomic_load(&serving) == turn.t) {
        int64_t id = slots_reserve();
        if (id >= 0) {
            move_on(turn.t);
            return id;
        }
    }
    in_line = true;
    int64_t id = wait_turn_cancellable(fd, &turn, rcvtimeo_deadline(fd));
    in_line = false;
    if (id < 0) {
        KEEP_ERRNO(leave(turn.t));
        return -1;
    }
    move_on(turn.t);
    return id;
}

void ticket_atfork_child(void)
{
    /* Only the forking thread lives on, and it was not waiting. */
    atomic_store(&next_ticket, 0);
    atomic_store(&serving, 0);
    for (int i = 0; i < RING; i++)
        atomic_store(&gone[i], 0);
    atomic_store(&sleepers, 0);
    in_line = false;
}
