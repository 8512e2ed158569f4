/* hostile_server.c PORT closeall|emfile — an epoll server that does what
 * careless or hostile programs do while sluice has its listener paused.
 *   closeall: on SIGUSR1, close every descriptor from 3 up (close_range, the
 *             way daemons and pre-exec code do, sluice's own included), then
 *             open the listener again on the same port and carry on.
 *   emfile:   first use up every descriptor the limit allows but a few, so
 *             the process lives at the edge of EMFILE.
 * Greets each connection with "hi\n", holds it until the client closes, and
 * prints "accepted N" / "reopened" / "emfile" lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t close_all_now;

static void on_usr1(int sig)
{
    (void) sig;
    close_all_now = 1;
}

static int open_listener(int port, int *ep)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 128) != 0) {
        perror("listen");
        exit(1);
    }
    *ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
    if (epoll_ctl(*ep, EPOLL_CTL_ADD, l, &ev) != 0)
        exit(1);
    return l;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    int port = atoi(argv[1]);
    int emfile = strcmp(argv[2], "emfile") == 0;
    struct sigaction sa = { .sa_handler = on_usr1 };
    sigaction(SIGUSR1, &sa, NULL);
    int ep, l = open_listener(port, &ep), seen = 0;
    if (emfile) {
        /* Fill the table up to a limit of 64, then give back the 4 highest:
         * room for a few connections and nothing more. */
        struct rlimit rl = { 64, 64 };
        setrlimit(RLIMIT_NOFILE, &rl);
        int taken = 0;
        while (open("/dev/null", O_RDONLY) >= 0)
            taken++;
        for (int fd = 63; fd >= 60; fd--)
            close(fd);
        printf("emfile %d\n", taken - 4);
        fflush(stdout);
    }
    for (;;) {
        if (close_all_now) {
            close_all_now = 0;
            close_range(3, ~0U, 0);
            l = open_listener(port, &ep);
            printf("reopened\n");
            fflush(stdout);
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
                if (c < 0)
                    continue;
                printf("accepted %d\n", ++seen);
                fflush(stdout);
                if (write(c, "hi\n", 3) < 0)
                    perror("write");
                struct epoll_event cev = { .events = EPOLLIN, .data.fd = c };
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
            } else {
                char buf[256];
                ssize_t r = read(fd, buf, sizeof buf);
                if (r == 0 || (r < 0 && errno != EAGAIN))
                    close(fd);
            }
        }
    }
}
