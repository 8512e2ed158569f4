/* conn_threaded.c PORT [POOL] — a blocking threaded server. Without POOL: one
 * thread accepts and starts a thread per connection. With POOL=N: N threads
 * all block in accept on the same listener (a thread-pool server). Each
 * connection is greeted ("hi\n"), its input discarded until the client closes.
 * Prints "accepted N" for every connection it sees ("accepted N by T" in a pool). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int lsock;
static _Atomic int seen;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static __thread int pool_index = -1;

static void serve(int c)
{
    pthread_mutex_lock(&out_lock);
    if (pool_index >= 0)
        printf("accepted %d by %d\n", atomic_fetch_add(&seen, 1) + 1, pool_index);
    else
        printf("accepted %d\n", atomic_fetch_add(&seen, 1) + 1);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    if (write(c, "hi\n", 3) != 3) {
        close(c);
        return;
    }
    char buf[4096];
    while (read(c, buf, sizeof buf) > 0)
        ;
    close(c);
}

static void *conn_thread(void *arg)
{
    serve((int) (long) arg);
    return NULL;
}

static void *pool_thread(void *arg)
{
    pool_index = (int) (long) arg;
    for (;;) {
        int c = accept(lsock, NULL, NULL);
        if (c >= 0)
            serve(c);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    lsock = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lsock, (struct sockaddr *) &a, sizeof a) != 0 || listen(lsock, 128) != 0) {
        perror("listen");
        return 1;
    }
    if (argc > 2) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            pthread_t t;
            pthread_create(&t, NULL, pool_thread, (void *) (long) i);
        }
        for (;;)
            pause();
    }
    for (;;) {
        int c = accept(lsock, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        pthread_create(&t, NULL, conn_thread, (void *) (long) c);
        pthread_detach(t);
    }
}
