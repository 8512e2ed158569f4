/* drain.h — drain-before-write: at most about SLUICE_WRITE_HIGH unsent bytes per
 * stream socket (TCP_NOTSENT_LOWAT and SO_SNDBUF first, SIOCOUTQNSD where the
 * kernel needs help), SLUICE_WRITE_TIMEOUT through SO_SNDTIMEO, and with
 * SLUICE_HOLD_READS no input from a socket whose output has not drained. */
#ifndef SLUICE_DRAIN_H
#define SLUICE_DRAIN_H

#include <stdint.h>
#include "common.h"
#include "fdtab.h"

/* Bits of fdent.gate this gate owns (bits 0-3 are the connection gate's).
 * The top 24 bits hold an upper bound of the socket's unsent bytes: the last
 * count the kernel gave plus everything written since, so that the kernel is
 * asked only once that bound could have reached the mark. */
#define DRAIN_ADOPTED   0x10u  /* options set on this socket (lowat, sndbuf, timeout) */
#define DRAIN_TCP       0x20u  /* TCP with a mark: SIOCOUTQNSD counts its unsent bytes */
#define DRAIN_OVER      0x40u  /* seen not writable (not yet drained under the mark) */
#define DRAIN_HIDING    0x80u  /* its input is hidden from readiness calls until drained */
#define DRAIN_UB_SHIFT  8
#define DRAIN_UB_MAX    0xFFFFFFu  /* saturated: unknown, ask the kernel */

void drain_init(void) SLUICE_INTERNAL;
/* A stream socket sluice has just seen accepted (nothing unsent yet). */
void drain_adopt(int fd) SLUICE_INTERNAL;
/* Before/after an output call on a stream socket; e is fd's entry (the one
 * look-up of the call, gate.c's). */
int drain_before_write(int fd, struct fdent *e, int msgflags) SLUICE_INTERNAL;
void drain_after_write(int fd, struct fdent *e, long result) SLUICE_INTERNAL;
/* Before an input call on a stream socket (held reads). */
int drain_before_read(int fd, struct fdent *e, int msgflags) SLUICE_INTERNAL;
/* The overlay saw fd become writable. */
void drain_on_writable(int fd) SLUICE_INTERNAL;
/* fdtab cleared an entry whose gate word was `gate`: settle the gauges. */
void drain_forgotten(uint32_t gate) SLUICE_INTERNAL;

#endif
