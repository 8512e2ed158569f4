/* edge_writer — a non-blocking writer that sleeps only until its readiness call
 * reports the socket writable, as an event loop does: it connects to
 * 127.0.0.1:PORT (or the UNIX socket PATH), writes TOTAL bytes of the
 * drain_gen stream (seed 7) with CALL until the kernel (or sluice) answers
 * EAGAIN, then waits with WAITER, with no timeout and no retry, and again.
 * At the end it shuts its side down and prints what it wrote, how many times
 * it waited and how many EAGAINs it saw. A writer owed an event it never gets
 * sleeps forever: the test's deadline is the only bound.
 *
 * Usage: edge_writer PORT|unix:PATH TOTAL WAITER CALL
 *   WAITER: level | edge | oneshot | exclusive | exclusive_edge (epoll), poll, select
 *   CALL:   send | write | writev | sendmsg | sendfile | splice */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "drain_gen.h"
#include "peer.h"

#define CHUNK (64 * 1024)

static int connect_to(const char *where)
{
    int s;
    if (strncmp(where, "unix:", 5) == 0) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", where + 5);
        s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *) &a, sizeof a) != 0)
            return -1;
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(where)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *) &a, sizeof a) != 0)
            return -1;
    }
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    return s;
}

/* The bytes to send: all of them in memory (and in a memfd for sendfile). */
static unsigned char *stream;
static long total;
static int memfd = -1;
static int pipefd[2] = { -1, -1 };
static long in_pipe;   /* bytes of the stream in the pipe, not yet spliced */

/* One output call of the chosen kind from offset `off`; as the call returns. */
static ssize_t put(int s, const char *call, long off)
{
    size_t n = total - off < CHUNK ? (size_t) (total - off) : CHUNK;
    const unsigned char *p = stream + off;
    if (strcmp(call, "send") == 0)
        return send(s, p, n, MSG_NOSIGNAL);
    if (strcmp(call, "write") == 0)
        return write(s, p, n);
    if (strcmp(call, "writev") == 0) {
        struct iovec iov[2] = { { (void *) p, n / 2 }, { (void *) (p + n / 2), n - n / 2 } };
        return writev(s, iov, 2);
    }
    if (strcmp(call, "sendmsg") == 0) {
        struct iovec iov = { (void *) p, n };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        return sendmsg(s, &m, MSG_NOSIGNAL);
    }
    if (strcmp(call, "sendfile") == 0) {
        off_t o = off;
        return sendfile(s, memfd, &o, n);
    }
    /* splice: keep the pipe topped up from the stream, then move to the socket. */
    while (in_pipe < (long) n) {
        ssize_t w = write(pipefd[1], stream + off + in_pipe, n - (size_t) in_pipe);
        if (w <= 0)
            break;
        in_pipe += w;
    }
    ssize_t r = splice(pipefd[0], NULL, s, NULL, (size_t) in_pipe, SPLICE_F_NONBLOCK);
    if (r > 0)
        in_pipe -= r;
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    total = atol(argv[2]);
    const char *waiter = argv[3], *call = argv[4];
    stream = malloc((size_t) total);
    struct drain_gen g;
    drain_gen_init(&g, 7);
    drain_gen_fill(&g, stream, (size_t) total);
    if (strcmp(call, "sendfile") == 0) {
        memfd = memfd_create("edge_writer", 0);
        if (memfd < 0 || write(memfd, stream, (size_t) total) != total)
            return 1;
    }
    if (strcmp(call, "splice") == 0 && pipe2(pipefd, O_NONBLOCK) != 0)
        return 1;
    int s = connect_to(argv[1]);
    if (s < 0) {
        perror("connect");
        return 1;
    }
    struct peer_waiter waiting;
    if (peer_waiter_open(&waiting, waiter, s, EPOLLOUT) != 0) {
        perror("epoll_ctl");
        return 1;
    }
    long sent = 0, waits = 0, eagains = 0;
    while (sent < total) {
        ssize_t r = put(s, call, sent);
        if (r > 0) {
            sent += r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            perror("write");
            return 1;
        }
        eagains++;
        waits++;
        if (peer_wait(&waiting) != 0)
            return 1;
        peer_rearm(&waiting);
    }
    shutdown(s, SHUT_WR);
    printf("wrote %ld waits %ld eagains %ld\n", sent, waits, eagains);
    fflush(stdout);
    /* Stay until the reader has everything (closing early is fine for TCP,
     * but a reader that checks for EOF gets it from the shutdown). */
    char b;
    while (read(s, &b, 1) != 0) {
        struct pollfd p = { s, POLLIN, 0 };
        poll(&p, 1, -1);
    }
    return 0;
}
