/* overlay.c — hide/unhide bookkeeping for the readiness overlay (see overlay.h).
 * Stub: the connection gate's work fills it in. */
#include "overlay.h"

void overlay_init(void) {}
void overlay_hide(int fd, uint32_t events) { (void) fd; (void) events; }
void overlay_unhide(int fd, uint32_t events) { (void) fd; (void) events; }
void overlay_watch_writable(int fd) { (void) fd; }
void overlay_unwatch(int fd) { (void) fd; }
void overlay_poke(void) {}
void overlay_forget(int fd) { (void) fd; }
void overlay_atfork_child(void) {}
