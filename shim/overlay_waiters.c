/* overlay_waiters.c — the eventfds of the threads waiting in a rewritten poll
 * or select (overlay_poll.c): each thread has one (made on first need, closed
 * when the thread ends), registered while it waits; every unhide (overlay.c)
 * writes to each registered one, so the waiter looks again. */
#include "real.h"

#include "overlay.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>

#include "fdtab.h"

#define MAX_WAITERS 128
static _Atomic int waiter_efd[MAX_WAITERS];   /* eventfd + 1 of a thread waiting now */
static __thread int my_efd = -1;
static pthread_key_t efd_key;
static pthread_once_t efd_key_once = PTHREAD_ONCE_INIT;

static void close_thread_efd(void *p)
{
    int fd = (int) (intptr_t) p - 1;
    if (fd >= 0)
        fdtab_close_own(fd);
}

static void make_key(void)
{
    pthread_key_create(&efd_key, close_thread_efd);
}

static int thread_efd(void)
{
    if (my_efd < 0) {
        my_efd = REAL(eventfd)(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (my_efd >= 0) {
            fdtab_own(my_efd);
            pthread_once(&efd_key_once, make_key);
            pthread_setspecific(efd_key, (void *) (intptr_t) (my_efd + 1));
        }
    }
    return my_efd;
}

void overlay_wake_waiters(void)
{
    uint64_t one = 1;
    for (int i = 0; i < MAX_WAITERS; i++) {
        int v = atomic_load(&waiter_efd[i]);
        if (v != 0)
            KEEP_ERRNO((void) !REAL(write)(v - 1, &one, sizeof one));
    }
}

static int waiter_register(int efd)
{
    if (efd < 0)
        return -1;
    for (int i = 0; i < MAX_WAITERS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&waiter_efd[i], &expected, efd + 1))
            return i;
    }
    return -1;
}

int overlay_waiter_begin(int *efd)
{
    *efd = thread_efd();
    return waiter_register(*efd);
}

void overlay_waiter_end(int slot)
{
    if (slot >= 0)
        atomic_store(&waiter_efd[slot], 0);
}

int overlay_waiter_renew(int slot, int *efd)
{
    overlay_waiter_end(slot);
    my_efd = -1;
    return overlay_waiter_begin(efd);
}

void overlay_waiters_atfork_child(void)
{
    for (int i = 0; i < MAX_WAITERS; i++)
        atomic_store(&waiter_efd[i], 0);
    if (my_efd >= 0) {
        fdtab_close_own(my_efd);
        my_efd = -1;
        pthread_once(&efd_key_once, make_key);
        pthread_setspecific(efd_key, NULL);
    }
}
