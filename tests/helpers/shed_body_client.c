/* shed_body_client.c PORT CLIENTS BYTES SECONDS POSTS — CLIENTS threads, each
 * posting up to POSTS requests one after another, each with a body of BYTES
 * sent as fast as the server takes it, then reading the answer until the server
 * closes. Stops after SECONDS. Prints "posts P answered A reset R sent S":
 * answered counts posts whose answer began "HTTP/1.1 503"; reset, posts that
 * ended in a reset; sent, body bytes the kernel took in all. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

static int port, posts_each;
static long long body_bytes;
static time_t end;
static _Atomic long long posts, answered, resets, sent;
static char chunk[262144];

static void post_once(void)
{
    int s = peer_connect(port);
    if (s < 0)
        return;
    struct timeval tv = { 3, 0 };
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char head[128];
    int hl = snprintf(head, sizeof head, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %lld\r\n\r\n", body_bytes);
    bool reset = false;
    if (send(s, head, (size_t) hl, MSG_NOSIGNAL) != hl)
        reset = true;
    long long left = body_bytes;
    while (!reset && left > 0 && time(NULL) < end) {
        size_t n = left < (long long) sizeof chunk ? (size_t) left : sizeof chunk;
        ssize_t w = send(s, chunk, n, MSG_NOSIGNAL);
        if (w <= 0) {
            reset = w < 0 && (errno == ECONNRESET || errno == EPIPE);
            break;
        }
        left -= w;
        atomic_fetch_add(&sent, w);
    }
    char ans[1024];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof ans - 1 && (r = recv(s, ans + got, sizeof ans - 1 - got, 0)) > 0)
        got += (size_t) r;
    if (got < sizeof ans - 1 && r < 0 && errno == ECONNRESET)
        reset = true;
    ans[got] = '\0';
    atomic_fetch_add(&posts, 1);
    if (strncmp(ans, "HTTP/1.1 503", 12) == 0)
        atomic_fetch_add(&answered, 1);
    if (reset)
        atomic_fetch_add(&resets, 1);
    close(s);
}

static void *client(void *arg)
{
    (void) arg;
    for (int i = 0; i < posts_each && time(NULL) < end; i++)
        post_once();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return 2;
    port = atoi(argv[1]);
    int clients = atoi(argv[2]);
    body_bytes = atoll(argv[3]);
    end = time(NULL) + atoi(argv[4]);
    posts_each = atoi(argv[5]);
    memset(chunk, 'x', sizeof chunk);
    pthread_t t[64];
    if (clients > 64)
        clients = 64;
    for (int i = 0; i < clients; i++)
        pthread_create(&t[i], NULL, client, NULL);
    for (int i = 0; i < clients; i++)
        pthread_join(t[i], NULL);
    printf("posts %lld answered %lld reset %lld sent %lld\n", posts, answered, resets, sent);
    return 0;
}
