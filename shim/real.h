/* real.h — pointers to the real functions behind every wrapper, bound from
 * symbols.def with dlsym(RTLD_NEXT). REAL(name) is one load and a predicted
 * branch. In the rooms, an unbound function is bound alone, and nothing else
 * happens; in the wrappers (files that define SLUICE_WRAPPER_ROOM first), the
 * first call also starts the library (init.c), even one made before sluice's
 * constructor, from another library's. */
#ifndef SLUICE_REAL_H
#define SLUICE_REAL_H

#define _GNU_SOURCE 1
#include "wrapped.h"
#include "table.h"
#include "common.h"

#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) \
    extern ret (*real_##name)(TBL_PARAMS(n, list)) SLUICE_INTERNAL;
#define SLUICE_SYMV(cls, ret, name, subj, aux, n, list) \
    extern ret (*real_##name)(TBL_PARAMS(n, list), ...) SLUICE_INTERNAL;
#include "symbols.def"
#undef SLUICE_SYM
#undef SLUICE_SYMV

/* Binds slot (the real_ pointer for name) if it is still empty and returns it;
 * aborts, saying so, if there is no such function behind sluice. */
void *real_bind_slow(void **slot, const char *name) SLUICE_INTERNAL;
/* Binds every function of symbols.def not bound yet (start-up). */
void real_bind_all(void) SLUICE_INTERNAL;

#ifdef SLUICE_WRAPPER_ROOM
/* init.c: starts the library (once), then binds slot. */
void *init_bind_slow(void **slot, const char *name) SLUICE_INTERNAL;
#define REAL_BIND_SLOW init_bind_slow
#else
#define REAL_BIND_SLOW real_bind_slow
#endif

#define REAL(name) \
    (likely(real_##name != NULL) ? real_##name \
        : (__typeof__(real_##name)) REAL_BIND_SLOW((void **) &real_##name, #name))

/* The gates-off path of a wrapper: when no gate is on and the real function is
 * bound, call it and return. Anything else falls through to the caller's slow path. */
#define FAST_PATH(name, ...) \
    do { \
        __typeof__(real_##name) fast_fn_ = real_##name; \
        if (likely((gates_on() == 0) & (fast_fn_ != NULL))) \
            return fast_fn_(__VA_ARGS__); \
    } while (0)

#endif
