/* clients.h — the clients a connection-gate test holds against a server
 * (connect them all, see which are answered, close them), and the server's
 * CPU while they wait. Shared by the conn and servers suites. */
#ifndef SLUICE_TEST_CLIENTS_H
#define SLUICE_TEST_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define NCLIENTS 40

struct clients {
    int fd[NCLIENTS];
    bool served[NCLIENTS];
    int nserved;
};

/* Connects NCLIENTS clients to 127.0.0.1:port, each sending request (if not NULL). */
void clients_connect_all(struct clients *c, int port, const char *request);
/* The same with a request of len bytes (which may hold NUL bytes). */
void clients_connect_len(struct clients *c, int port, const char *request, size_t len);
/* Reads answers for up to ms, returning early once `target` clients are
 * served. With answer not NULL every answer must start as it does and a close
 * without an answer fails the test; with NULL any bytes count as an answer. */
int clients_collect(struct clients *c, int target, int ms, const char *answer);
/* Closes the first served client still open (one slot comes free). */
void clients_close_one_served(struct clients *c);
/* Closes the served clients still open. */
void clients_close_served(struct clients *c);
/* Closes every client still open. */
void clients_close_all(struct clients *c);
/* CPU ticks of pid and of all its descendants (nginx's workers, postgres's
 * backends), and how many processes that is. */
long tree_ticks(pid_t pid);
int tree_size(pid_t pid);

#endif
