/* fwd_fortified.c — built like a distribution's programs (-O2
 * -D_FORTIFY_SOURCE=2), so the compiler sends its calls to glibc's checked
 * entry points (__read_chk, __open_2, __poll_chk, __fread_chk...). Each is
 * called once; the test checks that every one binds to libsluice.so. Sizes and
 * flags come from the environment, so that nothing is known at compile time. */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    (void) argc;
    (void) argv;
    char buf[128];
    const char *size_text = getenv("FORTIFIED_SIZE");   /* unset: 16 */
    size_t want = strtoul(size_text != NULL ? size_text : "16", NULL, 10);
    int flags = (int) strtol(getenv("FORTIFIED_FLAGS") != NULL ? getenv("FORTIFIED_FLAGS") : "0",
                             NULL, 10) & O_ACCMODE;
    int bad = 0;

    int zero = open("/dev/zero", flags);                     /* __open_2 */
    bad |= zero < 0;
    bad |= read(zero, buf, want) != (ssize_t) want;          /* __read_chk */
    bad |= pread(zero, buf, want, 0) != (ssize_t) want;      /* __pread_chk */
    int null = openat(AT_FDCWD, "/dev/null", flags);         /* __openat_2 */
    bad |= null < 0;

    int sv[2];
    bad |= socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0;
    bad |= send(sv[0], "hello, world, hello, world!", 27, 0) != 27;
    bad |= recv(sv[1], buf, want, 0) != (ssize_t) want;     /* __recv_chk */
    bad |= recvfrom(sv[1], buf, want, 0, NULL, NULL) != (ssize_t) (27 - want);  /* __recvfrom_chk */

    struct pollfd fds[2] = { { sv[0], POLLOUT, 0 }, { zero, POLLIN, 0 } };
    nfds_t nfds = (nfds_t) (want / 8);
    bad |= poll(fds, nfds, 0) != 2;                          /* __poll_chk */
    struct timespec zero_ts = { 0, 0 };
    bad |= ppoll(fds, nfds, &zero_ts, NULL) != 2;            /* __ppoll_chk */

    FILE *f = fopen("/dev/zero", "r");
    bad |= f == NULL;
    bad |= fread(buf, 1, want, f) != want;                   /* __fread_chk */
    bad |= fgets(buf, (int) want, f) == NULL;                /* __fgets_chk */
    fclose(f);

    char path[] = "/tmp/sluice-fortified-XXXXXX";
    int tmp = mkstemp(path);
    close(tmp);
    tmp = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);     /* open, with a mode */
    bad |= write(tmp, "data", 4) != 4;
    close(tmp);
    unlink(path);

    close(zero);
    close(null);
    close(sv[0]);
    close(sv[1]);
    fprintf(stdout, "fortified %s\n", bad ? "FAILED" : "ok"); /* __fprintf_chk */
    return bad;
}
