/* test_connhost.c — shim/connhost.c and connhost_watch.c on their own: the
 * shared budget's count and slot table under concurrent reserves and
 * releases, and a connection that crosses a fork: FORKED, then WATCHED at its
 * holder's release, freed once the kernel no longer knows the socket. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connhost.h"
#include "fshost.h"

static char key[64], path[160];

static void budget_of_four(void)
{
    static int serial;
    snprintf(key, sizeof key, "unit-%d-%d", (int) getpid(), serial++);
    snprintf(path, sizeof path, FSHOST_DIR_FMT "/" CONNHOST_FILE_FMT, (unsigned) getuid(), key);
    uint32_t limit = 0;
    cr_assert_eq(connhost_init(4, key, &limit), 0);
    cr_assert_eq(limit, 4);
}

static void remove_budget(void)
{
    unlink(path);
}

TestSuite(connhost, .init = budget_of_four, .fini = remove_budget);

Test(connhost, no_more_slots_than_the_limit_and_each_slot_once)
{
    int64_t s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = connhost_reserve();
        cr_assert_geq(s[i], 0);
        for (int j = 0; j < i; j++)
            cr_assert_neq(s[i], s[j]);
    }
    cr_assert_eq(connhost_reserve(), -1);
    cr_assert_eq(connhost_in_use(), 4);
    cr_assert_eq(connhost_untake((uint32_t) s[2]), 4, "the count before");
    cr_assert_eq(connhost_reserve(), s[2]);
    for (int i = 0; i < 4; i++)
        connhost_untake((uint32_t) s[i]);
    cr_assert_eq(connhost_in_use(), 0);
}

static _Atomic int held_now, held_most;
static _Atomic uint32_t owner[4];

static void *churn(void *arg)
{
    (void) arg;
    for (int i = 0; i < 20000; i++) {
        int64_t s = connhost_reserve();
        if (s < 0)
            continue;
        /* Nobody else holds this slot now. */
        uint32_t zero = 0;
        cr_assert(atomic_compare_exchange_strong(&owner[s], &zero, 1), "slot %ld given twice", (long) s);
        int now = atomic_fetch_add(&held_now, 1) + 1;
        int most = atomic_load(&held_most);
        while (now > most && !atomic_compare_exchange_weak(&held_most, &most, now))
            ;
        atomic_fetch_sub(&held_now, 1);
        atomic_store(&owner[s], 0);
        connhost_untake((uint32_t) s);
    }
    return NULL;
}

Test(connhost, concurrent_reserves_never_exceed_the_limit_nor_leak)
{
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    cr_assert_leq(atomic_load(&held_most), 4);
    cr_assert_eq(connhost_in_use(), 0, "%u slots leaked", connhost_in_use());
}

Test(connhost, a_forked_connection_is_watched_until_its_socket_is_gone)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    cr_assert_eq(bind(l, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(l, 4), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *) &a, &len), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(c, (struct sockaddr *) &a, sizeof a), 0);
    int s = accept(l, NULL, NULL);
    cr_assert_geq(s, 0);
    int64_t slot = connhost_reserve();
    cr_assert_geq(slot, 0);
    connhost_mark_forked((uint32_t) slot, s);
    /* Another descriptor of the socket lives on (as a child's would). */
    int kept = dup(s);
    connhost_untake((uint32_t) slot);
    cr_assert_eq(connhost_in_use(), 1, "a forked connection's slot was freed at its holder's release");
    connhost_watch();
    cr_assert_eq(connhost_in_use(), 1, "freed while another descriptor holds the socket");
    close(s);
    close(kept);
    connhost_watch();
    cr_assert_eq(connhost_in_use(), 0, "still held after the socket's last close");
    close(c);
    close(l);
}

/* The mapping as another member sees it. */
static struct connhost_state *map_state(void)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    void *m = mmap(NULL, (size_t) sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    cr_assert_neq(m, MAP_FAILED);
    return m;
}

static pid_t a_dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

/* A member killed with two slots: given back at the next check. */
Test(connhost, a_dead_members_slots_come_back_at_the_next_check)
{
    int64_t mine = connhost_reserve();
    cr_assert_geq(mine, 0);
    struct connhost_state *st = map_state();
    struct connhost_holder *h = &st->holders[CONNHOST_NHOLDERS - 1];
    uint32_t idx = CONNHOST_NHOLDERS;   /* its index + 1 */
    int taken = 0;
    for (uint32_t s = 0; s < st->limit && taken < 2; s++) {
        uint32_t zero = 0;
        if (atomic_compare_exchange_strong(&st->slots[s].own, &zero, idx))
            taken++;
    }
    atomic_fetch_add(&st->count, 2);
    h->start = 0;
    atomic_store(&h->word, 2);
    atomic_store(&h->pid, a_dead_pid());
    cr_assert_eq(connhost_in_use(), 3);
    atomic_store(&st->last_check, 0);
    connhost_tick(UINT64_MAX / 2);
    cr_assert_eq(connhost_in_use(), 1, "%u in use after the check", connhost_in_use());
    cr_assert_eq(atomic_load(&h->pid), 0, "the dead member's record stayed");
}

/* A member killed between its two updates (its count taken, no slot claimed
 * yet): the count is ambiguous, and recounted from the slot table. */
Test(connhost, a_member_dead_between_its_two_updates_is_recounted)
{
    int64_t mine = connhost_reserve();
    cr_assert_geq(mine, 0);
    struct connhost_state *st = map_state();
    struct connhost_holder *h = &st->holders[CONNHOST_NHOLDERS - 1];
    atomic_fetch_add(&st->count, 3);          /* one claimed below, one half-way, one lost */
    uint32_t zero = 0;
    uint32_t s = (uint32_t) (mine + 1) % st->limit;
    cr_assert(atomic_compare_exchange_strong(&st->slots[s].own, &zero, CONNHOST_NHOLDERS));
    h->start = 0;
    atomic_store(&h->word, CONNHOST_HIGH_ONE + 2);
    atomic_store(&h->pid, a_dead_pid());
    cr_assert_eq(connhost_in_use(), 4);
    cr_assert_eq(connhost_reserve(), -1);
    atomic_store(&st->last_check, 0);
    connhost_tick(UINT64_MAX / 2);
    cr_assert_eq(connhost_in_use(), 1, "%u in use after the recount", connhost_in_use());
    cr_assert_geq(connhost_reserve(), 0);
}

/* --- the limit in force (SLUICE_CONN_MAX=auto moves it) -------------------- */

static _Atomic int sleeper_result = -1;

static void *sleep_for_a_slot(void *arg)
{
    (void) arg;
    int64_t s;
    while ((s = connhost_reserve()) < 0)
        (void) connhost_sleep(0, false);
    atomic_store(&sleeper_result, (int) s);
    return NULL;
}

/* A raise of the limit in force admits sleepers at once, with no release:
 * the raise itself wakes them (the periodic look every CONNHOST_CHECK_NS
 * would, later). A cut admits nobody until slots are released below it. */
Test(connhost, a_raise_of_the_limit_in_force_wakes_a_sleeper_and_a_cut_holds)
{
    struct connhost_state *st = map_state();
    connhost_set_limit(1);
    cr_assert_eq(connhost_limit(), 1);
    int64_t first = connhost_reserve();
    cr_assert_geq(first, 0);
    cr_assert_eq(connhost_reserve(), -1, "a second slot under a limit of 1");
    pthread_t t;
    pthread_create(&t, NULL, sleep_for_a_slot, NULL);
    /* Wait (bounded) until the thread sleeps: counted as a sleeper. */
    for (int i = 0; i < 5000 && CONNHOST_HIGH(atomic_load(&st->count)) == 0; i++)
        usleep(1000);
    cr_assert_neq(CONNHOST_HIGH(atomic_load(&st->count)), 0, "the thread never slept");
    /* The thread may be between two of its periodic looks: count one more
     * sleeper for the moment of the raise, so that it must wake. */
    atomic_fetch_add(&st->count, CONNHOST_HIGH_ONE);
    uint32_t wake_before = atomic_load(&st->wake);
    connhost_set_limit(2);
    uint32_t wake_after = atomic_load(&st->wake);
    atomic_fetch_sub(&st->count, CONNHOST_HIGH_ONE);
    cr_assert_neq(wake_after, wake_before, "the raise woke nobody");
    pthread_join(t, NULL);
    int64_t second = atomic_load(&sleeper_result);
    cr_assert_geq(second, 0);
    cr_assert_neq(second, first);
    /* A cut below the slots in use: nothing is taken away, nothing admitted
     * until two are released. */
    connhost_set_limit(1);
    cr_assert_eq(connhost_reserve(), -1);
    connhost_untake((uint32_t) first);
    cr_assert_eq(connhost_reserve(), -1, "admitted at the limit after a cut");
    connhost_untake((uint32_t) second);
    int64_t again = connhost_reserve();
    cr_assert_geq(again, 0);
    connhost_untake((uint32_t) again);
    /* Past the slots the file has, a raise stops at them. */
    connhost_set_limit(99);
    cr_assert_eq(connhost_limit(), 4);
}
