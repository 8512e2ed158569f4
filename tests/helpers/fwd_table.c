/* fwd_table.c — drives every row of shim/symbols.def through libffi: calls the
 * wrapper (the symbol as libsluice.so defines it) and the real function (libc's)
 * with the same, harmless arguments (bad descriptors, zero lengths, valid
 * buffers, zero timeouts), and compares what they return and the errno they
 * leave; then the descriptor rows again on a regular file, a socket and a pipe;
 * then checks that calls which succeed leave errno untouched.
 * Run it with the library preloaded; it prints one line per row and exits 1 on
 * any difference. Argument "regular": streams are opened on a regular file. */
#include "wrapped.h"
#include "table.h"

#include <dlfcn.h>
#include <errno.h>
#include <ffi.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/time.h>

enum row_class { CLS_CUSTOM, CLS_IN, CLS_OUT, CLS_SYNC, CLS_NEWFD, CLS_SIN, CLS_SOUT };

struct row {
    const char *name;
    enum row_class cls;
    bool variadic;
    int nparams;
    ffi_type *ret;
    const char *ret_type;
    ffi_type *types[7];
    const char *names[7];
};

/* The libffi type of a C type. Every parameter type in the table is an integer
 * or something passed as a pointer (pointers, glibc's transparent sockaddr
 * unions, va_list). */
#define FFI_OF_VALUE(expr) \
    _Generic((expr), \
        int: &ffi_type_sint, unsigned int: &ffi_type_uint, \
        long: &ffi_type_slong, unsigned long: &ffi_type_ulong, \
        long long: &ffi_type_sint64, unsigned long long: &ffi_type_uint64, \
        default: &ffi_type_pointer)
#define FFI_PARAM(t, a) FFI_OF_VALUE(*(t *) 0)
#define PARAM_NAME(t, a) #a
/* Return types include void, which has no value: ask through a function type. */
#define FFI_RET(t) \
    _Generic((t (*)(void)) 0, \
        void (*)(void): &ffi_type_void, \
        int (*)(void): &ffi_type_sint, unsigned int (*)(void): &ffi_type_uint, \
        long (*)(void): &ffi_type_slong, unsigned long (*)(void): &ffi_type_ulong, \
        default: &ffi_type_pointer)

#define SLUICE_SYM(cls, ret, name, subj, aux, n, list) \
    { #name, CLS_##cls, false, n, FFI_RET(ret), #ret, \
      { TBL_MAP(n, FFI_PARAM, list) }, { TBL_MAP(n, PARAM_NAME, list) } },
#define SLUICE_SYMV(cls, ret, name, subj, aux, n, list) \
    { #name, CLS_##cls, true, n, FFI_RET(ret), #ret, \
      { TBL_MAP(n, FFI_PARAM, list) }, { TBL_MAP(n, PARAM_NAME, list) } },
static const struct row rows[] = {
#include "symbols.def"
};
#undef SLUICE_SYM
#undef SLUICE_SYMV

#define NROWS (sizeof rows / sizeof rows[0])
#define SENTINEL 23130   /* an errno no call here sets */

/* Everything the arguments may point at, fresh for each call. */
struct scratch {
    char buf[256];
    struct iovec iov;
    struct msghdr msg;
    struct mmsghdr mmsg[1];
    struct epoll_event events[1];
    sigset_t empty_set;
    char *line;
    size_t cap;
    struct timespec zero_ts;
    struct timeval zero_tv;
    va_list ap_storage;    /* never read: every format here has no conversion */
    FILE *stream;
};

union value {
    int i;
    unsigned u;
    long l;
    unsigned long ul;
    void *p;
};

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* Rows whose calls create descriptors are made to fail (bad flags or domain):
 * two successes would return two different numbers. */
static bool makes_descriptors(const struct row *r)
{
    return r->cls == CLS_NEWFD || is(r->name, "socketpair") || is(r->name, "pipe")
           || is(r->name, "pipe2");
}

/* Rows that take ownership of their stream argument (close or reopen it). */
static bool consumes_stream(const struct row *r)
{
    return is(r->name, "fclose") || is(r->name, "freopen") || is(r->name, "freopen64");
}

/* In the descriptor-kind passes: the open descriptor every fd parameter gets
 * (-1 otherwise), and whether it is a socket (its calls are made with
 * MSG_DONTWAIT, so that none can wait for data). */
static int kind_fd = -1;
static bool kind_is_socket;

static bool is_msg_call(const struct row *r)
{
    return (strstr(r->name, "recv") != NULL || strstr(r->name, "send") != NULL)
           && strstr(r->name, "sendfile") == NULL;
}

/* Chooses a harmless value for parameter i of row r, by its name and type: bad
 * descriptors (EBADF), empty sizes, valid buffers, zero timeouts. */
static void choose(const struct row *r, int i, struct scratch *s, union value *v)
{
    const char *p = r->names[i];
    memset(v, 0, sizeof *v);
    if (r->types[i] == &ffi_type_pointer) {
        if (is(p, "stream"))
            v->p = s->stream;
        else if (is(p, "path"))
            v->p = (void *) "/nonexistent-sluice-forwarding-test/file";
        else if (is(p, "mode"))
            v->p = (void *) "r";
        else if (is(p, "name"))
            v->p = (void *) "sluice-fwd";
        else if (is(p, "fmt"))
            v->p = (void *) "x";
        else if (is(p, "buf") || is(p, "ptr") || is(p, "s"))
            v->p = s->buf;
        else if (is(p, "iov"))
            v->p = &s->iov;
        else if (is(p, "msg"))
            v->p = &s->msg;
        else if (is(p, "vec"))
            v->p = s->mmsg;
        else if (is(p, "events"))
            v->p = s->events;
        else if (is(p, "mask"))
            v->p = &s->empty_set;
        else if (is(p, "line"))
            v->p = &s->line;
        else if (is(p, "cap"))
            v->p = &s->cap;
        else if (is(p, "ap"))
            v->p = s->ap_storage;
        else if (is(p, "timeout"))
            v->p = is(r->name, "select") ? (void *) &s->zero_tv : (void *) &s->zero_ts;
        else
            v->p = NULL;   /* addr, addrlen, fd_sets, offsets, sigmask, event, fds */
        return;
    }
    long x = 0;
    if (is(p, "fd") || is(p, "out_fd") || is(p, "in_fd") || is(p, "fd_in") || is(p, "fd_out"))
        x = kind_fd;
    else if (is(p, "epfd") || is(p, "dirfd") || is(p, "newfd"))
        x = -1;
    else if (is(p, "flags"))
        x = makes_descriptors(r) ? -1 : (kind_is_socket && is_msg_call(r)) ? MSG_DONTWAIT : 0;
    else if (is(p, "domain") || is(p, "clockid"))
        x = -1;
    else if (is(p, "size"))
        x = is(r->name, "__fgets_chk") ? (long) sizeof s->buf : 0;
    else if (is(p, "buflen") || is(p, "ptrlen") || is(p, "fdslen"))
        x = (long) sizeof s->buf;
    else if (is(p, "iovcnt") || is(p, "maxevents") || is(p, "backlog") || is(p, "flag"))
        x = 1;
    else if (is(p, "cmd"))
        x = F_GETFL;
    else if (is(p, "op"))
        x = EPOLL_CTL_ADD;
    else if (is(p, "number"))
        x = SYS_getpid;
    else if (is(p, "first"))
        x = 10;              /* first > last: EINVAL, nothing closed */
    else if (is(p, "last"))
        x = 5;
    else if (is(p, "lowfd"))
        x = INT_MAX;         /* above every open descriptor: closes nothing */
    else if (is(p, "c"))
        x = 'x';
    else if (is(p, "delim"))
        x = '\n';
    else if (is(p, "mode"))
        x = 0600;
    /* count, len, n, nbytes, nfds, vlen, offset, timeout, type, protocol... : 0 */
    if (r->types[i]->size == 4)
        v->i = (int) x;
    else
        v->l = x;
}

/* Streams are opened on this: /dev/null, or a regular file (argument
 * "regular"), which the filesystem gate governs when it is on. */
static const char *stream_path = "/dev/null";

static void scratch_init(struct scratch *s)
{
    memset(s, 0, sizeof *s);
    s->iov.iov_base = s->buf;
    s->iov.iov_len = 0;
    sigemptyset(&s->empty_set);
    s->stream = fopen(stream_path, "r+");
}

static void scratch_done(const struct row *r, struct scratch *s)
{
    if (s->stream != NULL && !consumes_stream(r))
        fclose(s->stream);
    free(s->line);
}

struct outcome {
    ffi_arg ret;
    int err;
};

static struct outcome call(const struct row *r, void *fn)
{
    struct scratch s;
    union value vals[7];
    void *args[7];
    scratch_init(&s);
    for (int i = 0; i < r->nparams; i++) {
        choose(r, i, &s, &vals[i]);
        args[i] = &vals[i];
    }
    ffi_cif cif;
    ffi_status st = r->variadic
        ? ffi_prep_cif_var(&cif, FFI_DEFAULT_ABI, (unsigned) r->nparams, (unsigned) r->nparams,
                           r->ret, (ffi_type **) r->types)
        : ffi_prep_cif(&cif, FFI_DEFAULT_ABI, (unsigned) r->nparams, r->ret,
                       (ffi_type **) r->types);
    struct outcome o = { 0, 0 };
    if (st != FFI_OK) {
        fprintf(stderr, "ffi_prep_cif failed for %s\n", r->name);
        exit(3);
    }
    ffi_arg rv = 0;
    errno = SENTINEL;
    ffi_call(&cif, FFI_FN(fn), r->ret == &ffi_type_void ? NULL : &rv, args);
    o.err = errno;
    o.ret = rv;
    scratch_done(r, &s);
    return o;
}

/* Compares what one call returned: integers by value, pointers by NULL-ness. */
static bool same_result(const struct row *r, struct outcome a, struct outcome b)
{
    if (r->ret == &ffi_type_void)
        return true;
    if (r->ret == &ffi_type_pointer)
        return (a.ret == 0) == (b.ret == 0);
    if (r->ret->size == 4)
        return (int32_t) a.ret == (int32_t) b.ret;
    return a.ret == b.ret;
}

static long shown(const struct row *r, ffi_arg v)
{
    if (r->ret == &ffi_type_pointer)
        return v != 0;
    return r->ret->size == 4 ? (long) (int32_t) v : (long) v;
}

static const char *errno_text(int e)
{
    static char text[2][64];
    static int which;
    which ^= 1;
    if (e == SENTINEL)
        return "untouched";
    snprintf(text[which], sizeof text[which], "%d (%s)", e, strerror(e));
    return text[which];
}

static int failures;

#define EXPECT_ERRNO_KEPT(what, stmt) \
    do { \
        errno = SENTINEL; \
        stmt; \
        int e_ = errno; \
        if (e_ != SENTINEL) { \
            printf("FAIL errno-kept %s: errno %d after a successful call\n", what, e_); \
            failures++; \
        } else { \
            printf("ok errno-kept %s\n", what); \
        } \
    } while (0)

/* Successful calls, through the wrappers (this program's own references bind to
 * libsluice.so when it is preloaded), must not disturb errno. */
static void errno_preservation(void)
{
    char buf[16];
    struct timeval tv = { 0, 0 };
    int devnull = open("/dev/null", O_RDWR);
    if (devnull < 0) {
        printf("FAIL cannot open /dev/null\n");
        failures++;
        return;
    }
    EXPECT_ERRNO_KEPT("poll", if (poll(NULL, 0, 0) != 0) failures++);
    EXPECT_ERRNO_KEPT("select", if (select(0, NULL, NULL, NULL, &tv) != 0) failures++);
    EXPECT_ERRNO_KEPT("write", if (write(devnull, "x", 1) != 1) failures++);
    EXPECT_ERRNO_KEPT("read", if (read(devnull, buf, sizeof buf) != 0) failures++);
    EXPECT_ERRNO_KEPT("fcntl", if (fcntl(devnull, F_GETFL) < 0) failures++);
    EXPECT_ERRNO_KEPT("syscall", if (syscall(SYS_getpid) != getpid()) failures++);
    int fd = -1;
    EXPECT_ERRNO_KEPT("dup", fd = dup(devnull));
    EXPECT_ERRNO_KEPT("close", if (close(fd) != 0) failures++);
    int pair[2];
    EXPECT_ERRNO_KEPT("socketpair", if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) failures++);
    EXPECT_ERRNO_KEPT("send", if (send(pair[0], "ab", 2, 0) != 2) failures++);
    EXPECT_ERRNO_KEPT("recv", if (recv(pair[1], buf, sizeof buf, 0) != 2) failures++);
    EXPECT_ERRNO_KEPT("close pair", close(pair[0]); close(pair[1]));
    int ep = -1;
    struct epoll_event ev;
    EXPECT_ERRNO_KEPT("epoll_create1", ep = epoll_create1(0));
    EXPECT_ERRNO_KEPT("epoll_wait", if (epoll_wait(ep, &ev, 1, 0) != 0) failures++);
    close(ep);

    /* A regular file: the filesystem gate's path when it is on. */
    char path[] = "/tmp/sluice-fwd-XXXXXX";
    int tmp = mkstemp(path);
    if (tmp >= 0) {
        close(tmp);
        EXPECT_ERRNO_KEPT("open file", tmp = open(path, O_RDWR | O_CREAT, 0600));
        EXPECT_ERRNO_KEPT("write file", if (write(tmp, "hello", 5) != 5) failures++);
        EXPECT_ERRNO_KEPT("pread file", if (pread(tmp, buf, 5, 0) != 5) failures++);
        EXPECT_ERRNO_KEPT("fsync file", if (fsync(tmp) != 0) failures++);
        EXPECT_ERRNO_KEPT("fdatasync file", if (fdatasync(tmp) != 0) failures++);
        EXPECT_ERRNO_KEPT("close file", close(tmp));
        FILE *f = NULL;
        EXPECT_ERRNO_KEPT("fopen file", f = fopen(path, "r+"));
        if (f != NULL) {
            EXPECT_ERRNO_KEPT("fread file", if (fread(buf, 1, 5, f) != 5) failures++);
            EXPECT_ERRNO_KEPT("fwrite file", if (fwrite("!", 1, 1, f) != 1) failures++);
            EXPECT_ERRNO_KEPT("fflush file", if (fflush(f) != 0) failures++);
            EXPECT_ERRNO_KEPT("fclose file", if (fclose(f) != 0) failures++);
        }
        unlink(path);
    }
    close(devnull);
}

/* Calls row r through the wrapper and through libc; prints and counts. */
static void compare_row(const struct row *r, void *wrapper, void *real, const char *pass)
{
    struct outcome w = call(r, wrapper);
    struct outcome o = call(r, real);
    if (!same_result(r, w, o) || w.err != o.err) {
        printf("FAIL %s%s: wrapper returned %ld errno %s, libc returned %ld errno %s\n", pass,
               r->name, shown(r, w.ret), errno_text(w.err), shown(r, o.ret), errno_text(o.err));
        failures++;
    } else {
        printf("ok %s%s: %s %ld, errno %s\n", pass, r->name, r->ret_type, shown(r, o.ret),
               errno_text(o.err));
    }
}

/* Rows that act on an open descriptor without changing what it is: input,
 * output, syncs, transfers, fcntl(F_GETFL). */
static bool takes_an_open_descriptor(const struct row *r)
{
    return r->cls == CLS_IN || r->cls == CLS_OUT || r->cls == CLS_SYNC || is(r->name, "sendfile")
           || is(r->name, "sendfile64") || is(r->name, "copy_file_range") || is(r->name, "splice")
           || is(r->name, "fcntl") || is(r->name, "fcntl64");
}

/* The same rows again on real descriptors of each kind the gates tell apart
 * (a regular file, a socket, a pipe), with zero lengths: the gates' own paths
 * run, and must still give libc's answer. */
static int descriptor_kind_passes(void *lib, void *libc)
{
    int compared = 0;
    char path[] = "/tmp/sluice-fwd-file-XXXXXX";
    int file = mkstemp(path);
    int pair[2], pipefd[2];
    if (file < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || pipe(pipefd) != 0) {
        printf("FAIL cannot make descriptors for the kind passes\n");
        failures++;
        return 0;
    }
    unlink(path);
    struct { const char *name; int fd; bool socket; } kinds[] = {
        { "[file] ", file, false }, { "[socket] ", pair[0], true }, { "[pipe] ", pipefd[0], false },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        kind_fd = kinds[k].fd;
        kind_is_socket = kinds[k].socket;
        for (size_t i = 0; i < NROWS; i++) {
            const struct row *r = &rows[i];
            void *wrapper = dlsym(lib, r->name), *real = dlsym(libc, r->name);
            if (!takes_an_open_descriptor(r) || wrapper == NULL || real == NULL)
                continue;
            compare_row(r, wrapper, real, kinds[k].name);
            compared++;
        }
    }
    kind_fd = -1;
    kind_is_socket = false;
    close(file);
    close(pair[0]);
    close(pair[1]);
    close(pipefd[0]);
    close(pipefd[1]);
    return compared;
}

int main(int argc, char **argv)
{
    alarm(30);   /* nothing here may wait: if a call blocks, fail loudly */
    char regular[] = "/tmp/sluice-fwd-stream-XXXXXX";
    if (argc > 1 && strcmp(argv[1], "regular") == 0) {
        int fd = mkstemp(regular);
        if (fd < 0) {
            perror("mkstemp");
            return 2;
        }
        close(fd);
        stream_path = regular;
    }
    Dl_info info;
    void *version = dlsym(RTLD_DEFAULT, "sluice_version");
    if (version == NULL || dladdr(version, &info) == 0) {
        fprintf(stderr, "fwd_table: libsluice.so is not loaded (run with LD_PRELOAD)\n");
        return 2;
    }
    void *lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL || libc == NULL) {
        fprintf(stderr, "fwd_table: cannot reopen %s or libc.so.6\n", info.dli_fname);
        return 2;
    }
    void *lib_base = info.dli_fbase;
    int compared = 0, skipped = 0;
    for (size_t k = 0; k < NROWS; k++) {
        const struct row *r = &rows[k];
        void *wrapper = dlsym(lib, r->name);
        void *real = dlsym(libc, r->name);
        if (real == NULL) {
            printf("skip %s: this libc does not have it\n", r->name);
            skipped++;
            continue;
        }
        Dl_info winfo;
        if (wrapper == NULL || dladdr(wrapper, &winfo) == 0 || winfo.dli_fbase != lib_base) {
            printf("FAIL %s: libsluice.so does not define it\n", r->name);
            failures++;
            continue;
        }
        compare_row(r, wrapper, real, "");
        compared++;
    }
    int kind_calls = descriptor_kind_passes(lib, libc);
    errno_preservation();
    if (stream_path == regular)
        unlink(regular);
    printf("descriptor-kind calls %d\n", kind_calls);
    printf("rows %zu compared %d skipped %d failed %d\n", NROWS, compared, skipped, failures);
    fflush(stdout);
    return failures == 0 ? 0 : 1;
}
