/* test_autoctl.c — SLUICE_CONN_MAX=auto's arithmetic fed synthetic samples:
 * growth at the no-load latency, a cut when latency rises, the memory mark
 * never crossed by the projected peak, a PSI event halving the limit. */
#include <criterion/criterion.h>

#include "autoctl.h"

#define MS 1000000ull
#define MB (1ull << 20)

/* Runs `seconds` of a service where `busy` requests are in service (all the
 * limit allows, capped by `demand`), each taking `lat_ms`, every 10 ms. */
static void run(struct autoctl *c, uint64_t *now, double seconds, uint32_t demand, double lat_ms)
{
    double carry = 0;
    for (int i = 0; i < (int) (seconds * 100); i++) {
        *now += 10 * MS;
        uint32_t busy = c->limit < demand ? c->limit : demand;
        carry += busy * 10.0 / lat_ms;   /* Little's law: completions in 10 ms */
        uint64_t done = (uint64_t) carry;
        carry -= (double) done;
        struct autoctl_sample s = { *now, busy, 0, done, (uint64_t) (done * lat_ms * MS), false };
        autoctl_step(c, &s);
    }
}

Test(autoctl, grows_while_latency_stays_at_its_no_load_value)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 0);
    uint64_t now = 1;
    cr_assert_eq(c.limit, AUTOCTL_START);
    run(&c, &now, 5, 500, 20);
    cr_assert_geq(c.limit, 100, "limit %u after 5 s at a steady 20 ms", c.limit);
    cr_assert_eq(c.noload_ns / MS, 20);
}

Test(autoctl, does_not_grow_past_twice_what_is_used)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 0);
    uint64_t now = 1;
    run(&c, &now, 10, 8, 20);
    cr_assert_leq(c.limit, 16 + 4, "limit %u for 8 in use", c.limit);
    cr_assert_geq(c.limit, 8);
}

Test(autoctl, shrinks_when_latency_rises)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 0);
    uint64_t now = 1;
    run(&c, &now, 5, 200, 20);
    uint32_t before = c.limit;
    cr_assert_geq(before, 100);
    /* Latency climbs with the load: each request in service past 20 adds 2 ms. */
    for (int round = 0; round < 40; round++) {
        double lat = 20 + (c.limit > 20 ? (c.limit - 20) * 2.0 : 0);
        run(&c, &now, 0.1, 200, lat);
    }
    cr_assert_lt(c.limit, before / 2, "limit %u, was %u", c.limit, before);
    cr_assert_eq(c.reason, AUTO_REASON_LATENCY);
}

/* A controller taking over a shared budget's limit goes on from it and from
 * the no-load latency its predecessor learnt: it does not fall back to the
 * start (which would starve the service while slow start runs), nor take the
 * loaded latency it first sees for the no-load one. */
Test(autoctl, a_controller_taking_over_goes_on_from_the_limit_and_no_load_latency_in_force)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 0);
    uint64_t now = 1;
    autoctl_resume(&c, 40, 20 * MS);
    cr_assert_eq(c.limit, 40);
    cr_assert_eq(c.noload_ns, 20 * MS);
    /* It took over a service already slowed to twice its no-load latency. */
    run(&c, &now, 2, 200, 40);
    cr_assert_lt(c.limit, 30, "limit %u after 2 s at twice the no-load latency", c.limit);
    struct autoctl fresh;
    autoctl_init(&fresh, 1000, 0);
    autoctl_resume(&fresh, 5000, 0);
    cr_assert_eq(fresh.limit, 1000, "resumed past the ceiling: %u", fresh.limit);
}

/* A memory-bound service: the program at rest uses 25 MB; each request holds
 * 62 MB; one request at a time (its end) holds 62 MB more. */
static uint64_t usage_for(uint32_t busy, bool transient)
{
    return 25 * MB + busy * 62 * MB + (transient && busy > 0 ? 62 * MB : 0);
}

Test(autoctl, the_memory_mark_is_never_crossed)
{
    struct autoctl c;
    uint64_t mark = 360 * MB;
    autoctl_init(&c, 1000, mark);
    uint64_t now = 1, worst = 0;
    for (int i = 0; i < 3000; i++) {
        now += 10 * MS;
        uint32_t busy = c.limit;                 /* demand is endless */
        bool transient = i % 20 >= 15;           /* the last 50 ms of each 200 ms */
        uint64_t usage = usage_for(busy, transient);
        if (usage > worst)
            worst = usage;
        uint64_t done = i % 20 == 19 ? busy : 0; /* all finish together, 200 ms each */
        struct autoctl_sample s = { now, busy, usage, done, done * 200 * MS, false };
        autoctl_step(&c, &s);
    }
    cr_assert_leq(worst, mark, "peak %llu MB over the %llu MB mark", (unsigned long long) (worst / MB),
                  (unsigned long long) (mark / MB));
    cr_assert_eq(c.limit, 4, "360 MB holds 25 + 4 x 62 + 62 = 335 MB, not 5 (397)");
    cr_assert_eq(c.reason, AUTO_REASON_MEMORY, "reason %d, est %f, cap %u", c.reason, c.est, c.mem_cap);
    /* Never under what one more request really costs (62 MB), at most the
     * whole peak of one (124 MB). */
    cr_assert(c.request_bytes >= 62 * MB && c.request_bytes <= 124 * MB, "learnt %llu MB",
              (unsigned long long) (c.request_bytes / MB));
}

/* Endless demand for requests that hold 40 MB each, taken alloc_ms into a
 * life of 300 to 349 ms (so they end one by one); the program at rest holds 5
 * MB; the mark is 180 MB. Returns the highest limit given; *last, the limit
 * at the end. */
static uint32_t staggered(uint64_t alloc_ms, uint32_t *last)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 180 * MB);
    uint64_t now = 1, start[64], life[64];
    uint32_t n = 0, made = 0, most = 0;
    struct autoctl_sample rest = { now, 0, 5 * MB, 0, 0, false };
    autoctl_step(&c, &rest);
    for (int i = 0; i < 600; i++) {
        now += 10 * MS;
        uint64_t done = 0, done_ns = 0;
        for (uint32_t j = 0; j < n;) {
            if (now - start[j] >= life[j]) {
                done++;
                done_ns += life[j];
                start[j] = start[n - 1];
                life[j] = life[--n];
            } else {
                j++;
            }
        }
        while (n < c.limit && n < 64) {
            start[n] = now;
            life[n++] = (300 + (made++ * 37) % 50) * MS;
        }
        uint64_t usage = 5 * MB;
        for (uint32_t j = 0; j < n; j++)
            usage += now - start[j] >= alloc_ms * MS ? 40 * MB : 0;
        struct autoctl_sample s = { now, n, usage, done, done_ns, false };
        autoctl_step(&c, &s);
        if (c.limit > most)
            most = c.limit;
    }
    *last = c.limit;
    return most;
}

/* Requests that take their memory late in their life are seldom all at their
 * peak at once: the peaks seen at each number in service are under what that
 * many can take. 5 + 4 x 40 = 165 MB fits under 180; a fifth would not. */
Test(autoctl, requests_at_their_peak_apart_do_not_hide_their_cost)
{
    uint32_t last;
    uint32_t most = staggered(290, &last);
    cr_assert_leq(most, 4, "limit %u: 5 + %u x 40 MB is over the 180 MB mark", most, most);
    most = staggered(20, &last);
    cr_assert_leq(most, 4, "limit %u (allocating at once)", most);
    cr_assert_geq(last, 3, "allocating at once, the limit ends at %u: 4 fit", last);
}

Test(autoctl, nothing_is_admitted_while_over_the_mark)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 100 * MB);
    uint64_t now = 1;
    struct autoctl_sample s = { now, 0, 20 * MB, 0, 0, false };
    autoctl_step(&c, &s);
    s = (struct autoctl_sample) { now += 10 * MS, 2, 130 * MB, 0, 0, false };
    cr_assert_leq(autoctl_step(&c, &s), 2, "2 in service over the mark: no third");
    s = (struct autoctl_sample) { now += 10 * MS, 1, 120 * MB, 1, 50 * MS, false };
    cr_assert_leq(autoctl_step(&c, &s), 1, "still over: none while one finishes");
}

Test(autoctl, a_pressure_event_halves_the_limit)
{
    struct autoctl c;
    autoctl_init(&c, 1000, 0);
    uint64_t now = 1;
    run(&c, &now, 3, 100, 20);
    uint32_t before = c.limit;
    cr_assert_geq(before, 40);
    struct autoctl_sample s = { now += 10 * MS, before, 0, 0, 0, true };
    uint32_t after = autoctl_step(&c, &s);
    cr_assert_leq(after, before / 2 + 1, "%u -> %u", before, after);
    cr_assert_eq(c.reason, AUTO_REASON_PRESSURE);
    /* Held for a second: no growth back at once. */
    run(&c, &now, 0.5, 100, 20);
    cr_assert_leq(c.limit, after + 1);
}
