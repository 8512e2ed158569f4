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

/* SLUICE_CONN_MAX=auto moves the limit within the slots allocated. */
static void eight_slots(void)
{
    cr_assert_eq(slots_init(8, 16), 0);
    slots_hook_pause(on_fullness, on_waiting);
    slots_hook_idle(on_slot_freed, on_conn_freed);
}

Test(slots_limit, admissions_stop_at_the_lowered_limit_and_resume_at_the_raised_one, .init = eight_slots)
{
    slots_set_limit(2);
    cr_assert_eq(slots_limit(), 2);
    int64_t a = slots_take(0), b = slots_take(1);
    cr_assert(a >= 0 && b >= 0);
    slots_held((uint32_t) a);
    slots_held((uint32_t) b);
    cr_assert_eq(slots_take(2), -1, "two of eight slots allowed");
    cr_assert(slots_full());
    int freed = freed_calls;
    slots_set_limit(3);
    cr_assert_gt(freed_calls, freed, "the idle queue hears of the raise");
    int64_t c = slots_take(2);
    cr_assert_geq(c, 0);
    slots_held((uint32_t) c);
    cr_assert_eq(slots_take(3), -1);
}

Test(slots_limit, lowering_below_the_slots_held_waits_for_enough_releases, .init = eight_slots)
{
    int64_t s[6];
    for (int i = 0; i < 6; i++) {
        s[i] = slots_take((uint32_t) i);
        cr_assert_geq(s[i], 0);
        slots_held((uint32_t) s[i]);
    }
    slots_set_limit(3);
    cr_assert(slots_full());
    cr_assert_eq(slots_take(7), -1);
    slots_release((uint32_t) s[0]);
    slots_release((uint32_t) s[1]);
    slots_release((uint32_t) s[2]);
    cr_assert_eq(slots_take(7), -1, "3 still held: the limit is 3");
    slots_release((uint32_t) s[3]);
    int64_t t = slots_take(7);
    cr_assert_geq(t, 0, "one below the limit: one admission");
    slots_held((uint32_t) t);
    cr_assert_eq(slots_take(8), -1);
    /* Raised again past what is owed: exactly the difference is admitted. */
    slots_set_limit(5);
    int64_t u = slots_take(8), v = slots_take(9);
    cr_assert(u >= 0 && v >= 0);
    cr_assert_eq(slots_take(10), -1);
}

static uint64_t held_ns;
static int held_calls;
static void held_for(uint64_t ns) { held_ns = ns; held_calls++; }

Test(slots_limit, released_slots_report_their_time_held, .init = eight_slots)
{
    cr_assert_eq(slots_time_requests(held_for), 0);
    int64_t a = slots_take(0);
    slots_held((uint32_t) a);
    usleep(20000);
    slots_release((uint32_t) a);
    cr_assert_eq(held_calls, 1);
    cr_assert(held_ns >= 20000000u && held_ns < 2000000000u, "%llu ns", (unsigned long long) held_ns);
}
