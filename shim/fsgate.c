/* fsgate.c — the filesystem I/O semaphore (see fsgate.h). Stub: no tokens. */
#include "fsgate.h"

void fsgate_init(void) {}
int fsgate_acquire(void) { return 0; }
void fsgate_release(void) {}
void fsgate_atfork_child(void) {}
