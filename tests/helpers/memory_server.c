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

static size_t bytes;
static unsigned hold_us;

static void *serve(void *arg)
{
    int c = (int) (intptr_t) arg;
    char buf[2048];
    size_t got = 0;
    while (got < sizeof buf - 1) {
        ssize_t n = read(c, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t) n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
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
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 128) != 0) {
        perror("bind/listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *) (intptr_t) c) != 0)
            close(c);
    }
}
