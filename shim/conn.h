/* conn.h — the connection gate: at most SLUICE_CONN_MAX accepted connections in
 * flight; at the limit, pause (listeners hidden, blocking accept waits) or shed
 * (sluice answers and closes). Slots belong to open file descriptions: dup shares,
 * the last close frees. */
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
/* A descriptor holding slot id+1 (from fdtab) is gone: drop one reference. */
void conn_release(uint32_t id_plus_one) SLUICE_INTERNAL;
/* Another descriptor now refers to slot id+1 (dup). */
void conn_addref(uint32_t id_plus_one) SLUICE_INTERNAL;
/* Whether listener fd is governed (SLUICE_CONN_PORTS). */
bool conn_governs(int fd) SLUICE_INTERNAL;
/* Idle-free accounting (SLUICE_CONN_IDLE=free): input taken / waiting for input. */
int conn_before_read(int fd, int msgflags) SLUICE_INTERNAL;
void conn_after_read(int fd, long result) SLUICE_INTERNAL;
void conn_atfork_child(void) SLUICE_INTERNAL;

#endif
