/* memory_server.c PORT MIB MS — a memory-bound HTTP service: one thread per
 * connection; each request maps MIB MiB, touches every page, holds it MS
 * milliseconds, unmaps it, answers 200 and closes. Too many at once and its
 * memory cgroup's limit kills it. Prints "listening" once ready. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"

static size_t bytes;
static unsigned hold_us;

static void *serve(void *arg)
{
    int c = (int) (intptr_t) arg;
    char buf[2048];
    size_t got = peer_read_request(c, buf, sizeof buf);
    if (got > 0) {
        char *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            memset(m, 1, bytes);
            usleep(hold_us);
            munmap(m, bytes);
        }
        static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        if (write(c, answer, sizeof answer - 1) < 0)
            perror("write");
    }
    close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: memory_server PORT MIB MS\n");
        return 2;
    }
    bytes = (size_t) atoi(argv[2]) << 20;
    hold_us = (unsigned) atoi(argv[3]) * 1000u;
    signal(SIGPIPE, SIG_IGN);
    int l = peer_listen(atoi(argv[1]), 128);
    if (l < 0)
        return 1;
    peer_thread_per_connection(l, serve);
}
