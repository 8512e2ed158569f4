/* drain_timeout — blocking writes to a peer that never reads: connects to
 * 127.0.0.1:PORT, makes COUNT writes of SIZE bytes and prints, for each, its
 * result, errno and how long it took. With OWN_MS given, first sets its own
 * SO_SNDTIMEO. Usage: drain_timeout PORT SIZE COUNT [OWN_MS] */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int s = peer_connect(atoi(argv[1]));
    if (s < 0) {
        perror("connect");
        return 1;
    }
    if (argc > 4) {
        long ms = atol(argv[4]);
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    size_t size = (size_t) atol(argv[2]);
    char *buf = calloc(1, size);
    int count = atoi(argv[3]);
    for (int i = 0; i < count; i++) {
        long long t0 = now_ms();
        ssize_t r = write(s, buf, size);
        int err = r < 0 ? errno : 0;
        printf("write %zd errno %s ms %lld\n", r, err ? strerrorname_np(err) : "0", now_ms() - t0);
        fflush(stdout);
    }
    return 0;
}
