/* unsent.h — how many bytes a TCP socket holds unsent, watched from outside
 * through `ss -tni` (the kernel's notsent count), once or sampled on a thread. */
#ifndef SLUICE_TEST_UNSENT_H
#define SLUICE_TEST_UNSENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

/* Unsent bytes of the established TCP socket that `ss -tniH state established
 * FILTER` shows (0 when it shows no notsent field, -1 if ss cannot run). */
long unsent_ss(const char *filter);

/* Samples every 20 ms on its own thread, so that a slow `ss` on a busy machine
 * never slows the reader it watches. */
struct unsent_sampler {
    pthread_t thread;
    char filter[64];   /* ss filter; "" to read fd's unread queue (SIOCINQ) instead */
    int fd;
    _Atomic bool stop;
    _Atomic long max;
};

/* Starts sampling: through ss with filter, or (filter NULL) fd's own unread
 * queue, for a UNIX socket's reader. */
void unsent_sampler_start(struct unsent_sampler *sm, const char *filter, int fd);
/* Stops the thread; the most seen unsent at any sample. */
long unsent_sampler_stop(struct unsent_sampler *sm);

#endif
