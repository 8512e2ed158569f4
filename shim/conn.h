/* conn.h — the connection gate: at most SLUICE_CONN_MAX accepted connections
 * busy at once; at the limit, pause (listeners hidden, blocking accept waits) or
 * shed (sluice answers and closes). Built on the slot pool (slots.h), the
 * pause (pause.h), idle=free (idle.h) and shedding (shed.h). */
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
/* Whether listener fd is governed (SLUICE_CONN_PORTS). */
bool conn_governs(int fd) SLUICE_INTERNAL;
/* Before fork (host scope): held connections are marked as crossing it. */
void conn_atfork_prepare(void) SLUICE_INTERNAL;
void conn_atfork_child(void) SLUICE_INTERNAL;

#endif
