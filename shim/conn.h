/* conn.h — the connection gate: at most SLUICE_CONN_MAX accepted connections
 * busy at once; at the limit, pause (listeners hidden, blocking accept waits) or
 * shed (sluice answers and closes). A connection object belongs to an open file
 * description (dup shares, the last close frees it); it holds one of the
 * SLUICE_CONN_MAX busy slots from accept to its last close (idle=hold), or only
 * while busy (idle=free, idle.c). */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "common.h"

void conn_init(void) SLUICE_INTERNAL;
/* accept/accept4 when the gate is on. */
int conn_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4) SLUICE_INTERNAL;
/* listen when the gate is on: clamps the backlog, marks the listener. */
int conn_listen(int fd, int backlog) SLUICE_INTERNAL;
/* A descriptor of connection id+1 (from fdtab) is gone: drop one reference. */
void conn_release(uint32_t id_plus_one) SLUICE_INTERNAL;
/* Another descriptor now refers to connection id+1 (dup). */
void conn_addref(uint32_t id_plus_one) SLUICE_INTERNAL;
/* Whether listener fd is governed (SLUICE_CONN_PORTS). */
bool conn_governs(int fd) SLUICE_INTERNAL;

/* --- between conn.c and idle.c -------------------------------------------- */

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

extern struct conn *conn_objs SLUICE_INTERNAL;
extern uint32_t conn_cap SLUICE_INTERNAL;            /* objects in conn_objs */
extern _Atomic uint32_t *conn_busy_slot SLUICE_INTERNAL; /* per slot: connection id + 1 */
extern uint32_t conn_nslots SLUICE_INTERNAL;         /* SLUICE_CONN_MAX */

/* Takes a free busy slot for connection cid (-1 if none); the caller then
 * either publishes it in the connection's st and calls conn_slot_held(), or
 * gives it back with conn_slot_untake(). */
int64_t conn_slot_take(uint32_t cid) SLUICE_INTERNAL;
void conn_slot_untake(uint32_t slot) SLUICE_INTERNAL;
void conn_slot_held(void) SLUICE_INTERNAL;
/* A connection left busy slot `slot` (idle or closed): frees it, serves
 * waiting idle connections first, then unpauses. */
void conn_slot_release(uint32_t slot) SLUICE_INTERNAL;
/* Waits for a free slot as a blocking call on fd would wait (SO_RCVTIMEO,
 * signals as the kernel decides). 0, or -1 with errno. */
int conn_wait_for_slot(int fd) SLUICE_INTERNAL;
void conn_atfork_child(void) SLUICE_INTERNAL;

#endif
