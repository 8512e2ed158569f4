/* slots.h — the connection gate's ground floor: connection objects and the
 * pool of SLUICE_CONN_MAX busy slots. A connection object belongs to an open
 * file description (dup shares it, the last close frees it); it holds one busy
 * slot from accept to its last close (idle=hold), or only while busy (idle=free,
 * idle.c). The rooms above (idle, pause, conn) use these functions and register
 * what they want to hear; slots.c calls none of them by name. */
#ifndef SLUICE_SLOTS_H
#define SLUICE_SLOTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* One accepted connection. st: CONN_* flags, and its busy slot + 1 from bit
 * CONN_SLOT_SHIFT up (0: idle), changed together by compare-and-swap. */
struct conn {
    _Atomic uint32_t alloc;      /* 1 while it belongs to a connection */
    _Atomic uint32_t refs;       /* descriptors referring to it */
    _Atomic uint32_t st;
    _Atomic int fd;              /* a descriptor of it, as last seen */
    _Atomic int wait_fd;         /* the descriptor hidden while it waits for a slot */
    _Atomic int nonblock;        /* 1: O_NONBLOCK seen on it (idle.c's cache) */
    _Atomic uint64_t wait_since; /* when it began to wait */
};
#define CONN_ANSWERED   0x1u     /* written to since its last input */
#define CONN_WAITING    0x2u     /* input refused for want of a slot; queued */
#define CONN_SLOT_SHIFT 8

static inline bool conn_st_busy(uint32_t st) { return (st >> CONN_SLOT_SHIFT) != 0; }
static inline uint32_t conn_st_slot(uint32_t st) { return (st >> CONN_SLOT_SHIFT) - 1; }

/* nslots busy slots and room for conns connection objects (pages touched only
 * when used). 0, or -1 if the memory cannot be had (the gate stays off). */
int slots_init(uint32_t nslots, uint32_t conns) SLUICE_INTERNAL;
uint32_t slots_count(void) SLUICE_INTERNAL;      /* SLUICE_CONN_MAX; 0: gate off */
uint32_t slots_conns(void) SLUICE_INTERNAL;      /* connection objects */
/* Connection cid's object; NULL past the end. */
struct conn *slots_conn(uint32_t cid) SLUICE_INTERNAL;
/* The connection holding busy slot s: id + 1, 0 if none (or being taken). */
uint32_t slots_holder(uint32_t s) SLUICE_INTERNAL;
/* Whether a busy slot is free now. */
bool slots_any_free(void) SLUICE_INTERNAL;
/* Whether every slot holds a connection (the pause condition). */
bool slots_full(void) SLUICE_INTERNAL;

/* The limit in force, from 1 to slots_count() (SLUICE_CONN_MAX=auto moves it;
 * otherwise it is slots_count()), and the busy slots held now. */
uint32_t slots_limit(void) SLUICE_INTERNAL;
uint32_t slots_busy(void) SLUICE_INTERNAL;
/* Sets the limit in force (clamped to 1..slots_count()). Raising it frees
 * slots at once (waiters, the idle queue and the pause hear of it); lowering
 * it below the slots held stops admissions until enough are released. One
 * caller at a time (sluice's thread). */
void slots_set_limit(uint32_t n) SLUICE_INTERNAL;
/* From now on each busy slot remembers when it was bound, and its release
 * calls done(ns held). 0, or -1 if the memory cannot be had. */
int slots_time_requests(void (*done)(uint64_t ns)) SLUICE_INTERNAL;

/* A free busy slot reserved for an accept that has no connection yet (-1 if
 * none); then slots_bind() it to the new connection, or slots_untake() it. */
int64_t slots_reserve(void) SLUICE_INTERNAL;
void slots_bind(uint32_t s, uint32_t cid) SLUICE_INTERNAL;
/* Takes a free busy slot for connection cid (-1 if none); the caller then
 * either publishes it in the connection's st and calls slots_held(), or gives
 * it back with slots_untake(). */
int64_t slots_take(uint32_t cid) SLUICE_INTERNAL;
void slots_untake(uint32_t s) SLUICE_INTERNAL;
void slots_held(uint32_t s) SLUICE_INTERNAL;
/* A connection left busy slot s (idle or closed): frees it, serves waiting
 * idle connections first, then tells the pause. */
void slots_release(uint32_t s) SLUICE_INTERNAL;
/* The same for a busy period that answered nothing (a new connection whose
 * request had not arrived yet, a client gone before its answer): not a
 * request, so not timed. */
void slots_release_unserved(uint32_t s) SLUICE_INTERNAL;

/* A free connection object (alloc 0 -> 1), or -1. */
int64_t slots_new_conn(void) SLUICE_INTERNAL;
/* A descriptor of connection id+1 is gone: drop one reference (the last
 * frees the object and its slot). errno is preserved. */
void conn_release(uint32_t id_plus_one) SLUICE_INTERNAL;
/* Another descriptor now refers to connection id+1 (dup). */
void conn_addref(uint32_t id_plus_one) SLUICE_INTERNAL;

/* Waits for a free slot as a blocking call on fd would wait (SO_RCVTIMEO,
 * signals as the kernel decides). 0, or -1 with errno. */
int slots_wait(int fd) SLUICE_INTERNAL;

/* What the rooms above want to hear. idle: a slot was freed (serve the queue);
 * a connection with state st was freed. pause: the pool may have become full
 * or stopped being full; someone waits for a slot. */
void slots_hook_idle(void (*slot_freed)(void), void (*conn_freed)(uint32_t st)) SLUICE_INTERNAL;
void slots_hook_pause(void (*fullness)(void), void (*waiting)(void)) SLUICE_INTERNAL;

/* In a child after fork: every slot free, every object unused (fdtab already
 * dropped the child's references). */
void slots_atfork_child(void) SLUICE_INTERNAL;

/* Host scope (connhost.c is the backend): the budget of key, shared by every
 * process of this user that names it; nslots is its limit. 0, or -1 after one
 * line (the gate stays off). */
int slots_init_host(uint32_t limit, const char *key, uint32_t conns) SLUICE_INTERNAL;
bool slots_host(void) SLUICE_INTERNAL;
/* Sleeps as one of the budget's sleepers while it is full (bounded: 50 ms at
 * most, checking who is alive on the way). 0: a slot may be free. */
int slots_host_sleep(uint64_t deadline_ns) SLUICE_INTERNAL;
/* Whether a blocking accept or read of this process waits for a slot. */
bool slots_blocking_waiters(void) SLUICE_INTERNAL;
/* A process woken for a slot it left unused wakes the next sleeper. */
void slots_host_pass_on(void) SLUICE_INTERNAL;
/* sluice's thread's periodic checks; while slots this process left watched
 * remain, how soon to look again (ms; 0: no hurry). */
int slots_host_tick(uint64_t now) SLUICE_INTERNAL;
/* The slots in use across the budget (stats). */
uint32_t slots_host_in_use(void) SLUICE_INTERNAL;
/* Host scope: copies the budget's in-flight and limit into the statistics
 * (they are the same in every member's). */
void slots_sync_stats(void) SLUICE_INTERNAL;
/* soon runs when this process leaves a forked connection to be watched. */
void slots_hook_watched(void (*soon)(void)) SLUICE_INTERNAL;
/* Before fork: connections held here are marked as crossing it. */
void slots_atfork_prepare(void) SLUICE_INTERNAL;

#endif
