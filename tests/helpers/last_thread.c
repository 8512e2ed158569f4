/* last_thread.c — a program whose last thread ends by pthread_exit rather than
 * by exit: glibc then ends the process (exit(0)) as that thread goes.
 *   main    main() calls pthread_exit while a worker still runs; the worker
 *           returns later, the last of the program's threads.
 *   forked  a worker thread forks; in the child that thread (its only one)
 *           returns, as Python's os.fork() from a thread does; the parent
 *           waits for the child and reports its status.
 * Prints its pid (and the child's) first, so a test can find their stats files. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
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

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "main";
    printf("pid %d\n", (int) getpid());
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, strcmp(mode, "forked") == 0 ? forking_worker : late_worker,
                       NULL) != 0)
        return 2;
    pthread_exit(NULL);
}
