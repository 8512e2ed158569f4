/* test_overlay.c — shim/overlay.c on its own: what is hidden, the count of
 * descriptors with something hidden, and the kernel's epoll registration
 * agreeing with both (an EPOLLEXCLUSIVE one is taken out while hidden). */
#include <criterion/criterion.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdtab.h"
#include "overlay.h"

static int s[2], epfd;

static void pair_in_epoll(void)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
    cr_assert_eq(fdtab_kind(s[0]), FD_STREAM);
    epfd = epoll_create1(0);
    overlay_init();
    cr_assert_eq(write(s[1], "x", 1), 1);   /* s[0] is readable from now on */
}

TestSuite(overlay, .init = pair_in_epoll);

static int ready(void)
{
    struct epoll_event ev;
    return epoll_wait(epfd, &ev, 1, 0);
}

Test(overlay, hidden_input_is_not_reported_until_shown_again)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s[0] };
    cr_assert_eq(overlay_epoll_ctl(epfd, EPOLL_CTL_ADD, s[0], &ev), 0);
    cr_assert_eq(ready(), 1);
    overlay_hide(s[0], EPOLLIN);
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->hidden), EPOLLIN);
    cr_assert_eq(atomic_load(&overlay_hidden_fds), 1);
    cr_assert(overlay_poll_active());
    cr_assert_eq(ready(), 0, "hidden from epoll");
    overlay_hide(s[0], EPOLLIN);
    cr_assert_eq(atomic_load(&overlay_hidden_fds), 1, "hidden twice counts once");
    overlay_unhide(s[0], EPOLLIN);
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->hidden), 0);
    cr_assert_eq(atomic_load(&overlay_hidden_fds), 0);
    cr_assert_eq(ready(), 1, "shown again");
}

Test(overlay, a_registration_made_while_hidden_starts_hidden)
{
    overlay_hide(s[0], EPOLLIN);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s[0] };
    cr_assert_eq(overlay_epoll_ctl(epfd, EPOLL_CTL_ADD, s[0], &ev), 0);
    cr_assert_eq(ready(), 0);
    cr_assert_eq(atomic_load(&fdtab_peek(s[0])->regs[0].epfd_plus_one), epfd + 1);
    overlay_unhide(s[0], EPOLLIN);
    cr_assert_eq(ready(), 1);
}

Test(overlay, an_exclusive_registration_is_taken_out_while_hidden_and_put_back)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = s[0] };
    cr_assert_eq(overlay_epoll_ctl(epfd, EPOLL_CTL_ADD, s[0], &ev), 0);
    overlay_hide(s[0], EPOLLIN);
    cr_assert_eq(ready(), 0);
    /* MOD of an EPOLLEXCLUSIVE registration: EINVAL, as the kernel says. */
    cr_assert_eq(overlay_epoll_ctl(epfd, EPOLL_CTL_MOD, s[0], &ev), -1);
    overlay_unhide(s[0], EPOLLIN);
    cr_assert_eq(ready(), 1);
    cr_assert_eq(overlay_epoll_ctl(epfd, EPOLL_CTL_DEL, s[0], NULL), 0);
    cr_assert_eq(ready(), 0);
}

Test(overlay, a_forgotten_descriptor_leaves_nothing_hidden_or_registered)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = s[0] };
    cr_assert_eq(overlay_epoll_ctl(epfd, EPOLL_CTL_ADD, s[0], &ev), 0);
    overlay_hide(s[0], EPOLLIN);
    fdtab_reborn(s[0]);    /* through fdtab's hook, as a close does */
    struct fdent *e = fdtab_peek(s[0]);
    cr_assert_eq(atomic_load(&e->hidden), 0);
    cr_assert_eq(atomic_load(&e->regs[0].epfd_plus_one), 0);
    cr_assert_eq(atomic_load(&overlay_hidden_fds), 0);
}

Test(overlay, poll_rewritten_while_hidden_reports_nothing_then_the_input)
{
    overlay_hide(s[0], EPOLLIN);
    struct pollfd p = { s[0], POLLIN, 0 };
    struct timespec zero = { 0, 0 };
    cr_assert_eq(overlay_poll(&p, 1, &zero, NULL), 0);
    overlay_unhide(s[0], EPOLLIN);
    cr_assert_eq(overlay_poll(&p, 1, &zero, NULL), -2, "nothing hidden: forward as is");
}
