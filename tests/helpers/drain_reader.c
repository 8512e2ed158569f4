/* drain_reader — the other end of drain_writer for benchmarks: listens on
 * 127.0.0.1:PORT (or a UNIX socket path), takes one connection, reads it to
 * the end checking every byte against the drain_gen stream (seed 42), and
 * prints the byte count, MB/s and "identical" or where it first differs.
 * Prints "listening" once it can be connected to. With "fast" it only counts.
 * Usage: drain_reader PORT|PATH [fast] */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "drain_gen.h"

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3)
        return 2;
    int fast = argc == 3;
    int ls;
    if (argv[1][0] == '/') {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
        ls = socket(AF_UNIX, SOCK_STREAM, 0);
        unlink(a.sun_path);
        if (bind(ls, (struct sockaddr *) &a, sizeof a) != 0)
            return 1;
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        ls = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(ls, (struct sockaddr *) &a, sizeof a) != 0)
            return 1;
    }
    listen(ls, 1);
    printf("listening\n");
    fflush(stdout);
    int c = accept(ls, NULL, NULL);
    static unsigned char buf[1 << 20];
    struct drain_gen g;
    drain_gen_init(&g, 42);
    long long total = 0, bad = -1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        long at = fast ? -1 : drain_gen_check(&g, buf, (size_t) n);
        if (at >= 0 && bad < 0)
            bad = total + at;
        total += n;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (bad < 0)
        printf("%lld bytes %.0f MB/s %s\n", total, (double) total / s / 1e6,
               fast ? "counted" : "identical");
    else
        printf("%lld bytes %.0f MB/s differs at %lld\n", total, (double) total / s / 1e6, bad);
    return bad < 0 ? 0 : 1;
}
