/* conn_cost.c — N accept+close cycles in one process, for counting what one
 * costs (instructions under callgrind, system calls under strace -c): a
 * client connects to a loopback listener, the listener accepts, both close.
 *
 *   conn_cost N */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 16) != 0
        || getsockname(l, (struct sockaddr *) &a, &len) != 0) {
        perror("listen");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *) &a, sizeof a) != 0) {
            perror("connect");
            return 1;
        }
        int s = accept(l, NULL, NULL);
        if (s < 0) {
            perror("accept");
            return 1;
        }
        close(s);
        close(c);
    }
    printf("cycles %d\n", n);
    return 0;
}
