/* drain.h — drain-before-write: at most about SLUICE_WRITE_HIGH unsent bytes per
 * stream socket (TCP_NOTSENT_LOWAT first, SIOCOUTQNSD where the kernel needs
 * help), and with SLUICE_HOLD_READS no input from a socket whose output has not
 * drained. */
#ifndef SLUICE_DRAIN_H
#define SLUICE_DRAIN_H

#include "common.h"

void drain_init(void) SLUICE_INTERNAL;
/* A stream socket sluice has just seen (accepted, connected, first use). */
void drain_adopt(int fd) SLUICE_INTERNAL;
/* Before/after an output call on a stream socket. */
int drain_before_write(int fd, int msgflags) SLUICE_INTERNAL;
void drain_after_write(int fd, long result) SLUICE_INTERNAL;
/* Before an input call on a stream socket (held reads). */
int drain_before_read(int fd, int msgflags) SLUICE_INTERNAL;
/* The overlay saw fd become writable. */
void drain_on_writable(int fd) SLUICE_INTERNAL;

#endif
