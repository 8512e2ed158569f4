/* cancel_waits.c MODE [DIR] — a thread blocked in one of sluice's waits is
 * cancelled with pthread_cancel, as it would be in the real call (accept, read,
 * write, open, pread and fread are cancellation points). MODE picks the wait:
 *   accept   a paused blocking accept (SLUICE_CONN_MAX=1, one connection held)
 *   idle     a blocking read on an idle connection waiting for a slot
 *            (SLUICE_CONN_MAX=1, SLUICE_CONN_IDLE=free)
 *   fs       a pread waiting for a filesystem token (SLUICE_FS_MAX=1, held by
 *            a thread whose sendfile into a full pipe keeps it; host scope too)
 *   stdio    the same with fread on a stream, which sluice locks first
 *   drain    a write waiting for its socket to drain (SLUICE_WRITE_HIGH)
 *   held     a read held until output drains (SLUICE_HOLD_READS=1)
 *   pending  a thread cancelled in the real pread, with its token in hand (the
 *            cancel was pending when it entered; SLUICE_FS_MAX=1): the token
 *            must come back, or the next pread waits (SLUICE_FS_TIMEOUT: EAGAIN)
 *   pending-stdio  the same in fread: the stream must not stay locked
 * Prints "joined MS" or "stuck" for the cancelled thread, then "after ok" if
 * what the wait stood in line for still works afterwards (a slot, a token, the
 * stream), and "gauges in_flight=N fs_in_use=N" once everything is let go. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../include/sluice.h"

static int lfd = -1, conn_a = -1;
static int file_fd = -1;
static FILE *stream;
static int pipe_fds[2];

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "cancel_waits: %s: %s\n", what, strerror(errno));
    exit(3);
}

static int listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) != 0 || listen(fd, 16) != 0)
        die("listen");
    return fd;
}

static int client(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr *) &a, &len);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof a) != 0)
        die("connect");
    return fd;
}

static void *blocked_accept(void *arg)
{
    (void) arg;
    accept(lfd, NULL, NULL);
    return NULL;
}

static void *blocked_read(void *arg)
{
    char b[4096];
    for (;;)
        if (read(*(int *) arg, b, sizeof b) <= 0)
            return NULL;
}

static void *blocked_write(void *arg)
{
    static char big[1 << 16];
    for (;;)
        if (write(*(int *) arg, big, sizeof big) < 0)
            return NULL;
}

static void *blocked_pread(void *arg)
{
    (void) arg;
    char b[16];
    (void) !pread(file_fd, b, sizeof b, 0);
    return NULL;
}

static void *blocked_fread(void *arg)
{
    (void) arg;
    char b[16];
    (void) !fread(b, 1, sizeof b, stream);
    return NULL;
}

static _Atomic int cancel_sent;

static void *cancelled_in_pread(void *arg)
{
    (void) arg;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    while (!cancel_sent)
        usleep(1000);
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    char b[16];
    if (arg != NULL)
        (void) !fread(b, 1, sizeof b, stream);  /* acts on the pending cancel */
    else
        (void) !pread(file_fd, b, sizeof b, 0);
    return NULL;
}

static void *token_holder(void *arg)
{
    (void) arg;
    /* The pipe fills after 64 KiB: the next sendfile sleeps holding the token. */
    while (sendfile(pipe_fds[1], file_fd, NULL, 1 << 20) > 0)
        ;
    return NULL;
}

/* Starts fn, lets it block, cancels it; prints how the join went. */
static void cancel_blocked(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0)
        die("pthread_create");
    usleep(300000);
    long t0 = now_ms();
    pthread_cancel(t);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 3;
    if (pthread_timedjoin_np(t, NULL, &until) == 0)
        printf("joined %ld\n", now_ms() - t0);
    else
        printf("stuck\n");
    fflush(stdout);
}

static void gauges(void)
{
    int (*snap)(struct sluice_gauges *, size_t) =
        (int (*)(struct sluice_gauges *, size_t)) dlsym(RTLD_DEFAULT, "sluice_gauges");
    struct sluice_gauges g = { 0 };
    if (snap == NULL || snap(&g, sizeof g) != 0)
        printf("gauges none\n");
    else
        printf("gauges in_flight=%u fs_in_use=%u\n", g.conn_in_flight, g.fs_in_use);
}

static void make_file(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cancel-%d", dir, (int) getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0)
        die("open");
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 16; i++)
        if (write(fd, chunk, sizeof chunk) != (ssize_t) sizeof chunk)
            die("write");
    lseek(fd, 0, SEEK_SET);
    file_fd = fd;
    stream = fopen(path, "r");
    if (stream == NULL)
        die("fopen");
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    alarm(20);   /* a deadlock ends the run instead of hanging the suite */
    if (strcmp(mode, "accept") == 0) {
        lfd = listener();
        int c1 = client();
        conn_a = accept(lfd, NULL, NULL);
        int c2 = client();
        cancel_blocked(blocked_accept, NULL);
        /* The connection the cancelled accept waited for is still there, and
         * the slot is still the program's: free it and accept. */
        close(conn_a);
        struct pollfd p = { lfd, POLLIN, 0 };
        if (poll(&p, 1, 3000) == 1 && (conn_a = accept(lfd, NULL, NULL)) >= 0)
            printf("after ok\n");
        close(conn_a);
        close(c1);
        close(c2);
        usleep(100000);
    } else if (strcmp(mode, "idle") == 0) {
        lfd = listener();
        int ca = client();
        int a = accept(lfd, NULL, NULL);
        char b[8];
        if (write(ca, "x", 1) != 1 || read(a, b, 1) != 1 || write(a, "y", 1) != 1)
            die("exchange");
        usleep(50000);
        struct pollfd p = { a, POLLIN, 0 };
        poll(&p, 1, 0);            /* answered, nothing unread: a goes idle */
        int cb = client();
        int bconn = accept(lfd, NULL, NULL);   /* b takes the one slot */
        if (write(ca, "z", 1) != 1)
            die("write");
        usleep(50000);
        cancel_blocked(blocked_read, &a);   /* a waits for b's slot */
        close(bconn);
        /* The slot b leaves is a's now: its input reads. */
        struct pollfd q = { a, POLLIN, 0 };
        if (poll(&q, 1, 3000) == 1 && read(a, b, sizeof b) == 1)
            printf("after ok\n");
        close(a);
        close(ca);
        close(cb);
        usleep(100000);
    } else if (strcmp(mode, "fs") == 0 || strcmp(mode, "stdio") == 0) {
        if (argc < 3)
            return 2;
        make_file(argv[2]);
        if (pipe(pipe_fds) != 0)
            die("pipe");
        pthread_t holder;
        pthread_create(&holder, NULL, token_holder, NULL);
        usleep(200000);
        cancel_blocked(mode[0] == 'f' ? blocked_pread : blocked_fread, NULL);
        /* Let the holder finish: the token comes back. */
        static char sink[1 << 16];
        fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
        for (int i = 0; i < 200 && pthread_tryjoin_np(holder, NULL) != 0; i++) {
            while (read(pipe_fds[0], sink, sizeof sink) > 0)
                ;
            usleep(10000);
        }
        char b[16];
        if (mode[0] == 'f' ? pread(file_fd, b, sizeof b, 0) == (ssize_t) sizeof b
                           : fread(b, 1, sizeof b, stream) == sizeof b)
            printf("after ok\n");
    } else if (strcmp(mode, "pending") == 0 || strcmp(mode, "pending-stdio") == 0) {
        if (argc < 3)
            return 2;
        make_file(argv[2]);
        bool in_stdio = mode[7] == '-';
        pthread_t t;
        pthread_create(&t, NULL, cancelled_in_pread, in_stdio ? stream : NULL);
        pthread_cancel(t);
        cancel_sent = 1;
        void *how = NULL;
        pthread_join(t, &how);
        printf("joined %d\n", how == PTHREAD_CANCELED ? 0 : 9999);
        char b[16];
        if (in_stdio ? fread(b, 1, sizeof b, stream) == sizeof b
                     : pread(file_fd, b, sizeof b, 0) == (ssize_t) sizeof b)
            printf("after ok\n");
    } else if (strcmp(mode, "drain") == 0 || strcmp(mode, "held") == 0) {
        lfd = listener();
        int c = client();
        int a = accept(lfd, NULL, NULL);
        if (mode[0] == 'd') {
            cancel_blocked(blocked_write, &a);
        } else {
            static char big[1 << 16];
            fcntl(a, F_SETFL, O_NONBLOCK);
            while (write(a, big, sizeof big) > 0)
                ;
            fcntl(a, F_SETFL, 0);
            cancel_blocked(blocked_read, &a);
        }
        printf("after ok\n");
        close(a);
        close(c);
        usleep(100000);
    } else {
        return 2;
    }
    gauges();
    return 0;
}
