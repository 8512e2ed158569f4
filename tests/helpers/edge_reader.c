/* edge_reader — an event-loop peer whose input sluice holds back (held reads):
 * it connects to 127.0.0.1:PORT, waits with WAITER for input, answers the
 * first input by writing the drain_gen stream (seed 7) until EAGAIN (so its
 * output is over the mark), then reads its input (seed 9, checked) until EAGAIN
 * or the end, and waits again, with no timeout and no retry of its own. At the
 * end of its input it prints what it read, wrote, how often it waited and how
 * many reads answered EAGAIN, then closes. A reader owed an event it never gets
 * sleeps forever: the test's deadline is the only bound.
 *
 * Usage: edge_reader PORT WAITER
 *   WAITER: level | edge | oneshot | exclusive | exclusive_edge (epoll), poll, select */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "drain_gen.h"
#include "peer.h"

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *waiter = argv[2];
    int s = peer_connect(atoi(argv[1]));
    if (s < 0) {
        perror("connect");
        return 1;
    }
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
    struct peer_waiter waiting;
    if (peer_waiter_open(&waiting, waiter, s, EPOLLIN) != 0) {
        perror("epoll_ctl");
        return 1;
    }
    static unsigned char out[64 * 1024], in[64 * 1024];
    struct drain_gen og, ig;
    drain_gen_init(&og, 7);
    drain_gen_init(&ig, 9);
    long wrote = 0, got = 0, waits = 0, read_eagains = 0;
    bool answered = false;
    for (;;) {
        waits++;
        if (peer_wait(&waiting) != 0)
            return 1;
        if (!answered) {
            /* Answer until the socket is full: the mark is reached. */
            answered = true;
            for (;;) {
                drain_gen_fill(&og, out, sizeof out);
                ssize_t w = send(s, out, sizeof out, MSG_NOSIGNAL);
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;   /* the unsent rest of this piece is never sent */
                if (w < 0) {
                    perror("send");
                    return 1;
                }
                wrote += w;
                if (w < (ssize_t) sizeof out)
                    break;
            }
        }
        for (;;) {
            ssize_t n = read(s, in, sizeof in);
            if (n > 0) {
                long bad = drain_gen_check(&ig, in, (size_t) n);
                if (bad >= 0) {
                    fprintf(stderr, "input byte %ld differs\n", got + bad);
                    return 1;
                }
                got += n;
                continue;
            }
            if (n == 0) {
                printf("read %ld wrote %ld waits %ld read_eagains %ld\n", got, wrote, waits,
                       read_eagains);
                fflush(stdout);
                close(s);
                return 0;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("read");
                return 1;
            }
            read_eagains++;
            break;
        }
        peer_rearm(&waiting);
    }
}
