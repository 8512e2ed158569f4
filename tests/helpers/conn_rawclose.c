/* conn_rawclose.c PORT — accepts one connection, closes it with a raw system
 * call instruction (as io_uring or a static library would: no libc wrapper
 * sees it), then blocks in accept for the next one. Prints
 * "second ms=T" when the second accept returns. x86-64 only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void raw_close(int fd)
{
#ifdef __x86_64__
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"((long) SYS_close), "D"((long) fd) : "rcx", "r11", "memory");
    (void) ret;
#else
    close(fd);
#endif
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 16) != 0)
        return 1;
    int c = accept(l, NULL, NULL);
    if (c < 0)
        return 1;
    raw_close(c);
    long t0 = now_ms();
    int d = accept(l, NULL, NULL);
    printf("second %s ms=%ld\n", d >= 0 ? "ok" : "failed", now_ms() - t0);
    fflush(stdout);
    return 0;
}
