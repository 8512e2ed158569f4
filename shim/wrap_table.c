/* wrap_table.c — the wrappers symbols.def can write by itself: input, output
 * and syncs on a descriptor, stdio on a stream, and calls that return a new
 * descriptor. Each is: gates off? forward. Else ask the gate, forward, tell it. */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include "fdtab.h"
#include "gate.h"

#define WRAP_IN(ret, name, subj, aux, n, list) WRAP_FD(ret, name, subj, aux, n, list, IO_IN)
#define WRAP_OUT(ret, name, subj, aux, n, list) WRAP_FD(ret, name, subj, aux, n, list, IO_OUT)
#define WRAP_SYNC(ret, name, subj, aux, n, list) WRAP_FD(ret, name, subj, aux, n, list, IO_SYNC)
#define WRAP_SIN(ret, name, subj, aux, n, list) WRAP_STREAM(ret, name, subj, aux, n, list, IO_IN)
#define WRAP_SOUT(ret, name, subj, aux, n, list) WRAP_STREAM(ret, name, subj, aux, n, list, IO_OUT)
#define WRAP_CUSTOM(ret, name, subj, aux, n, list)

/* The gated path (and the first call, which binds) lives out of line, so that
 * the gates-off path is two loads, a test and a tail jump to the real function,
 * with no registers saved. */
#define WRAP_FD(ret, name, subj, aux, n, list, dir) \
    static __attribute__((noinline)) ret gated_##name(TBL_PARAMS(n, list)) \
    { \
        if (gates_on() == 0) \
            return REAL(name)(TBL_ARGS(n, list)); \
        struct pass p; \
        if (gate_enter_fd(&p, subj, dir, aux) < 0) \
            return -1; \
        ret r = REAL(name)(TBL_ARGS(n, list)); \
        gate_leave(&p, (long) r); \
        return r; \
    } \
    SLUICE_PUBLIC ret name(TBL_PARAMS(n, list)) \
    { \
        FAST_PATH(name, TBL_ARGS(n, list)); \
        return gated_##name(TBL_ARGS(n, list)); \
    }

/* stdio_call_NAME(args): what the call asks of the stream (stdio_kernel.h);
 * the indirection expands the argument list before the macro sees it. */
#define STDIO_CALL(name, ...) STDIO_CALL_(stdio_call_##name, __VA_ARGS__)
#define STDIO_CALL_(describe, ...) describe(__VA_ARGS__)

#define WRAP_STREAM(ret, name, subj, aux, n, list, dir) \
    static __attribute__((noinline)) ret gated_##name(TBL_PARAMS(n, list)) \
    { \
        if (gates_on() == 0) \
            return REAL(name)(TBL_ARGS(n, list)); \
        struct pass p; \
        struct stdio_call call_ = STDIO_CALL(name, TBL_ARGS(n, list)); \
        if (gate_enter_stream(&p, subj, dir, &call_) < 0) \
            return aux; \
        ret r = REAL(name)(TBL_ARGS(n, list)); \
        gate_leave(&p, (long) r); \
        return r; \
    } \
    SLUICE_PUBLIC ret name(TBL_PARAMS(n, list)) \
    { \
        FAST_PATH(name, TBL_ARGS(n, list)); \
        return gated_##name(TBL_ARGS(n, list)); \
    }

#define WRAP_NEWFD(ret, name, subj, aux, n, list) \
    SLUICE_PUBLIC ret name(TBL_PARAMS(n, list)) \
    { \
        ret r = REAL(name)(TBL_ARGS(n, list)); \
        if (r >= 0 && gates_on() != 0) \
            KEEP_ERRNO(fdtab_reborn(r)); \
        return r; \
    }

#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) WRAP_##cls(ret, name, subj, aux, n, list)
#define SLUICE_SYMV SLUICE_SYM
#include "symbols.def"
