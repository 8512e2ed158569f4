/* drain.c — drain-before-write and held reads (see drain.h). Stub: forwards. */
#include "drain.h"

void drain_init(void) {}
void drain_adopt(int fd) { (void) fd; }
int drain_before_write(int fd, int msgflags) { (void) fd; (void) msgflags; return 0; }
void drain_after_write(int fd, long result) { (void) fd; (void) result; }
int drain_before_read(int fd, int msgflags) { (void) fd; (void) msgflags; return 0; }
void drain_on_writable(int fd) { (void) fd; }
