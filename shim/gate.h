/* gate.h — what a wrapper asks before and after forwarding a call: one relaxed
 * load decides whether any gate is on; if so, the descriptor's kind picks the
 * gate (files: fs tokens; sockets: drain, held reads, idle slots). */
#ifndef SLUICE_GATE_H
#define SLUICE_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include "common.h"
#include "config.h"
#include "fdtab.h"
#include "stdio_kernel.h"

enum io_dir { IO_IN, IO_OUT, IO_SYNC };

/* One call's passage through the gates: filled by gate_enter, undone by
 * gate_leave. Lives on the wrapper's stack. */
struct pass {
    int fd;
    struct fdent *ent;       /* fd's table entry: the call's one look-up */
    unsigned char kind;      /* enum fd_kind */
    unsigned char dir;       /* enum io_dir */
    unsigned char fs_token;  /* holds a filesystem token */
    FILE *stream_locked;     /* stdio stream locked (flockfile) before the token */
    FILE *outer_stream;      /* the one this thread held before (a handler's call) */
};

/* 0: forward the call. -1: refuse it, errno set (EAGAIN, EINTR...). */
int gate_enter_fd(struct pass *p, int fd, enum io_dir dir, int msgflags) SLUICE_INTERNAL;
/* A stdio call on stream, described by call: a file stream takes a token only
 * when the call will reach the kernel (refill or flush), and stays locked from
 * here to gate_leave either way. */
int gate_enter_stream(struct pass *p, FILE *stream, enum io_dir dir,
                      const struct stdio_call *call) SLUICE_INTERNAL;
/* An open of a file by name: a filesystem operation before there is a descriptor. */
int gate_enter_open(struct pass *p, int dirfd, const char *path, int flags) SLUICE_INTERNAL;
/* After the real call; result is its return value. Preserves errno. Inline:
 * a call on a descriptor no gate cares about has nothing to undo. */
void gate_leave_slow(struct pass *p, long result) SLUICE_INTERNAL;
static inline void gate_leave(struct pass *p, long result)
{
    if (p->fs_token || p->stream_locked != NULL || p->kind == FD_CONN || p->kind == FD_STREAM)
        gate_leave_slow(p, result);
}
/* After a real open that returned fd (or -1). Preserves errno. */
void gate_leave_open(struct pass *p, int fd) SLUICE_INTERNAL;
/* accept/accept4 returned fd (a connection of this process): record it. */
void gate_accepted(int fd, int accept_flags) SLUICE_INTERNAL;

#endif
