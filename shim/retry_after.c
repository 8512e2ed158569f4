/* retry_after.c — the computed Retry-After (see retry_after.h).
 *
 * seconds = ceil((ahead + 1) / rate), between 1 and 60, where rate is how many
 * connections the program took per second over the last WINDOW seconds (each
 * took a slot that had come free: under a pause that is the rate slots free)
 * and ahead is what waits now and will be served (queue.c: not what is being
 * answered now, nor what will time out before its turn comes): a client that
 * will be answered holds up no one.
 * Before any slot was taken the rate is unknown and the estimate stays 1. */
#include "retry_after.h"

#include <stdatomic.h>

#include "config.h"
#include "shed.h"

#define WINDOW 10                 /* seconds of history */
#define MAX_S 60

static _Atomic uint64_t used_in[WINDOW];     /* slots taken in second s % WINDOW */
static _Atomic uint64_t used_sec[WINDOW];    /* which second that bucket holds */
static _Atomic uint64_t first_sec;           /* second + 1 of the first use */
static _Atomic unsigned estimate;
static _Atomic uint64_t rate_milli;

void retry_after_slot_used(uint64_t now_ns)
{
    uint64_t sec = now_ns / 1000000000u;
    unsigned b = (unsigned) (sec % WINDOW);
    uint64_t expected = 0;
    atomic_compare_exchange_strong(&first_sec, &expected, sec + 1);
    uint64_t held = atomic_load_explicit(&used_sec[b], memory_order_relaxed);
    if (held != sec && atomic_compare_exchange_strong(&used_sec[b], &held, sec))
        atomic_store_explicit(&used_in[b], 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&used_in[b], 1, memory_order_relaxed);
}

unsigned retry_after_update(uint64_t ahead, uint64_t now_ns)
{
    uint64_t sec = now_ns / 1000000000u, first = atomic_load(&first_sec);
    uint64_t used = 0;
    for (unsigned b = 0; b < WINDOW; b++) {
        uint64_t s = atomic_load_explicit(&used_sec[b], memory_order_relaxed);
        if (s + WINDOW > sec && s <= sec)
            used += atomic_load_explicit(&used_in[b], memory_order_relaxed);
    }
    /* The span the uses were counted over, in ms: the window, or since the first. */
    uint64_t span_ms = WINDOW * 1000u;
    if (first != 0 && (first - 1) * 1000u + span_ms > now_ns / 1000000u)
        span_ms = now_ns / 1000000u - (first - 1) * 1000u;
    if (span_ms < 1000)
        span_ms = 1000;
    uint64_t milli = used * 1000000u / span_ms;   /* slots per second x 1000 */
    atomic_store(&rate_milli, milli);
    unsigned s;
    if (first == 0) {
        s = 1;
    } else if (milli == 0) {
        s = MAX_S;
    } else {
        uint64_t ms = ((ahead + 1) * 1000000u + milli - 1) / milli;
        s = (unsigned) ((ms + 999) / 1000);
        if (s < 1)
            s = 1;
        if (s > MAX_S)
            s = MAX_S;
    }
    atomic_store(&estimate, s);
    if (sluice_cfg.retry_after_auto)
        shed_retry_after(s);
    return s;
}

unsigned retry_after_estimate(void)
{
    return atomic_load(&estimate);
}

uint64_t retry_after_rate_milli(void)
{
    return atomic_load(&rate_milli);
}
