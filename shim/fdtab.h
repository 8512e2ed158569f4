/* fdtab.h — what sluice knows about each descriptor number: its kind (filled
 * lazily, one fstat/getsockopt the first time a gate asks), its connection slot,
 * what the overlay hides, and where epoll watches it. Entries are read and
 * written without locks; the table grows in chunks (never moved, never past
 * RLIMIT_NOFILE's hard limit) so a pointer to an entry stays valid. */
#ifndef SLUICE_FDTAB_H
#define SLUICE_FDTAB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"

enum fd_kind {
    FD_UNKNOWN = 0,  /* not looked at yet (or forgotten: the number was reused) */
    FD_FILE,         /* regular file or block device: filesystem I/O */
    FD_LISTENER,     /* stream socket in the listening state */
    FD_CONN,         /* connection returned by accept/accept4 in this process */
    FD_STREAM,       /* any other stream socket (connected, socketpair, unix) */
    FD_OTHER,        /* pipes, FIFOs, ttys, character devices, datagrams, epoll... */
};

/* Flags kept beside the kind (bits of fdent.flags). */
#define FDF_GOVERNED  0x01u  /* listener the connection gate governs (ports filter) */
#define FDF_TCP       0x02u  /* TCP (v4 or v6) rather than a UNIX socket */
#define FDF_NONBLOCK  0x04u  /* O_NONBLOCK as last seen through accept4/fcntl */
#define FDF_NONBLOCK_KNOWN 0x08u
#define FDF_EP_OVERLAY 0x10u  /* epoll instance with sluice's internal one nested in it */
#define FDF_OWN       0x20u  /* sluice's own descriptor: the program's closes pass it by */

/* Up to this many epoll instances per descriptor are remembered for the overlay;
 * a descriptor watched by more is hidden by filtering results instead. */
#define FD_EPOLL_REGS 2

struct ep_reg {
    _Atomic int epfd_plus_one;   /* 0: free (a fresh chunk is all zeroes) */
    _Atomic uint32_t events;     /* as the program registered them */
    _Atomic uint64_t data;
};

struct fdent {
    _Atomic uint8_t kind;        /* enum fd_kind */
    _Atomic uint8_t flags;       /* FDF_* */
    _Atomic uint8_t ep_lock;     /* guards regs[] against concurrent epoll_ctl */
    _Atomic uint32_t conn;       /* connection gate: slot id + 1, 0 = none */
    _Atomic uint32_t hidden;     /* overlay: EPOLLIN/EPOLLOUT bits hidden now */
    _Atomic uint32_t gate;       /* drain / idle state bits, owned by those gates */
    _Atomic uint64_t ino;        /* inode when classified: detects reuse we missed */
    struct ep_reg regs[FD_EPOLL_REGS];
};

/* The table's chunks (fdtab.c); read here only by the inline look-ups below. */
#define FDTAB_CHUNK_SHIFT 10
#define FDTAB_MAX_CHUNKS 4096
extern struct fdent *_Atomic fdtab_chunks[FDTAB_MAX_CHUNKS] SLUICE_INTERNAL;

/* The entry for fd, created on demand; NULL if fd is negative or past the limit. */
struct fdent *fdtab_get(int fd) SLUICE_INTERNAL;
/* The entry if it exists already; never allocates (signal handlers, hot paths). */
struct fdent *fdtab_peek(int fd) SLUICE_INTERNAL;
/* Kind of fd, classifying it on first use. errno is preserved. */
enum fd_kind fdtab_kind(int fd) SLUICE_INTERNAL;

/* fdtab_kind for the common case, inline: a descriptor already classified is
 * two loads away, with no call (every gated call asks this first). */
static inline enum fd_kind fdtab_kind_fast(int fd)
{
    unsigned c = (unsigned) fd >> FDTAB_CHUNK_SHIFT;
    if (likely(fd >= 0 && c < FDTAB_MAX_CHUNKS)) {
        struct fdent *chunk = atomic_load_explicit(&fdtab_chunks[c], memory_order_acquire);
        if (likely(chunk != NULL)) {
            uint8_t k = atomic_load_explicit(&chunk[fd & ((1 << FDTAB_CHUNK_SHIFT) - 1)].kind,
                                             memory_order_acquire);
            if (likely(k != FD_UNKNOWN))
                return (enum fd_kind) k;
        }
    }
    return fdtab_kind(fd);
}
/* fd's entry (NULL if none) and, through *kind, its kind (classified on first
 * use): the one look-up a gated call makes, inline when already classified. */
static inline struct fdent *fdtab_entry_fast(int fd, enum fd_kind *kind)
{
    unsigned c = (unsigned) fd >> FDTAB_CHUNK_SHIFT;
    if (likely(fd >= 0 && c < FDTAB_MAX_CHUNKS)) {
        struct fdent *chunk = atomic_load_explicit(&fdtab_chunks[c], memory_order_acquire);
        if (likely(chunk != NULL)) {
            struct fdent *e = &chunk[fd & ((1 << FDTAB_CHUNK_SHIFT) - 1)];
            uint8_t k = atomic_load_explicit(&e->kind, memory_order_acquire);
            if (likely(k != FD_UNKNOWN)) {
                *kind = (enum fd_kind) k;
                return e;
            }
        }
    }
    *kind = fdtab_kind(fd);
    return fdtab_peek(fd);
}

/* The kernel handed out this number anew (open, socket, accept, dup...): drop
 * everything known about it, releasing a connection slot a missed close left. */
void fdtab_reborn(int fd) SLUICE_INTERNAL;
/* Before the real close of fd: forget it and return what must be released once
 * the descriptor is really gone (connection id + 1, or 0). Closing first and
 * forgetting after would race with another thread that gets the same number. */
uint32_t fdtab_forget(int fd) SLUICE_INTERNAL;
/* A dup2/dup3 over fd failed after fdtab_forget: fd still holds that slot. */
void fdtab_restore(int fd, uint32_t held) SLUICE_INTERNAL;
/* O_NONBLOCK of fd as set through fcntl(F_SETFL) or accept4. */
void fdtab_set_nonblock(int fd, bool on) SLUICE_INTERNAL;
/* After the real dup of oldfd onto newfd: newfd shares oldfd's connection. */
void fdtab_dup(int oldfd, int newfd) SLUICE_INTERNAL;
/* Highest descriptor number the table has an entry for, plus one. */
int fdtab_extent(void) SLUICE_INTERNAL;
/* sluice's own descriptors (its thread's epoll and eventfd, the overlay's):
 * a program that closes every descriptor (close_range, closefrom, a loop of
 * close) must not take them, or sluice's waits would fail at once and spin.
 * fdtab_close_own() is how sluice itself lets one go. */
void fdtab_own(int fd) SLUICE_INTERNAL;
bool fdtab_is_own(int fd) SLUICE_INTERNAL;
void fdtab_close_own(int fd) SLUICE_INTERNAL;
/* accept/accept4 returned fd, a connection of this process: record it (kind,
 * O_NONBLOCK from accept_flags) and tell the gate that asked (drain). */
void fdtab_accepted(int fd, int accept_flags) SLUICE_INTERNAL;
/* After the real close of a descriptor whose fdtab_forget returned held: the
 * connection gate drops that reference (nothing if held is 0). errno is kept. */
void fdtab_release(uint32_t held) SLUICE_INTERNAL;

/* The gates above register what fdtab tells them, at their start-up; fdtab
 * never calls them by name (it sits below them). */
/* conn: whether a listener is governed; a descriptor of connection id+1 is
 * gone; another descriptor refers to connection id+1 (dup). */
void fdtab_hook_conn(bool (*governs)(int fd), void (*released)(uint32_t conn),
                     void (*duped)(uint32_t conn)) SLUICE_INTERNAL;
/* drain: a new connection; an entry with gate bits `gate` was cleared. */
void fdtab_hook_drain(void (*accepted)(int fd), void (*forgotten)(uint32_t gate)) SLUICE_INTERNAL;
/* overlay: fd, hidden or watched by an epoll instance, was forgotten. */
void fdtab_hook_overlay(void (*forgotten)(int fd)) SLUICE_INTERNAL;

/* In a child after fork: the child holds no connection slots (the parent does). */
void fdtab_atfork_child(void) SLUICE_INTERNAL;

#endif
