/* stats_creds.c — a server whose stats file outlives what happens to its
 * process: a credential drop, or an exec'd child.
 *   stats_creds drop PORT UID GID   listen on 127.0.0.1:PORT; accept and close
 *       one connection; drop to UID/GID (setgroups, setresgid, setresuid, the
 *       way nginx and apache workers do, after start-up) and print "dropped";
 *       then accept and close connections until stopped.
 *   stats_creds exec PORT           listen; accept 3 connections and keep them
 *       open; print "holding"; run /bin/sleep 0.8 (fork and exec) and wait for
 *       it; print "done" and exit. */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int listen_on(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *) &a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("listen");
        exit(1);
    }
    return s;
}

static int drop(int port, uid_t uid, gid_t gid)
{
    int s = listen_on(port);
    printf("listening\n");
    fflush(stdout);
    int c = accept(s, NULL, NULL);
    if (c >= 0)
        close(c);
    if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
        perror("drop");
        return 1;
    }
    printf("dropped\n");
    fflush(stdout);
    for (;;) {
        c = accept(s, NULL, NULL);
        if (c >= 0)
            close(c);
    }
}

static int exec_child(int port)
{
    int s = listen_on(port);
    printf("listening\n");
    fflush(stdout);
    for (int i = 0; i < 3; i++)
        if (accept(s, NULL, NULL) < 0)
            return 1;
    printf("holding\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sleep", "sleep", "0.8", (char *) NULL);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 1;
    printf("done\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "drop") == 0)
        return drop(atoi(argv[2]), (uid_t) atoi(argv[3]), (gid_t) atoi(argv[4]));
    if (argc == 3 && strcmp(argv[1], "exec") == 0)
        return exec_child(atoi(argv[2]));
    fprintf(stderr, "usage: stats_creds drop PORT UID GID | exec PORT\n");
    return 2;
}
