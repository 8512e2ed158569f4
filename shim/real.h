/* real.h — pointers to the real functions behind every wrapper, bound once from
 * symbols.def with dlsym(RTLD_NEXT). REAL(name) is one load and a predicted
 * branch; the first call (even one made before sluice's constructor, from
 * another library's) binds everything under pthread_once. */
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

/* Binds slot (the real_ pointer for name) if it is still empty and returns it. */
void *real_bind_slow(void **slot, const char *name) SLUICE_INTERNAL;

#define REAL(name) \
    (likely(real_##name != NULL) ? real_##name \
        : (__typeof__(real_##name)) real_bind_slow((void **) &real_##name, #name))

/* The gates-off path of a wrapper: when no gate is on and the real function is
 * bound, call it and return. Anything else falls through to the caller's slow path. */
#define FAST_PATH(name, ...) \
    do { \
        __typeof__(real_##name) fast_fn_ = real_##name; \
        if (likely((gates_on() == 0) & (fast_fn_ != NULL))) \
            return fast_fn_(__VA_ARGS__); \
    } while (0)

/* Everything done once per process, before the first gated call: binding,
 * settings, gate set-up. Safe to call from any wrapper, any number of times. */
void sluice_init(void) SLUICE_INTERNAL;

#endif
