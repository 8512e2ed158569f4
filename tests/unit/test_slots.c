/* test_slots.c — shim/slots.c on its own: the busy slots, connection objects
 * and their references, the waits, and the hooks that tell idle and pause. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "slots.h"
#include "sys.h"

static int fullness_calls, freed_calls, conn_freed_calls, waiting_calls;
static uint32_t last_st;

static void on_fullness(void) { fullness_calls++; }
static void on_waiting(void) { waiting_calls++; }
static void on_slot_freed(void) { freed_calls++; }
static void on_conn_freed(uint32_t st) { conn_freed_calls++; last_st = st; }

static void two_slots(void)
{
    cr_assert_eq(slots_init(2, 4), 0);
    slots_hook_pause(on_fullness, on_waiting);
    slots_hook_idle(on_slot_freed, on_conn_freed);
}

TestSuite(slots, .init = two_slots);

Test(slots, no_more_slots_than_the_limit)
{
    int64_t a = slots_reserve(), b = slots_reserve();
    cr_assert(a >= 0 && b >= 0 && a != b);
    cr_assert_eq(slots_reserve(), -1);
    cr_assert(!slots_any_free());
    slots_untake((uint32_t) a);
    cr_assert(slots_any_free());
    cr_assert_eq(slots_reserve(), a, "the freed one");
}

Test(slots, the_pause_hears_when_the_pool_fills_and_when_it_stops_being_full)
{
    int64_t a = slots_take(0), b = slots_take(1);
    slots_held((uint32_t) a);
    cr_assert_eq(fullness_calls, 0);
    cr_assert(!slots_full());
    slots_held((uint32_t) b);
    cr_assert_eq(fullness_calls, 1);
    cr_assert(slots_full());
    cr_assert_eq(slots_holder((uint32_t) a), 1);
    cr_assert_eq(slots_holder((uint32_t) b), 2);
    slots_release((uint32_t) b);
    cr_assert_eq(fullness_calls, 2);
    cr_assert_eq(freed_calls, 1, "idle connections are served first");
    cr_assert(!slots_full());
    cr_assert_eq(slots_holder((uint32_t) b), 0);
}

Test(slots, the_last_reference_frees_the_object_and_its_slot)
{
    int64_t cid = slots_new_conn();
    cr_assert_geq(cid, 0);
    struct conn *c = slots_conn((uint32_t) cid);
    cr_assert_not_null(c);
    int64_t s = slots_take((uint32_t) cid);
    atomic_store(&c->refs, 1);
    atomic_store(&c->st, ((uint32_t) s + 1) << CONN_SLOT_SHIFT | CONN_ANSWERED);
    slots_held((uint32_t) s);
    conn_addref((uint32_t) cid + 1);     /* a dup */
    conn_release((uint32_t) cid + 1);
    cr_assert_eq(conn_freed_calls, 0, "one descriptor is left");
    errno = 1234;
    conn_release((uint32_t) cid + 1);
    cr_assert_eq(errno, 1234, "errno is kept");
    cr_assert_eq(conn_freed_calls, 1);
    cr_assert(last_st & CONN_ANSWERED);
    cr_assert_eq(atomic_load(&c->alloc), 0);
    cr_assert_eq(slots_holder((uint32_t) s), 0);
    cr_assert_eq(freed_calls, 1);
    conn_release(0);            /* no connection: nothing */
    conn_release(99);           /* past the end: nothing */
    cr_assert_eq(conn_freed_calls, 1);
    cr_assert_null(slots_conn(4));
}

Test(slots, a_wait_with_a_free_slot_returns_at_once_and_a_timed_one_times_out)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    cr_assert_eq(slots_wait(s[0]), 0);
    cr_assert_eq(waiting_calls, 1, "the thread is asked to re-check while we wait");
    slots_reserve();
    slots_reserve();
    struct timeval tv = { 0, 100000 };
    setsockopt(s[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint64_t t0 = sys_mono_ns();
    cr_assert_eq(slots_wait(s[0]), -1);
    cr_assert_eq(errno, EAGAIN, "as accept with SO_RCVTIMEO");
    uint64_t waited = sys_mono_ns() - t0;
    cr_assert(waited >= 100000000u && waited < 2000000000u, "waited %llu ns",
              (unsigned long long) waited);
}

Test(slots, a_forked_child_starts_with_every_slot_free)
{
    int64_t a = slots_take(0), b = slots_take(1);
    slots_held((uint32_t) a);
    slots_held((uint32_t) b);
    cr_assert(slots_full());
    slots_atfork_child();
    cr_assert(!slots_full());
    cr_assert(slots_any_free());
    cr_assert_eq(slots_holder(0), 0);
    cr_assert_geq(slots_new_conn(), 0);
}
