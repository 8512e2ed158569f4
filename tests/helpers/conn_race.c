/* conn_race.c N — threads racing accept/close/dup/dup2/fdopen+fclose on one
 * listener while a client thread makes N connections. At the end every
 * connection is closed; prints the gauges sluice reports (found with dlsym):
 * "in_flight=I limit=L accepted=A". Each acceptor parks one connection while it
 * waits for the next, so SLUICE_CONN_MAX must exceed ACCEPTORS (4) or the
 * program deadlocks on its own slots, as it would under any such limit. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sluice.h"

#define ACCEPTORS 4
static int lsock, total;
static struct sockaddr_in addr;
static _Atomic int accepted;

static void *client(void *arg)
{
    (void) arg;
    for (int i = 0; i < total; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *) &addr, sizeof addr) != 0)
            i--;
        close(c);
    }
    return NULL;
}

static void *acceptor(void *arg)
{
    int park = dup(0);   /* dup2 target: holds the last connection parked here */
    unsigned seed = (unsigned) (long) arg;
    while (atomic_load(&accepted) < total) {
        int c = accept(lsock, NULL, NULL);
        if (c < 0)
            break;
        atomic_fetch_add(&accepted, 1);
        switch (rand_r(&seed) % 4) {
        case 0:
            close(c);
            break;
        case 1: {
            int d = dup(c);
            close(c);
            close(d);
            break;
        }
        case 2:
            dup2(c, park);
            close(c);
            break;
        default: {
            FILE *f = fdopen(c, "r+");
            if (f != NULL)
                fclose(f);
            else
                close(c);
        }
        }
    }
    close(park);
    return NULL;
}

int main(int argc, char **argv)
{
    total = argc > 1 ? atoi(argv[1]) : 2000;
    lsock = socket(AF_INET, SOCK_STREAM, 0);
    addr = (struct sockaddr_in) { .sin_family = AF_INET };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(lsock, (struct sockaddr *) &addr, sizeof addr) != 0 || listen(lsock, 512) != 0
        || getsockname(lsock, (struct sockaddr *) &addr, &len) != 0)
        return 1;
    pthread_t acc[ACCEPTORS], cl;
    for (long i = 0; i < ACCEPTORS; i++)
        pthread_create(&acc[i], NULL, acceptor, (void *) (i + 1));
    pthread_create(&cl, NULL, client, NULL);
    pthread_join(cl, NULL);
    /* The last acceptors block in accept: wake them with connections of their own. */
    for (int i = 0; i < ACCEPTORS; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        connect(c, (struct sockaddr *) &addr, sizeof addr);
        close(c);
    }
    for (int i = 0; i < ACCEPTORS; i++)
        pthread_join(acc[i], NULL);
    int (*snap)(struct sluice_gauges *, size_t) =
        (int (*)(struct sluice_gauges *, size_t)) dlsym(RTLD_DEFAULT, "sluice_gauges");
    struct sluice_gauges g = { 0 };
    if (snap == NULL || snap(&g, sizeof g) != 0) {
        printf("no sluice\n");
        return 0;
    }
    printf("in_flight=%u limit=%u accepted=%d\n", g.conn_in_flight, g.conn_limit,
           atomic_load(&accepted));
    return 0;
}
