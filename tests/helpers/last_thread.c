/* last_thread.c — a program whose last thread ends by pthread_exit rather than
 * by exit: glibc then ends the process (exit(0)) as that thread goes.
 *   main    main() calls pthread_exit while a worker still runs; the worker
 *           returns later, the last of the program's threads.
 *   forked  a worker thread forks; in the child that thread (its only one)
 *           returns, as Python's os.fork() from a thread does; the parent
 *           waits for the child and reports its status.
 *   shed    first makes the connection gate start its own thread (with
 *           SLUICE_CONN_MAX=1 SLUICE_CONN_MODE=shed: a second connection to
 *           itself is shed), then as "main".
 * Prints its pid (and the child's) first, so a test can find their stats files. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *late_worker(void *arg)
{
    (void) arg;
    struct timespec ts = { 0, 200 * 1000000L };
    nanosleep(&ts, NULL);
    return NULL;
}

static void *forking_worker(void *arg)
{
    (void) arg;
    pid_t child = fork();
    if (child == 0)
        return NULL;   /* the child's only thread ends here */
    printf("child %d\n", (int) child);
    fflush(stdout);
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child)
        _exit(3);
    printf("child status %d\n", status);
    fflush(stdout);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 4);
}

/* Two connections to a listener of our own: with one slot, the second is shed. */
static void shed_one(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(l, (struct sockaddr *) &a, sizeof a) != 0 || listen(l, 8) != 0
        || getsockname(l, (struct sockaddr *) &a, &len) != 0)
        _exit(5);
    int c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c1, (struct sockaddr *) &a, sizeof a) != 0 || accept(l, NULL, NULL) < 0
        || connect(c2, (struct sockaddr *) &a, sizeof a) != 0)
        _exit(6);
    /* Non-blocking, so that under the gate this accept sheds c2 and says EAGAIN. */
    int flags = 1;
    ioctl(l, FIONBIO, &flags);
    int c = accept(l, NULL, NULL);
    char buf[64];
    if (c >= 0)
        close(c);   /* bare: nothing was shed */
    else if (recv(c2, buf, sizeof buf, 0) <= 0)
        _exit(7);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "main";
    if (strcmp(mode, "shed") == 0)
        shed_one();
    printf("pid %d\n", (int) getpid());
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, strcmp(mode, "forked") == 0 ? forking_worker : late_worker,
                       NULL) != 0)
        return 2;
    pthread_exit(NULL);
}
