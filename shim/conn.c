/* conn.c — the connection gate (see conn.h). Stub: forwards. */
#include "conn.h"

#include "gate.h"
#include "real.h"

void conn_init(void) {}
int conn_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags, bool is_accept4)
{
    int r = is_accept4 ? REAL(accept4)(fd, addr, len, flags) : REAL(accept)(fd, addr, len);
    if (r >= 0)
        gate_accepted(r, flags);
    return r;
}
int conn_listen(int fd, int backlog) { return REAL(listen)(fd, backlog); }
void conn_release(uint32_t id_plus_one) { (void) id_plus_one; }
void conn_addref(uint32_t id_plus_one) { (void) id_plus_one; }
bool conn_governs(int fd) { (void) fd; return false; }
int conn_before_read(int fd, int msgflags) { (void) fd; (void) msgflags; return 0; }
void conn_after_read(int fd, long result) { (void) fd; (void) result; }
void conn_atfork_child(void) {}
