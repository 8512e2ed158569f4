/* connhost.h — host scope of the connection limit (SLUICE_CONN_SCOPE=host):
 * one budget of busy slots per (user, key) in a shared file, used by every
 * process that names the key. slots.c uses it as its backend in host scope. */
#ifndef SLUICE_CONNHOST_H
#define SLUICE_CONNHOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* The shared file's layout (tests read it from outside). */
#define CONNHOST_MAGIC UINT64_C(0x316e6e6374736c75)   /* "ulstcnn1" */
#define CONNHOST_VERSION 2u
#define CONNHOST_FILE_FMT "conn-%s"
#define CONNHOST_NHOLDERS 1024
#define CONNHOST_CHECK_NS UINT64_C(50000000)    /* waiters check who is alive this often */
#define CONNHOST_WATCH_NS UINT64_C(20000000)    /* and look at watched slots this often */
#define CONNHOST_WATCH_IDLE_MS 250              /* their maker's look while nobody waits */
#define CONNHOST_QUIESCE_NS UINT64_C(100000000) /* a recount waits this long for members */

/* count: slots in use (low) | sleepers (high); holder.word: slots the process
 * holds (low) | its threads between two updates (high). */
#define CONNHOST_LOW(w) ((uint32_t) ((w) & 0xffffffffu))
#define CONNHOST_HIGH(w) ((uint32_t) ((w) >> 32))
#define CONNHOST_HIGH_ONE (UINT64_C(1) << 32)

/* One per member process, on a cache line of its own. */
struct connhost_holder {
    _Atomic int32_t pid;       /* 0: free (claimed and freed under the lock) */
    uint32_t pad0;
    uint64_t start;            /* its start time (clock ticks after boot; 0: unknown) */
    _Atomic uint64_t word;
    _Atomic uint32_t sleepers; /* its threads counted asleep in the count */
    char pad[36];
} __attribute__((aligned(64)));

/* slot.own: 0 when free; else the holding record's index + 1 (low bits), and
 * the flags. FORKED: the process forked while it held the connection, whose
 * TCP 4-tuple and socket inode are then recorded. BOUND: it holds a
 * connection (a blocking accept reserves its slot before the call, so a
 * thread blocked in accept holds one unbound). WATCHED: a FORKED slot
 * whose holder closed its last descriptor (or died): the connection may live
 * on in another process; watchers free it once the kernel no longer knows the
 * socket. */
#define CONNHOST_OWNER_MASK 0xffffffu
#define CONNHOST_BOUND   0x20000000u   /* holds a connection (not only reserved for an accept) */
#define CONNHOST_FORKED  0x40000000u
#define CONNHOST_WATCHED 0x80000000u

struct connhost_slot {
    _Atomic uint32_t own;
    uint16_t family;           /* AF_INET, AF_INET6 (FORKED TCP only) */
    uint16_t pad0;
    uint64_t ino;              /* the socket's inode */
    uint8_t laddr[16], raddr[16];
    uint16_t lport, rport;     /* network order */
    uint32_t pad1;
    uint64_t pad2;
};

struct connhost_state {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    uint32_t uid;
    uint32_t limit;
    _Atomic uint32_t recount;      /* a recount runs: reserves fail, releases lock */
    _Atomic uint32_t watched;      /* WATCHED slots now */
    _Atomic uint64_t last_check;   /* when a waiter last checked the holders */
    _Atomic uint64_t last_watch;   /* when a watcher last looked at WATCHED slots */
    pthread_mutex_t lock __attribute__((aligned(64)));
    _Atomic uint64_t count __attribute__((aligned(64)));
    _Atomic uint32_t wake __attribute__((aligned(64)));   /* bumped by each wake */
    _Atomic uint32_t hint;         /* where the next free slot is looked for */
    /* The limit in force: `limit` (the slots the file has) for a fixed
     * budget; with SLUICE_CONN_MAX=auto, what one member's controller keeps
     * (connhost_auto.c), which reads every member's answered requests. */
    _Atomic uint32_t limit_now __attribute__((aligned(64)));
    uint32_t is_auto;              /* made by a member with SLUICE_CONN_MAX=auto */
    _Atomic uint32_t controller;   /* the controlling member's record index + 1; 0: none */
    uint32_t pad_auto;
    _Atomic uint64_t done_count;   /* requests answered, by every member */
    _Atomic uint64_t done_ns;      /* and their total service time */
    _Atomic uint64_t noload_ns;    /* the controller's no-load latency, for a successor */
    struct connhost_holder holders[CONNHOST_NHOLDERS];
    struct connhost_slot slots[];
};

/* The file's size for a budget of limit slots. */
static inline size_t connhost_size(uint32_t limit)
{
    return sizeof(struct connhost_state) + (size_t) limit * sizeof(struct connhost_slot);
}

/* Maps (creating if needed) the budget of key; 0 and *limit (the budget's,
 * which the first member set), or -1 after one error line (the connection
 * limit is then off in this process). */
int connhost_init(uint32_t limit, const char *key, uint32_t *limit_out) SLUICE_INTERNAL;
/* Whether the shared state is in use (mapped, not broken). */
bool connhost_usable(void) SLUICE_INTERNAL;

/* A free slot of the budget (its index) or -1: one compare-and-swap on the
 * count and one on the slot while one is free; no lock, no system call. */
int64_t connhost_reserve(void) SLUICE_INTERNAL;
/* Gives slot s back (a FORKED one becomes WATCHED instead); wakes one sleeper
 * if there are any. Returns the slots in use before. errno is preserved. */
uint32_t connhost_untake(uint32_t s) SLUICE_INTERNAL;
uint32_t connhost_in_use(void) SLUICE_INTERNAL;
/* Slot s now holds the accepted connection it was reserved for. */
void connhost_bound(uint32_t s) SLUICE_INTERNAL;
/* Connections the budget's slots hold now (bound or watched; not the slots
 * reserved by threads blocked in accept): the stats' in flight. */
uint32_t connhost_connections(void) SLUICE_INTERNAL;
/* The limit in force (SLUICE_CONN_MAX=auto moves it within the slots). */
uint32_t connhost_limit(void) SLUICE_INTERNAL;
/* The slots the file has: the fixed limit, or auto's ceiling. */
uint32_t connhost_slots(void) SLUICE_INTERNAL;

/* One line if this process's SLUICE_CONN_MAX (limit, and auto or not)
 * differs from the budget's file, whose applies (connhost_auto.c). */
void connhost_say_if_settings_differ(const char *key, uint32_t limit) SLUICE_INTERNAL;
/* SLUICE_CONN_MAX=auto with a shared budget (connhost_auto.c). Whether the
 * budget's file was made for auto (else its limit is fixed). */
bool connhost_is_auto(void) SLUICE_INTERNAL;
/* Whether this process's controller is the one that moves the limit: true
 * if it is, or if it became it now because there was none or that member is
 * gone (*took then true; it should start from connhost_limit()). Looks at
 * the other member at most every CONNHOST_LEAD_CHECK_NS. */
bool connhost_lead(uint64_t now, bool *took) SLUICE_INTERNAL;
#define CONNHOST_LEAD_CHECK_NS UINT64_C(200000000)
/* Sets the limit in force (1 .. the slots); a raise wakes that many sleepers. */
void connhost_set_limit(uint32_t n) SLUICE_INTERNAL;
/* A request answered in this process, ns in service: counted for the controller. */
void connhost_request_done(uint64_t ns) SLUICE_INTERNAL;
/* Every member's answered requests so far: count and total ns. */
void connhost_requests(uint64_t *count, uint64_t *ns) SLUICE_INTERNAL;
/* The controller's no-load latency, kept for whoever takes over (0: none). */
void connhost_set_noload(uint64_t ns) SLUICE_INTERNAL;
uint64_t connhost_noload(void) SLUICE_INTERNAL;

/* Sleeps, counted as a sleeper, while every slot is in use, until woken (a
 * release wakes one sleeper), deadline_ns (0: none) or a signal; checks who is
 * alive and watched slots on the way. 0: a slot may be free; ETIMEDOUT; EINTR.
 * cancellable: as a cancellation point (a blocking accept's wait). */
int connhost_sleep(uint64_t deadline_ns, bool cancellable) SLUICE_INTERNAL;
/* Wakes one sleeper if a slot is free and someone sleeps (a woken process that
 * left the slot unused passes the wake on). */
void connhost_pass_on(void) SLUICE_INTERNAL;
/* Checks, if due, who is alive and the WATCHED slots (sluice's thread). While
 * slots this process left WATCHED remain, how soon to look again (ms; 0: no
 * hurry). */
int connhost_tick(uint64_t now) SLUICE_INTERNAL;

/* At fork, for a slot this process holds with descriptor fd: marks it FORKED
 * and records the connection (TCP only). */
void connhost_mark_forked(uint32_t s, int fd) SLUICE_INTERNAL;
/* Looks at the WATCHED slots now; frees those whose socket is gone. */
void connhost_watch(void) SLUICE_INTERNAL;
void connhost_atfork_child(void) SLUICE_INTERNAL;
/* fn runs when this process makes a slot WATCHED (its last close of a FORKED
 * connection): sluice's thread should look soon. Signal-safe callers only. */
void connhost_hook_watched(void (*fn)(void)) SLUICE_INTERNAL;

#endif
