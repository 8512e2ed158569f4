/* real.c — binds the real functions once, and owns the library's start-up:
 * the first wrapped call (or the constructor, whichever comes first) runs
 * sluice_init under pthread_once. A call that arrives while this thread is
 * still binding (a dependency's malloc calling syscall(), say) binds just the
 * symbol it needs instead of waiting on itself. */
#include "real.h"

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conn.h"
#include "drain.h"
#include "fdtab.h"
#include "fsgate.h"
#include "gate.h"
#include "log.h"
#include "overlay.h"
#include "stats.h"
#include "threads.h"

#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) \
    ret (*real_##name)(TBL_PARAMS(n, list));
#define SLUICE_SYMV(cls, ret, name, subj, aux, n, list) \
    ret (*real_##name)(TBL_PARAMS(n, list), ...);
#include "symbols.def"
#undef SLUICE_SYM
#undef SLUICE_SYMV

_Atomic unsigned sluice_gates;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static __thread int binding_here;

/* The address range of libsluice.so itself, to refuse our own hooks: with the
 * library loaded twice, or found through RTLD_DEFAULT, dlsym can answer with
 * the wrapper rather than the function behind it. (A range, found once: dladdr
 * per symbol would cost ~80,000 instructions each.) */
static uintptr_t own_start, own_end;

static int find_own_range(struct dl_phdr_info *info, size_t size, void *base)
{
    (void) size;
    if ((void *) info->dlpi_addr != base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (own_start == 0 || lo < own_start)
            own_start = lo;
        if (hi > own_end)
            own_end = hi;
    }
    return 1;
}

static int is_own(void *fn)
{
    return fn != NULL && (uintptr_t) fn >= own_start && (uintptr_t) fn < own_end;
}

static void *lookup(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (is_own(fn))
        fn = NULL;
    if (fn == NULL) {
        /* Not behind us in the search order (we were dlopen'ed, say): ask libc. */
        void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        if (libc != NULL) {
            fn = dlsym(libc, name);
            dlclose(libc);
            if (is_own(fn))
                fn = NULL;
        }
    }
    return fn;
}

static void bind_all(void)
{
    Dl_info info;
    if (dladdr((void *) &bind_all, &info) != 0)
        dl_iterate_phdr(find_own_range, info.dli_fbase);
#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) \
    if (real_##name == NULL) \
        real_##name = (__typeof__(real_##name)) lookup(#name);
#define SLUICE_SYMV SLUICE_SYM
#include "symbols.def"
#undef SLUICE_SYM
#undef SLUICE_SYMV
}

static void atfork_child(void)
{
    fdtab_atfork_child();
    conn_atfork_child();
    fsgate_atfork_child();
    overlay_atfork_child();
    threads_atfork_child();
    stats_atfork_child();
}

static void init_everything(void)
{
    int saved = errno;
    binding_here = 1;
    bind_all();
    config_load();
    unsigned gates = 0;
    if (sluice_cfg.conn_max != 0 || sluice_cfg.backlog != 0)
        gates |= GATE_CONN;
    if (sluice_cfg.write_high != 0 || sluice_cfg.hold_reads || sluice_cfg.write_timeout_ns != 0)
        gates |= GATE_DRAIN;
    if (sluice_cfg.fs_max != 0)
        gates |= GATE_FS;
    if (gates != 0) {
        overlay_init();
        if (gates & GATE_CONN)
            conn_init();
        if (gates & GATE_DRAIN)
            drain_init();
        if (gates & GATE_FS)
            fsgate_init();
    }
    STAT_SET(conn_limit, sluice_cfg.conn_max);
    STAT_SET(fs_limit, sluice_cfg.fs_max);
    pthread_atfork(NULL, NULL, atfork_child);
    atomic_store_explicit(&sluice_gates, gates, memory_order_release);
    binding_here = 0;
    errno = saved;
}

void sluice_init(void)
{
    if (binding_here)
        return;
    pthread_once(&init_once, init_everything);
}

void *real_bind_slow(void **slot, const char *name)
{
    if (!binding_here)
        sluice_init();
    if (*slot == NULL) {
        /* Reached from inside our own start-up on this thread: bind just this one. */
        int saved = errno;
        void *fn = lookup(name);
        *slot = fn;
        errno = saved;
    }
    if (*slot == NULL) {
        log_error("no real %s to call", name);
        abort();
    }
    return *slot;
}

__attribute__((constructor)) static void sluice_constructor(void)
{
    sluice_init();
    stats_start();
}

__attribute__((destructor)) static void sluice_destructor(void)
{
    stats_write_final();
}
