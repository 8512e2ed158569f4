/* connhost_auto.c — the shared budget's limit in force: the file's for a
 * fixed budget; with SLUICE_CONN_MAX=auto, what one controller keeps for the
 * whole service. And the one line a member whose settings differ says.
 *
 * One budget has one limit, so one member's controller moves it: the first
 * member that has accepted a connection and whose sluice thread ticks takes
 * the `controller` word (its record's index), and keeps it while it lives.
 * Every member adds its answered requests (count and service time: two
 * relaxed adds on the shared line) for that controller to read, so it sees
 * the latency of the whole service, not of its own worker; its in-service
 * figure is the budget's. The others look at the
 * controller now and then (CONNHOST_LEAD_CHECK_NS: its record freed, or its
 * pid and start time gone) and one of them takes over from the limit in force.
 *
 * A raise wakes as many sleepers as it adds slots (each paused member's
 * thread, or a blocked accept, sleeps on the shared wake word); a cut takes
 * effect as slots are released, since a reserve compares the count with the
 * limit in force. */
#include "connhost.h"

#include <stdatomic.h>

#include "config.h"
#include "connhost_int.h"
#include "fshost_recover.h"
#include "log.h"

void connhost_say_if_settings_differ(const char *key, uint32_t limit)
{
    uint32_t slots = connhost_slots();
    bool file_auto = connhost_st->is_auto != 0;
    if (sluice_cfg.conn_auto && !file_auto)
        log_warn("SLUICE_CONN_MAX=auto: key '%s' already has a fixed budget of %u, which applies",
                 key, (unsigned) slots);
    else if (!sluice_cfg.conn_auto && file_auto)
        log_warn("SLUICE_CONN_MAX=%u: key '%s' already has an auto budget, which applies",
                 (unsigned) limit, key);
    else if (slots != limit)
        log_warn("SLUICE_CONN_MAX=%s%u: key '%s' already has a budget of %u, which applies",
                 file_auto ? "auto:" : "", (unsigned) limit, key, (unsigned) slots);
}

bool connhost_is_auto(void)
{
    return connhost_st != NULL && connhost_st->is_auto != 0;
}

void connhost_set_limit(uint32_t n)
{
    if (!connhost_usable())
        return;
    uint32_t slots = connhost_slots();
    if (n < 1)
        n = 1;
    if (n > slots)
        n = slots;
    uint32_t old = atomic_exchange(&connhost_st->limit_now, n);
    uint64_t c = atomic_load(&connhost_st->count);
    if (n > old && CONNHOST_HIGH(c) != 0 && CONNHOST_LOW(c) < n)
        connhost_wake((int) (n - old));
}

void connhost_request_done(uint64_t ns)
{
    if (connhost_st == NULL)
        return;
    atomic_fetch_add_explicit(&connhost_st->done_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&connhost_st->done_ns, ns, memory_order_relaxed);
}

void connhost_requests(uint64_t *count, uint64_t *ns)
{
    *count = atomic_load_explicit(&connhost_st->done_count, memory_order_relaxed);
    *ns = atomic_load_explicit(&connhost_st->done_ns, memory_order_relaxed);
}

void connhost_set_noload(uint64_t ns)
{
    atomic_store_explicit(&connhost_st->noload_ns, ns, memory_order_relaxed);
}

uint64_t connhost_noload(void)
{
    return atomic_load_explicit(&connhost_st->noload_ns, memory_order_relaxed);
}

/* Whether the member of record index + 1 `who` is gone. */
static bool controller_gone(uint32_t who)
{
    if (who == 0 || who > CONNHOST_NHOLDERS)
        return true;
    struct connhost_holder *h = &connhost_st->holders[who - 1];
    int32_t pid = atomic_load(&h->pid);
    bool stopped;
    return pid <= 0 || !fshost_alive(pid, h->start, &stopped);
}

bool connhost_lead(uint64_t now, bool *took)
{
    static uint64_t looked;
    static bool leading;   /* a record reused: the word names us before we knew */
    *took = false;
    if (!connhost_usable() || !connhost_is_auto())
        return false;
    /* Only a member that serves leads: one that has accepted (and so has a
     * record). A master that never accepts, or a program a worker runs with
     * the same settings, would lead for a moment and leave. */
    struct connhost_holder *me = atomic_load(&connhost_me);
    if (me == NULL)
        return false;
    uint32_t mine = (uint32_t) (me - connhost_st->holders) + 1;
    uint32_t who = atomic_load(&connhost_st->controller);
    if (who == mine) {
        *took = !leading;
        leading = true;
        return true;
    }
    leading = false;
    if (who != 0 && now - looked < CONNHOST_LEAD_CHECK_NS)
        return false;
    looked = now;
    if (who != 0 && !controller_gone(who))
        return false;
    if (!atomic_compare_exchange_strong(&connhost_st->controller, &who, mine))
        return false;
    *took = true;
    leading = true;
    return true;
}
