/* fdtab.c — the per-descriptor table (see fdtab.h). Two levels: a fixed array
 * of chunk pointers, chunks mmap'ed on first use and never freed or moved, so
 * lookups are two loads, lock-free, usable from signal handlers. */
#include "fdtab.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "config.h"
#include "real.h"

#define CHUNK_SHIFT FDTAB_CHUNK_SHIFT
#define CHUNK_SIZE (1 << CHUNK_SHIFT)
#define MAX_CHUNKS FDTAB_MAX_CHUNKS  /* 4M descriptors */

struct fdent *_Atomic fdtab_chunks[FDTAB_MAX_CHUNKS];
#define chunks fdtab_chunks
static _Atomic int chunks_used;      /* highest chunk index allocated + 1 */

/* What the gates above asked to be told (fdtab.h); each is set once, at the
 * owner's start-up, before any gate is on. */
static struct {
    bool (*_Atomic governs)(int fd);
    void (*_Atomic released)(uint32_t conn);
    void (*_Atomic duped)(uint32_t conn);
    void (*_Atomic accepted)(int fd);
    void (*_Atomic gate_forgotten)(uint32_t gate);
    void (*_Atomic watch_forgotten)(int fd);
} hooks;

#define HOOK(name) atomic_load_explicit(&hooks.name, memory_order_acquire)

void fdtab_hook_conn(bool (*governs)(int fd), void (*released)(uint32_t conn),
                     void (*duped)(uint32_t conn))
{
    atomic_store_explicit(&hooks.governs, governs, memory_order_release);
    atomic_store_explicit(&hooks.released, released, memory_order_release);
    atomic_store_explicit(&hooks.duped, duped, memory_order_release);
}

void fdtab_hook_drain(void (*accepted)(int fd), void (*forgotten)(uint32_t gate))
{
    atomic_store_explicit(&hooks.accepted, accepted, memory_order_release);
    atomic_store_explicit(&hooks.gate_forgotten, forgotten, memory_order_release);
}

void fdtab_hook_overlay(void (*forgotten)(int fd))
{
    atomic_store_explicit(&hooks.watch_forgotten, forgotten, memory_order_release);
}

void fdtab_release(uint32_t held)
{
    void (*fn)(uint32_t) = HOOK(released);
    if (held != 0 && fn != NULL)
        KEEP_ERRNO(fn(held));
}

struct fdent *fdtab_peek(int fd)
{
    if (unlikely(fd < 0))
        return NULL;
    unsigned c = (unsigned) fd >> CHUNK_SHIFT;
    if (unlikely(c >= MAX_CHUNKS))
        return NULL;
    struct fdent *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
    return chunk != NULL ? &chunk[fd & (CHUNK_SIZE - 1)] : NULL;
}

struct fdent *fdtab_get(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (likely(e != NULL) || fd < 0)
        return e;
    unsigned c = (unsigned) fd >> CHUNK_SHIFT;
    if (c >= MAX_CHUNKS)
        return NULL;
    int saved = errno;
    struct fdent *fresh = mmap(NULL, sizeof(struct fdent) * CHUNK_SIZE, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED) {
        errno = saved;
        return NULL;
    }
    struct fdent *expected = NULL;
    if (!atomic_compare_exchange_strong(&chunks[c], &expected, fresh)) {
        munmap(fresh, sizeof(struct fdent) * CHUNK_SIZE);
        fresh = expected;
    }
    int used = atomic_load(&chunks_used);
    while ((int) c + 1 > used && !atomic_compare_exchange_weak(&chunks_used, &used, (int) c + 1))
        ;
    errno = saved;
    return &fresh[fd & (CHUNK_SIZE - 1)];
}

int fdtab_extent(void)
{
    return atomic_load_explicit(&chunks_used, memory_order_acquire) << CHUNK_SHIFT;
}

static enum fd_kind classify(int fd, struct fdent *e)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return FD_UNKNOWN;
    atomic_store_explicit(&e->ino, (uint64_t) st.st_ino, memory_order_relaxed);
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
        return FD_FILE;
    if (!S_ISSOCK(st.st_mode))
        return FD_OTHER;
    int type = 0, domain = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
        return FD_OTHER;
    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0
        && (domain == AF_INET || domain == AF_INET6))
        atomic_fetch_or_explicit(&e->flags, FDF_TCP, memory_order_relaxed);
    len = sizeof listening;
    /* A listener the program did not make itself (inherited, socket-activated)
     * is known by asking the socket, not by having seen listen(). */
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
        bool (*governs)(int) = HOOK(governs);
        if ((gates_on() & GATE_CONN) && governs != NULL && governs(fd))
            atomic_fetch_or_explicit(&e->flags, FDF_GOVERNED, memory_order_relaxed);
        return FD_LISTENER;
    }
    return FD_STREAM;
}

enum fd_kind fdtab_kind(int fd)
{
    struct fdent *e = fdtab_get(fd);
    if (unlikely(e == NULL))
        return FD_UNKNOWN;
    uint8_t k = atomic_load_explicit(&e->kind, memory_order_acquire);
    if (likely(k != FD_UNKNOWN))
        return (enum fd_kind) k;
    int saved = errno;
    uint8_t found = (uint8_t) classify(fd, e);
    errno = saved;
    if (found == FD_UNKNOWN)
        return FD_UNKNOWN;
    uint8_t expected = FD_UNKNOWN;
    /* Another thread may have recorded it meanwhile (accept): its word wins. */
    if (!atomic_compare_exchange_strong(&e->kind, &expected, found))
        return (enum fd_kind) expected;
    return (enum fd_kind) found;
}

/* Clears an entry; returns the slot it held (id + 1) for the caller to release. */
static uint32_t clear(int fd, struct fdent *e)
{
    uint32_t held = atomic_exchange(&e->conn, 0);
    atomic_store(&e->kind, FD_UNKNOWN);
    atomic_store(&e->flags, 0);
    uint32_t gate = atomic_exchange(&e->gate, 0);
    void (*gate_forgotten)(uint32_t) = HOOK(gate_forgotten);
    if (gate != 0 && gate_forgotten != NULL)
        gate_forgotten(gate);
    atomic_store(&e->ino, 0);
    /* The overlay clears what is hidden itself: it keeps count of hidden fds. */
    void (*watch_forgotten)(int) = HOOK(watch_forgotten);
    if ((atomic_load(&e->hidden) != 0 || atomic_load(&e->regs[0].epfd_plus_one) != 0
         || atomic_load(&e->regs[1].epfd_plus_one) != 0) && watch_forgotten != NULL)
        watch_forgotten(fd);
    return held;
}

uint32_t fdtab_forget(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (e == NULL)
        return 0;
    int saved = errno;
    uint32_t held = clear(fd, e);
    errno = saved;
    return held;
}

void fdtab_reborn(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (e == NULL)
        return;
    int saved = errno;
    uint32_t held = clear(fd, e);
    /* The close that ended the old descriptor went by unseen (a raw system
     * call, io_uring): its slot must not stay taken forever. */
    fdtab_release(held);
    errno = saved;
}

void fdtab_restore(int fd, uint32_t held)
{
    struct fdent *e = fdtab_get(fd);
    if (e == NULL) {
        fdtab_release(held);
        return;
    }
    atomic_store(&e->kind, FD_CONN);
    atomic_store(&e->conn, held);
}

void fdtab_accepted(int fd, int accept_flags)
{
    int saved = errno;
    fdtab_reborn(fd);
    struct fdent *e = fdtab_get(fd);
    if (e != NULL) {
        atomic_store(&e->kind, FD_CONN);
        fdtab_set_nonblock(fd, (accept_flags & SOCK_NONBLOCK) != 0);
    }
    void (*accepted)(int) = HOOK(accepted);
    if (accepted != NULL)
        accepted(fd);
    errno = saved;
}

void fdtab_set_nonblock(int fd, bool on)
{
    struct fdent *e = fdtab_get(fd);
    if (e == NULL)
        return;
    if (on)
        atomic_fetch_or(&e->flags, FDF_NONBLOCK | FDF_NONBLOCK_KNOWN);
    else {
        atomic_fetch_and(&e->flags, (uint8_t) ~FDF_NONBLOCK);
        atomic_fetch_or(&e->flags, FDF_NONBLOCK_KNOWN);
    }
}

void fdtab_dup(int oldfd, int newfd)
{
    fdtab_reborn(newfd);
    struct fdent *from = fdtab_peek(oldfd);
    if (from == NULL)
        return;
    struct fdent *to = fdtab_get(newfd);
    if (to == NULL)
        return;
    uint32_t conn = atomic_load(&from->conn);
    void (*duped)(uint32_t) = HOOK(duped);
    if (conn != 0 && duped != NULL) {
        duped(conn);
        atomic_store(&to->conn, conn);
    }
    /* Flags such as O_NONBLOCK belong to the open file description: shared. */
    atomic_store(&to->flags, atomic_load(&from->flags));
    atomic_store(&to->ino, atomic_load(&from->ino));
    atomic_store(&to->kind, atomic_load(&from->kind));
}

void fdtab_own(int fd)
{
    struct fdent *e = fdtab_get(fd);
    if (e != NULL) {
        atomic_store(&e->kind, FD_OTHER);
        atomic_fetch_or(&e->flags, FDF_OWN);
    }
}

bool fdtab_is_own(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    return e != NULL && (atomic_load_explicit(&e->flags, memory_order_relaxed) & FDF_OWN) != 0;
}

void fdtab_close_own(int fd)
{
    struct fdent *e = fdtab_peek(fd);
    if (e != NULL)
        atomic_fetch_and(&e->flags, (uint8_t) ~FDF_OWN);
    KEEP_ERRNO(REAL(close)(fd));
}

void fdtab_atfork_child(void)
{
    int used = atomic_load(&chunks_used);
    for (int c = 0; c < used; c++) {
        struct fdent *chunk = atomic_load(&chunks[c]);
        if (chunk == NULL)
            continue;
        for (int i = 0; i < CHUNK_SIZE; i++)
            atomic_store(&chunk[i].conn, 0);
    }
}
