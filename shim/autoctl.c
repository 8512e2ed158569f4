/* autoctl.c — the limit SLUICE_CONN_MAX=auto keeps (see autoctl.h). Three
 * signals, the lowest bound wins:
 *
 * Memory. The peak memory in use is remembered for each number of requests in
 * service (two windows of PEAK_WINDOW_NS, so old figures age out). The cost of
 * one more request is the steepest slope between two consecutive levels
 * observed (or, with one level, from the program at rest): a cost shared by
 * all requests (a transient one at a time, a cache) is not charged to each,
 * and a level whose requests were not all at their peak at once (allocating
 * late, held briefly) cannot lower it; but it is never
 * taken under three quarters of the average cost per request. Only settled
 * levels count: held for a service time, with as many requests finished from
 * them as they count (a level just reached shows requests still allocating).
 * The limit is the number whose projected peak stays under the mark. Until
 * a level has settled the cost is not learnt and the limit stays at
 * AUTOCTL_START. Nothing is admitted while usage is over the mark, or while
 * usage plus one request's cost would be; each request in service is charged
 * its full cost even before usage shows it (admitted since the last sample).
 * Growth needs evidence: it starts at AUTOCTL_START and grows by one per
 * request finished while the limit was in use (TCP's slow start: a doubling
 * per service time), so every level is seen before the next is tried.
 *
 * Latency. Netflix's Gradient2 (concurrency-limits, Gradient2Limit.java):
 * gradient = clamp(tolerance * long / short, 0.5, 1); limit = limit * gradient
 * + queue, smoothed; no growth while fewer than half the limit are in use.
 * What differs here: the tolerance is 1.4, not 1.5 (with 1.5 the p99 at
 * three times the capacity stayed over 3x the unloaded p99); samples are the
 * mean service time of windows of WINDOW_NS and at least WINDOW_MIN_SAMPLES
 * requests, rather than single requests. The long figure (the no-load
 * latency) starts as the lowest of the first windows, falls like an average
 * of LONG_WINDOWS windows but rises 600 windows slowly (a latency raised by
 * the load must not become the no-load figure), and is measured again with
 * AUTOCTL_START in service every PROBE_EVERY_NS, and sooner once the gradient
 * has stayed at 0.75 or under for RISING_WINDOWS (Envoy's adaptive
 * concurrency measures its minRTT so, at a fixed low concurrency, on a
 * timer): that is how a program whose work grew is told from a queue.
 * queue = sqrt(limit) while latency is within tolerance (Gradient2 offers it
 * as an option) and 1 above it (its default, 4, keeps a small limit from
 * going under 8 and holds latency further above the tolerance). It begins in
 * slow start (growth by completions, at most doubling per window) until
 * latency first rises, and then halves.
 *
 * Pressure. A PSI event halves the limit (at most once per PRESSURE_HOLD_NS)
 * and holds growth meanwhile. */
#include "autoctl.h"

#include <string.h>

#define NS 1000000000ull
#define PEAK_WINDOW_NS (20 * NS)
#define WINDOW_NS (NS / 10)
#define WINDOW_MAX_NS NS
#define WINDOW_MIN_SAMPLES 5
#define TOLERANCE 1.4
#define SMOOTHING 0.2
#define LONG_WINDOWS 50
#define PROBE_EVERY_NS (30 * NS)
#define PROBE_SOONEST_NS (3 * NS)
#define RISING_WINDOWS 10
#define PRESSURE_HOLD_NS NS
#define SETTLE_MIN_NS (NS / 20)

void autoctl_init(struct autoctl *c, uint32_t ceiling, uint64_t mark)
{
    memset(c, 0, sizeof *c);
    c->ceiling = ceiling < 1 ? 1 : ceiling;
    c->mark = mark;
    c->est = AUTOCTL_START;
    c->slow_start = true;
    c->win_est0 = c->est;
    c->limit = AUTOCTL_START < c->ceiling ? AUTOCTL_START : c->ceiling;
    c->reason = AUTO_REASON_START;
}

void autoctl_resume(struct autoctl *c, uint32_t limit, uint64_t noload_ns)
{
    if (noload_ns != 0) {
        /* Past the first windows: they would run at the limit in force, under
         * load, and take that latency for the no-load one. */
        c->long_ns = (double) noload_ns;
        c->noload_ns = noload_ns;
        c->long_windows = 10;
    }
    if (limit > c->ceiling)
        limit = c->ceiling;
    if (limit <= c->limit)
        return;
    c->limit = limit;
    c->est = limit;
    c->win_est0 = c->est;
    c->slow_start = false;
}

/* --- memory ------------------------------------------------------------------------- */

static uint64_t peak_at(const struct autoctl *c, uint32_t k)
{
    return c->peak[0][k] > c->peak[1][k] ? c->peak[0][k] : c->peak[1][k];
}

/* A level's peak is believed once the level has been held for a service
 * time (and SETTLE_MIN_NS) and as many requests as it counts have finished
 * from it: every request there has then had a whole life under watch. A
 * level only just reached shows requests that have not allocated yet; a
 * slope taken from it is far under the real cost (40 MiB requests read as
 * 7 MiB, and the limit doubled into an OOM kill). */
static bool settled(const struct autoctl *c, uint32_t k)
{
    uint64_t need = c->service_ns > (double) SETTLE_MIN_NS ? (uint64_t) c->service_ns : SETTLE_MIN_NS;
    return peak_at(c, k) != 0 && c->held[0][k] + c->held[1][k] >= need
           && c->ended[0][k] + c->ended[1][k] >= k;
}

static void learn_memory(struct autoctl *c, const struct autoctl_sample *s)
{
    if (c->window_start == 0)
        c->window_start = s->now_ns;
    if (s->now_ns - c->window_start >= PEAK_WINDOW_NS) {
        memcpy(c->peak[1], c->peak[0], sizeof c->peak[0]);
        memset(c->peak[0], 0, sizeof c->peak[0]);
        memcpy(c->held[1], c->held[0], sizeof c->held[0]);
        memset(c->held[0], 0, sizeof c->held[0]);
        memcpy(c->ended[1], c->ended[0], sizeof c->ended[0]);
        memset(c->ended[0], 0, sizeof c->ended[0]);
        c->step_max[1] = c->step_max[0];
        c->step_max[0] = 0;
        c->window_start = s->now_ns;
    }
    /* The time since the last sample was spent at the level it saw; the
     * requests finished since, finished from that level. */
    uint32_t was = c->last_busy > AUTOCTL_LEVELS ? AUTOCTL_LEVELS : c->last_busy;
    if (c->last_sample_ns != 0 && was != 0) {
        c->held[0][was] += s->now_ns - c->last_sample_ns;
        c->ended[0][was] += (uint32_t) s->done;
    }
    c->last_sample_ns = s->now_ns;
    c->last_busy = s->busy;
    /* The service time a level must be held: the longest recent mean, so
     * that early short figures (a connection idle before its request) do
     * not settle a level at once. */
    if (s->done != 0) {
        double mean = (double) s->done_ns / (double) s->done;
        c->service_ns = mean > c->service_ns ? mean : c->service_ns * 0.99 + mean * 0.01;
    }
    if (s->busy == 0) {
        c->baseline = s->usage;
        return;
    }
    uint32_t k = s->busy > AUTOCTL_LEVELS ? AUTOCTL_LEVELS : s->busy;
    if (s->usage > c->peak[0][k])
        c->peak[0][k] = s->usage;
}

/* The most requests whose projected peak stays under the mark; 0 while no
 * level has settled (the cost is not learnt: the caller then keeps to
 * AUTOCTL_START). */
static uint32_t memory_cap(struct autoctl *c)
{
    uint32_t m = 0;
    for (uint32_t k = AUTOCTL_LEVELS; k >= 1; k--)
        if (settled(c, k)) {
            m = k;
            break;
        }
    if (m == 0)
        return 0;
    uint64_t pm = peak_at(c, m), base = c->baseline;
    uint64_t avg = pm > base ? (pm - base) / m : 0;
    /* The steepest step between settled levels (from the program at rest
     * only while one level has settled): a level whose requests were not
     * all at their peak at once (late allocations, a level held briefly)
     * makes a shallow step, never a steep one. */
    uint64_t slope = 0, plo = base;
    uint32_t lo = 0;
    for (uint32_t k = 1; k <= m; k++) {
        if (!settled(c, k))
            continue;
        uint64_t pk = peak_at(c, k);
        if (lo != 0 && pk > plo && (pk - plo) / (k - lo) > slope)
            slope = (pk - plo) / (k - lo);
        lo = k;
        plo = pk;
    }
    /* A step once seen stays the cost until its windows age out: a level
     * that stops being settled (or settles between two others) must not
     * make a request cheaper. */
    if (slope > c->step_max[0])
        c->step_max[0] = slope;
    if (c->step_max[1] > slope)
        slope = c->step_max[1];
    if (c->step_max[0] > slope)
        slope = c->step_max[0];
    /* No step yet (one level, or flat ones): the dearest average of a
     * settled level, from the program at rest. */
    for (uint32_t k = 1; slope == 0 && k <= m; k++)
        if (settled(c, k) && peak_at(c, k) > base && (peak_at(c, k) - base) / k > slope)
            slope = (peak_at(c, k) - base) / k;
    /* A slope much under the average is more likely noise (a level seen
     * only briefly, memory the allocator kept) than a shared cost: it may
     * take off at most a quarter. */
    uint64_t h = slope > avg / 4 * 3 ? slope : avg / 4 * 3;
    if (h == 0)
        h = avg;
    if (h == 0)
        return 0;
    c->request_bytes = h;
    /* m requests at their full cost: the peak seen is less where they were
     * never all at their peak at once. */
    if (pm < base + m * h)
        pm = base + m * h;
    uint64_t cap;
    if (pm <= c->mark) {
        cap = m + (c->mark - pm) / h;
    } else {
        uint64_t over = (pm - c->mark + h - 1) / h;
        cap = m > over ? m - over : 1;
    }
    /* Levels above m, not settled yet, have shown at least their peak so
     * far: the projection from there binds too. */
    for (uint32_t k = m + 1; k <= AUTOCTL_LEVELS; k++) {
        uint64_t pk = peak_at(c, k);
        if (pk == 0)
            continue;
        uint64_t ck = pk <= c->mark ? k + (c->mark - pk) / h : (k > 1 ? k - 1 : 1);
        if (ck < cap)
            cap = ck;
    }
    return cap > c->ceiling ? c->ceiling : (uint32_t) cap;
}

/* sqrt without libm (Newton's method; x >= 1 here). */
static double root(double x)
{
    double r = x > 1 ? x / 2 : 1;
    for (int i = 0; i < 30; i++)
        r = (r + x / r) / 2;
    return r;
}

/* --- latency ------------------------------------------------------------------------ */

static void close_window(struct autoctl *c, uint64_t now)
{
    double short_ns = (double) c->win_ns / (double) c->win_done;
    c->latency_ns = (uint64_t) short_ns;
    if (c->probe_until != 0) {
        /* The first window drains what the lower limit left over; the second
         * is the no-load figure. The estimate waits meanwhile. */
        if (++c->probe_windows >= 2) {
            c->long_ns = short_ns;
            c->noload_ns = (uint64_t) short_ns;
            c->probe_until = 0;
            c->last_probe = now;
            c->rising_windows = 0;
        }
        return;
    }
    if (c->long_windows < 10) {
        /* The first windows run at the starting limit, the nearest to no
         * load there will be: their lowest is the first no-load figure. */
        if (c->long_windows == 0 || short_ns < c->long_ns)
            c->long_ns = short_ns;
    } else if (short_ns < c->long_ns) {
        c->long_ns += (short_ns - c->long_ns) * 2.0 / (LONG_WINDOWS + 1);
    } else {
        /* Upwards only slowly (Gradient2's 600): a latency raised by the
         * load itself must not become the no-load figure. The probes
         * measure a program whose work really grew. */
        c->long_ns += (short_ns - c->long_ns) / 600.0;
    }
    c->long_windows++;
    if (c->long_ns / short_ns > 2)
        c->long_ns *= 0.95;   /* back from a long overload: do not wait for the average */
    c->noload_ns = (uint64_t) c->long_ns;
    bool app_limited = c->win_busy_max < c->est / 2;
    bool held = now < c->pressure_hold_until;
    double gradient = TOLERANCE * c->long_ns / short_ns;
    if (gradient > 1.0)
        gradient = 1.0;
    if (gradient < 0.5)
        gradient = 0.5;
    /* Slow start (its growth is per request finished: learn_latency) ends
     * when latency first rises; as TCP's does on a loss, it halves: the
     * rise shows up a window after the doubling that caused it. */
    if (c->slow_start && gradient < 1.0 && c->long_windows > 1) {
        c->slow_start = false;
        c->est /= 2;
    }
    if (!c->slow_start && (gradient < 1.0 || (!app_limited && !held))) {
        double next = c->est * gradient + (gradient < 1.0 ? 1.0 : root(c->est));
        if (held && next > c->est)
            next = c->est;
        c->est = c->est * (1 - SMOOTHING) + next * SMOOTHING;
    }
    if (c->est > c->ceiling)
        c->est = c->ceiling;
    if (c->est < 1)
        c->est = 1;
    /* Under overload the gradient stays a little under 1 (the queue term
     * balances it); far under it, for long, the no-load figure is suspect. */
    c->rising_windows = gradient <= 0.75 ? c->rising_windows + 1 : 0;
    /* Measure the no-load value again now and then, and sooner when latency
     * has stayed up for RISING_WINDOWS: the program's work may have grown
     * (a probe tells that from a queue: at AUTOCTL_START in service, a
     * queue is gone and slower work is not). */
    if (c->probe_until == 0 && !c->slow_start && c->last_probe != 0
        && (now - c->last_probe >= PROBE_EVERY_NS
            || (c->rising_windows >= RISING_WINDOWS && now - c->last_probe >= PROBE_SOONEST_NS))) {
        c->probe_until = now + WINDOW_MAX_NS * 4;   /* bounded even without samples */
        c->probe_windows = 0;
    }
    if (c->last_probe == 0)
        c->last_probe = now;
}

static void learn_latency(struct autoctl *c, const struct autoctl_sample *s)
{
    if (c->win_start == 0)
        c->win_start = s->now_ns;
    c->win_done += s->done;
    c->win_ns += s->done_ns;
    if (s->busy > c->win_busy_max)
        c->win_busy_max = s->busy;
    /* Slow start ends as soon as this window's mean so far is over the
     * tolerance (waiting for the window to close lets the doubling run on). */
    if (c->slow_start && c->long_windows > 1 && c->win_done >= 3
        && (double) c->win_ns / (double) c->win_done > TOLERANCE * c->long_ns) {
        c->slow_start = false;
        c->est /= 2;
    }
    /* Slow start: one more per request finished while the limit was in use,
     * at most doubling per window. */
    if (c->slow_start && s->done != 0 && c->win_busy_max + 1 >= c->est
        && s->now_ns >= c->pressure_hold_until && c->win_grown < c->win_est0) {
        double room = c->win_est0 - c->win_grown, add = (double) s->done < room ? (double) s->done : room;
        c->est += add;
        c->win_grown += add;
    }
    /* A window needs WINDOW_MIN_SAMPLES, however long that takes: one odd
     * request (a health check's connection) is not a latency. */
    uint64_t age = s->now_ns - c->win_start;
    if (age >= WINDOW_NS && c->win_done >= WINDOW_MIN_SAMPLES)
        close_window(c, s->now_ns);
    else if (age < WINDOW_MAX_NS || c->win_done > 0)
        return;
    c->win_start = s->now_ns;
    c->win_done = c->win_ns = 0;
    c->win_busy_max = s->busy;
    c->win_est0 = c->est;
    c->win_grown = 0;
    if (c->probe_until != 0 && s->now_ns >= c->probe_until) {
        c->probe_until = 0;   /* too few requests to measure: try again later */
        c->last_probe = s->now_ns;
    }
}

/* --- together ------------------------------------------------------------------------ */

uint32_t autoctl_step(struct autoctl *c, const struct autoctl_sample *s)
{
    bool cut = false;
    if (s->pressure && s->now_ns >= c->pressure_hold_until) {
        c->est = c->est * 0.5 < 1 ? 1 : c->est * 0.5;
        c->slow_start = false;
        c->pressure_hold_until = s->now_ns + PRESSURE_HOLD_NS;
        cut = true;
    }
    learn_latency(c, s);
    uint32_t lim = (uint32_t) c->est;
    enum autoctl_reason why = c->slow_start ? AUTO_REASON_START : AUTO_REASON_LATENCY;
    if (c->probe_until != 0) {
        if (lim > AUTOCTL_START)
            lim = AUTOCTL_START;
    }
    if (c->mark != 0 && s->usage != 0) {
        learn_memory(c, s);
        uint32_t cap = memory_cap(c);
        c->mem_cap = cap;
        if (cap == 0) {
            /* No cost learnt yet: the starting limit, however fast requests
             * finish (slow start would double it on no evidence). */
            if (c->est > AUTOCTL_START)
                c->est = AUTOCTL_START;
            if (lim > AUTOCTL_START)
                lim = AUTOCTL_START;
        } else if (cap < lim) {
            lim = cap;
            why = AUTO_REASON_MEMORY;
        }
        /* Never admit over the mark, nor one request short of it. The
         * requests in service are charged their full cost even where usage
         * does not show it yet (admitted since the last sample, still
         * allocating): room is left only for what fits beside them. */
        uint64_t h = c->request_bytes;
        uint64_t floor = c->baseline + (uint64_t) s->busy * h;
        uint64_t used = s->usage > floor ? s->usage : floor;
        uint64_t room = used + h > c->mark || used > c->mark ? 0 : h != 0 ? (c->mark - used) / h : c->ceiling;
        if (lim > s->busy + room) {
            lim = s->busy + (uint32_t) (room > c->ceiling ? c->ceiling : room);
            why = AUTO_REASON_MEMORY;
        }
        /* Growth waits for evidence: the estimate runs at most one past what
         * memory allows, so it cannot jump once memory frees. */
        if (cap != 0 && c->est > cap + 1)
            c->est = cap + 1;
    }
    if (cut)
        why = AUTO_REASON_PRESSURE;
    if (lim < 1)
        lim = 1;
    if (lim > c->ceiling)
        lim = c->ceiling;
    /* Why it last moved, or why it does not grow: memory holding it back. */
    if (lim != c->limit || cut || (why == AUTO_REASON_MEMORY && c->est > lim))
        c->reason = why;
    c->limit = lim;
    return lim;
}
