/* wrapped.h — the system headers that declare every wrapped function, and the
 * names symbols.def uses for glibc's transparent sockaddr unions. */
#ifndef SLUICE_WRAPPED_H
#define SLUICE_WRAPPED_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Optimised builds of stdio.h turn some of these into macros: we define the
 * functions themselves. */
#undef fread_unlocked
#undef fwrite_unlocked
#undef getc
#undef putc
#undef fgetc_unlocked
#undef fputc_unlocked

#define SADDR __SOCKADDR_ARG
#define CSADDR __CONST_SOCKADDR_ARG

/* Fortified entry points glibc exports but declares only under _FORTIFY_SOURCE. */
ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t count, off_t offset, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t count, off64_t offset, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       __SOCKADDR_ARG addr, socklen_t *addrlen);
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                const sigset_t *sigmask, size_t fdslen);
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
size_t __fread_chk(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *stream);
size_t __fread_unlocked_chk(void *ptr, size_t ptrlen, size_t size, size_t n, FILE *stream);
char *__fgets_chk(char *s, size_t size, int n, FILE *stream);
int __fprintf_chk(FILE *stream, int flag, const char *fmt, ...);
int __vfprintf_chk(FILE *stream, int flag, const char *fmt, va_list ap);
int __uflow(FILE *stream);
int __underflow(FILE *stream);
int __overflow(FILE *stream, int c);

#endif
