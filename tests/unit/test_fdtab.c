/* test_fdtab.c — shim/fdtab.c on its own: kinds, a number born again, dup,
 * forget and restore, accept, fork; the gates it tells through its hooks. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "fdtab.h"

static uint32_t released[8], duped[8];
static int nreleased, nduped, accepted_fd = -1;

static bool governs_all(int fd) { (void) fd; return true; }
static void on_released(uint32_t c) { released[nreleased++ % 8] = c; }
static void on_duped(uint32_t c) { duped[nduped++ % 8] = c; }
static void on_accepted(int fd) { accepted_fd = fd; }

static void hooks(void)
{
    atomic_store(&sluice_gates, GATE_CONN);
    fdtab_hook_conn(governs_all, on_released, on_duped);
    fdtab_hook_drain(on_accepted, NULL);
}

TestSuite(fdtab, .init = hooks);

Test(fdtab, kinds_of_files_pipes_sockets_and_listeners)
{
    char path[] = "/tmp/sluice-fdtab-XXXXXX";
    int f = mkstemp(path);
    unlink(path);
    int p[2], s[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(bind(l, (struct sockaddr *) &a, sizeof a), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(fdtab_kind(f), FD_FILE);
    cr_assert_eq(fdtab_kind(p[0]), FD_OTHER);
    cr_assert_eq(fdtab_kind(s[0]), FD_STREAM);
    cr_assert_eq(fdtab_kind(l), FD_LISTENER);
    cr_assert(atomic_load(&fdtab_peek(l)->flags) & FDF_GOVERNED, "the conn hook governs it");
    cr_assert(atomic_load(&fdtab_peek(l)->flags) & FDF_TCP);
    cr_assert_eq(fdtab_kind_fast(f), FD_FILE, "the inline look-up agrees");
    cr_assert_eq(fdtab_kind(-1), FD_UNKNOWN);
}

Test(fdtab, a_number_born_again_forgets_everything_and_releases_its_slot)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct fdent *e = fdtab_get(p[0]);
    cr_assert_not_null(e);
    (void) fdtab_kind(p[0]);
    atomic_store(&e->conn, 5);
    fdtab_reborn(p[0]);
    cr_assert_eq(nreleased, 1);
    cr_assert_eq(released[0], 5);
    cr_assert_eq(atomic_load(&e->kind), FD_UNKNOWN);
    cr_assert_eq(atomic_load(&e->conn), 0);
    fdtab_reborn(p[0]);
    cr_assert_eq(nreleased, 1, "nothing held, nothing released");
}

Test(fdtab, dup_shares_the_connection_and_the_file_descriptions_flags)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    fdtab_accepted(s[0], SOCK_NONBLOCK);
    cr_assert_eq(accepted_fd, s[0], "the drain hook hears of it");
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->kind), FD_CONN);
    atomic_store(&fdtab_peek(s[0])->conn, 7);
    int d = dup(s[0]);
    fdtab_dup(s[0], d);
    struct fdent *to = fdtab_peek(d);
    cr_assert_eq(nduped, 1);
    cr_assert_eq(duped[0], 7);
    cr_assert_eq(atomic_load(&to->conn), 7);
    cr_assert_eq(atomic_load(&to->kind), FD_CONN);
    cr_assert(atomic_load(&to->flags) & FDF_NONBLOCK);
}

Test(fdtab, forget_hands_back_the_slot_and_restore_puts_it_back)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    fdtab_accepted(s[0], 0);
    atomic_store(&fdtab_peek(s[0])->conn, 3);
    uint32_t held = fdtab_forget(s[0]);
    cr_assert_eq(held, 3);
    cr_assert_eq(nreleased, 0, "released only after the real close (fdtab_release)");
    fdtab_restore(s[0], held);
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->conn), 3);
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->kind), FD_CONN);
    fdtab_release(fdtab_forget(s[0]));
    cr_assert_eq(nreleased, 1);
    cr_assert_eq(released[0], 3);
    fdtab_release(0);
    cr_assert_eq(nreleased, 1, "0 holds nothing");
}

Test(fdtab, a_forked_child_holds_no_slots)
{
    int s[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    fdtab_accepted(s[0], 0);
    atomic_store(&fdtab_peek(s[0])->conn, 9);
    fdtab_atfork_child();
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->conn), 0);
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->kind), FD_CONN, "what it is stays known");
}

Test(fdtab, sluices_own_descriptors_are_marked_and_let_go)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fdtab_own(p[0]);
    cr_assert(fdtab_is_own(p[0]));
    cr_assert(!fdtab_is_own(p[1]));
    fdtab_close_own(p[0]);
    cr_assert(!fdtab_is_own(p[0]));
    cr_assert_eq(fcntl(p[0], F_GETFD), -1, "closed");
}

Test(fdtab, entries_stay_put_as_the_table_grows)
{
    struct fdent *e = fdtab_get(3);
    cr_assert_not_null(e);
    cr_assert_not_null(fdtab_get(5000));
    cr_assert_eq(fdtab_get(3), e, "a pointer to an entry stays valid");
    cr_assert_geq(fdtab_extent(), 5001);
    cr_assert_null(fdtab_get(-1));
}
