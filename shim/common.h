/* common.h — small helpers every room of the shim uses: branch hints, errno
 * preservation, visibility. Nothing here allocates or locks. */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <errno.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Symbols shared between rooms but never exported from libsluice.so. */
#define SLUICE_INTERNAL __attribute__((visibility("hidden")))
/* Symbols a program may find with dlsym (the public header). */
#define SLUICE_PUBLIC __attribute__((visibility("default")))

/* Run a statement without letting it change errno: the program must see the
 * errno of its own call, never one left by sluice's bookkeeping. */
#define KEEP_ERRNO(stmt) do { int saved_errno_ = errno; stmt; errno = saved_errno_; } while (0)

#endif
