/* overlay.h — the readiness overlay every gate shares. A gate says "hide EPOLLIN
 * (or EPOLLOUT) on fd" and "unhide"; the program's own epoll/poll/select calls
 * then agree, and a waiting loop is woken when something is unhidden or when a
 * socket sluice watches becomes writable. Implemented in overlay.c (epoll
 * bookkeeping, hide/unhide) and wrap_poll.c (the wrappers). */
#ifndef SLUICE_OVERLAY_H
#define SLUICE_OVERLAY_H

#include <stdint.h>
#include "common.h"

void overlay_init(void) SLUICE_INTERNAL;
/* Hide events (EPOLLIN, EPOLLOUT) of fd from the program's readiness calls. */
void overlay_hide(int fd, uint32_t events) SLUICE_INTERNAL;
/* Show them again, waking any wait in which fd is ready. */
void overlay_unhide(int fd, uint32_t events) SLUICE_INTERNAL;
/* Ask the kernel to wake the overlay when fd becomes writable (a drain); the
 * gate is then called back through drain_on_writable(fd). */
void overlay_watch_writable(int fd) SLUICE_INTERNAL;
void overlay_unwatch(int fd) SLUICE_INTERNAL;
/* Wake every poll/select that waits with something hidden, to look again. */
void overlay_poke(void) SLUICE_INTERNAL;
/* fd is about to be closed (or replaced): forget its registrations. */
void overlay_forget(int fd) SLUICE_INTERNAL;
void overlay_atfork_child(void) SLUICE_INTERNAL;

#endif
