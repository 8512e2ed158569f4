/* drain_writer — a blocking writer: connects to 127.0.0.1:PORT (or a UNIX
 * socket path), writes TOTAL bytes of the drain_gen stream in odd sizes through
 * write, writev, send and sendmsg in turn, and prints what it wrote and how
 * long each call took at most. With "fast", the same bytes are sent again and
 * again (throughput runs: no generator cost). Usage: drain_writer PORT|PATH TOTAL [fast] */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "drain_gen.h"

static const size_t sizes[] = { 1, 4093, 7, 65537, 1000, 300001, 13, 8191, 99991, 2 };

static int dial(const char *where)
{
    if (where[0] == '/') {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", where);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        return connect(s, (struct sockaddr *) &a, sizeof a) == 0 ? s : -1;
    }
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(where)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int s = socket(AF_INET, SOCK_STREAM, 0);
    return connect(s, (struct sockaddr *) &a, sizeof a) == 0 ? s : -1;
}

static ssize_t put(int s, int how, const unsigned char *p, size_t n)
{
    struct iovec iov[2] = { { (void *) p, n / 2 }, { (void *) (p + n / 2), n - n / 2 } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
    switch (how) {
    case 0: return write(s, p, n);
    case 1: return writev(s, iov, 2);
    case 2: return send(s, p, n, MSG_NOSIGNAL);
    default: return sendmsg(s, &m, 0);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4)
        return 2;
    int fast = argc == 4;
    int s = dial(argv[1]);
    if (s < 0) {
        perror("connect");
        return 1;
    }
    long long total = atoll(argv[2]), done = 0;
    unsigned char *buf = malloc(300001);
    struct drain_gen g;
    drain_gen_init(&g, 42);
    size_t pending = 0, off = 0;
    unsigned calls = 0;
    while (done < total) {
        if (off == pending) {
            pending = sizes[calls % (sizeof sizes / sizeof sizes[0])];
            if ((long long) pending > total - done)
                pending = (size_t) (total - done);
            if (!fast || calls == 0)
                drain_gen_fill(&g, buf, fast ? 300001 : pending);
            off = 0;
        }
        ssize_t r = put(s, (int) (calls++ % 4), buf + off, pending - off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("write");
            return 1;
        }
        off += (size_t) r;
        done += r;
    }
    printf("wrote %lld in %u calls\n", done, calls);
    close(s);
    return 0;
}
