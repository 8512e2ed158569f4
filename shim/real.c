/* real.c — binds the real functions behind the wrappers, and nothing else:
 * binding a function never starts the library (init.c does, on the wrappers'
 * first call). start-up binds them all at once; a function needed before that
 * (by start-up itself: a dependency's malloc calling syscall(), say) is bound
 * alone, on demand. */
#include "real.h"

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <unistd.h>

#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) \
    ret (*real_##name)(TBL_PARAMS(n, list));
#define SLUICE_SYMV(cls, ret, name, subj, aux, n, list) \
    ret (*real_##name)(TBL_PARAMS(n, list), ...);
#include "symbols.def"
#undef SLUICE_SYM
#undef SLUICE_SYMV

/* The address range of libsluice.so itself, to refuse our own hooks: with the
 * library loaded twice, or found through RTLD_DEFAULT, dlsym can answer with
 * the wrapper rather than the function behind it. (A range, found once: dladdr
 * per symbol would cost ~80,000 instructions each.) */
static uintptr_t own_start, own_end;
static _Atomic int own_known;

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

static void find_own_range_once(void)
{
    if (atomic_load_explicit(&own_known, memory_order_acquire))
        return;
    /* Two threads may both look: they find the same range. */
    Dl_info info;
    if (dladdr((void *) &find_own_range_once, &info) != 0)
        dl_iterate_phdr(find_own_range, info.dli_fbase);
    atomic_store_explicit(&own_known, 1, memory_order_release);
}

static int is_own(void *fn)
{
    return fn != NULL && (uintptr_t) fn >= own_start && (uintptr_t) fn < own_end;
}

static void *lookup(const char *name)
{
    find_own_range_once();
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

void real_bind_all(void)
{
    int saved = errno;
#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) \
    if (real_##name == NULL) \
        real_##name = (__typeof__(real_##name)) lookup(#name);
#define SLUICE_SYMV SLUICE_SYM
#include "symbols.def"
#undef SLUICE_SYM
#undef SLUICE_SYMV
    errno = saved;
}

void *real_bind_slow(void **slot, const char *name)
{
    if (*slot == NULL) {
        int saved = errno;
        void *fn = lookup(name);
        *slot = fn;
        errno = saved;
    }
    if (*slot == NULL) {
        /* The log (log.c) writes through REAL(write): this line may not. glibc's
         * dprintf writes by its own internal call, which no wrapper sees. */
        dprintf(STDERR_FILENO, "sluice[%d]: no real %s to call\n", (int) getpid(), name);
        abort();
    }
    return *slot;
}
