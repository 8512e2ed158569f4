/* unsent.c — unsent bytes through `ss -tni`, once or sampled on a thread (see
 * unsent.h). */
#include <criterion/criterion.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "testlib.h"
#include "unsent.h"

long unsent_ss(const char *filter)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "ss -tniH state established %s 2>/dev/null", filter);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return -1;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    pclose(f);
    const char *p = strstr(buf, "notsent:");
    return p != NULL ? atol(p + 8) : 0;
}

static void *sample_loop(void *arg)
{
    struct unsent_sampler *sm = arg;
    while (!atomic_load(&sm->stop)) {
        long unsent = -1;
        if (sm->filter[0] != '\0') {
            unsent = unsent_ss(sm->filter);
        } else {
            int q = 0;
            if (ioctl(sm->fd, SIOCINQ, &q) == 0)
                unsent = q;
        }
        if (unsent > atomic_load(&sm->max))
            atomic_store(&sm->max, unsent);
        t_sleep_ms(20);
    }
    return NULL;
}

void unsent_sampler_start(struct unsent_sampler *sm, const char *filter, int fd)
{
    snprintf(sm->filter, sizeof sm->filter, "%s", filter != NULL ? filter : "");
    sm->fd = fd;
    atomic_store(&sm->stop, false);
    atomic_store(&sm->max, 0);
    cr_assert_eq(pthread_create(&sm->thread, NULL, sample_loop, sm), 0);
}

long unsent_sampler_stop(struct unsent_sampler *sm)
{
    atomic_store(&sm->stop, true);
    pthread_join(sm->thread, NULL);
    return atomic_load(&sm->max);
}
