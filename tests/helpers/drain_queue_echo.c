/* drain_queue_echo — a threaded echo server with an unbounded queue: one thread
 * reads (blocking) and queues what it read, another writes the queue back
 * (blocking). A peer that sends but does not read grows the queue without
 * limit, unless reads are held. Serves one connection on 127.0.0.1:PORT.
 * With a SIGALRM handler installed without SA_RESTART (argv[2] = "alarm"),
 * the reader reports each EINTR on stderr. Usage: drain_queue_echo PORT [alarm] */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct chunk {
    struct chunk *next;
    size_t len;
    char data[];
};

static struct chunk *head, *tail;
static int reader_done;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static int conn;

static void on_alarm(int sig)
{
    (void) sig;
}

static void *reader(void *arg)
{
    (void) arg;
    for (;;) {
        struct chunk *c = malloc(sizeof *c + 65536);
        ssize_t n = read(conn, c->data, 65536);
        if (n < 0 && errno == EINTR) {
            free(c);
            fputs("EINTR\n", stderr);
            continue;
        }
        if (n <= 0) {
            free(c);
            break;
        }
        c->len = (size_t) n;
        c->next = NULL;
        pthread_mutex_lock(&lock);
        if (tail != NULL)
            tail->next = c;
        else
            head = c;
        tail = c;
        pthread_cond_signal(&more);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    reader_done = 1;
    pthread_cond_signal(&more);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (argc > 2 && strcmp(argv[2], "alarm") == 0) {
        struct sigaction sa = { .sa_handler = on_alarm };  /* no SA_RESTART */
        sigaction(SIGALRM, &sa, NULL);
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (bind(ls, (struct sockaddr *) &a, sizeof a) != 0 || listen(ls, 1) != 0) {
        perror("listen");
        return 1;
    }
    conn = accept(ls, NULL, NULL);
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    for (;;) {
        pthread_mutex_lock(&lock);
        while (head == NULL && !reader_done)
            pthread_cond_wait(&more, &lock);
        struct chunk *c = head;
        if (c != NULL) {
            head = c->next;
            if (head == NULL)
                tail = NULL;
        }
        pthread_mutex_unlock(&lock);
        if (c == NULL)
            break;
        for (size_t off = 0; off < c->len;) {
            ssize_t n = write(conn, c->data + off, c->len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return 1;
            off += (size_t) n;
        }
        free(c);
    }
    shutdown(conn, SHUT_WR);
    pthread_join(t, NULL);
    return 0;
}
