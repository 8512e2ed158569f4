/* flood_client.c PORT TOTAL CONCURRENT — opens TOTAL connections to
 * 127.0.0.1:PORT, at most CONCURRENT at a time; each sends an HTTP request
 * with a 4 KiB body and reads until the server closes. Prints
 * "answered A reset R other O" where answered counts full "HTTP/1.1 503"
 * answers carrying Retry-After. Gives up after 60 s. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

struct conn { int fd; size_t got; char buf[1024]; };

static char request[4096 + 128];
static size_t request_len;

static int open_one(int port)
{
    int s = peer_connect(port);
    if (s < 0)
        return -1;
    /* Blocking send of a small request: loopback takes it whole. */
    if (send(s, request, request_len, MSG_NOSIGNAL) != (ssize_t) request_len) {
        close(s);
        return -1;
    }
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    int port = atoi(argv[1]), total = atoi(argv[2]), conc = atoi(argv[3]);
    char body[4096];
    memset(body, 'x', sizeof body);
    request_len = (size_t) snprintf(request, sizeof request,
                                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", sizeof body);
    memcpy(request + request_len, body, sizeof body);
    request_len += sizeof body;
    struct conn *cs = calloc((size_t) conc, sizeof *cs);
    struct pollfd *pfd = calloc((size_t) conc, sizeof *pfd);
    for (int i = 0; i < conc; i++)
        cs[i].fd = -1;
    int started = 0, answered = 0, reset = 0, other = 0, done = 0;
    time_t end = time(NULL) + 60;
    while (done < total && time(NULL) < end) {
        for (int i = 0; i < conc && started < total; i++)
            if (cs[i].fd < 0) {
                cs[i].fd = open_one(port);
                cs[i].got = 0;
                started++;
                if (cs[i].fd < 0) {
                    other++;
                    done++;
                }
            }
        for (int i = 0; i < conc; i++) {
            pfd[i].fd = cs[i].fd;
            pfd[i].events = POLLIN;
        }
        if (poll(pfd, (nfds_t) conc, 1000) < 0)
            continue;
        for (int i = 0; i < conc; i++) {
            if (cs[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(cs[i].fd, cs[i].buf + cs[i].got, sizeof cs[i].buf - 1 - cs[i].got, 0);
            if (n > 0) {
                cs[i].got += (size_t) n;
                if (cs[i].got < sizeof cs[i].buf - 1)
                    continue;
            }
            cs[i].buf[cs[i].got] = '\0';
            if (n < 0 && errno == ECONNRESET)
                reset++;
            else if (strncmp(cs[i].buf, "HTTP/1.1 503", 12) == 0 && strstr(cs[i].buf, "Retry-After:") != NULL)
                answered++;
            else
                other++;
            close(cs[i].fd);
            cs[i].fd = -1;
            done++;
        }
    }
    printf("answered %d reset %d other %d\n", answered, reset, other);
    return 0;
}
