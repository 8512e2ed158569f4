/* ticket.h — fair turns for threads that wait in a blocking accept for a busy
 * slot: each takes a ticket, and a freed slot goes to the oldest ticket. */
#ifndef SLUICE_TICKET_H
#define SLUICE_TICKET_H

#include <stdbool.h>
#include <stdint.h>
#include "common.h"

/* A busy slot reserved (slots_reserve) for a blocking accept on listener fd,
 * in ticket order: waits as slots_wait does (SO_RCVTIMEO, signals, a
 * cancellation point). The slot id, or -1 with errno (EINTR, EAGAIN). */
int64_t ticket_reserve(int fd) SLUICE_INTERNAL;
/* Nobody waits in line now (a blocking accept may reserve straight away). */
bool ticket_line_empty(void) SLUICE_INTERNAL;
void ticket_atfork_child(void) SLUICE_INTERNAL;

#endif
