/* wrap_socket.c — accept, accept4 and listen: where connections are born and
 * listeners made. The connection gate decides; without it, a new connection is
 * only recorded so the other gates know what it is. */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include "conn.h"
#include "gate.h"

SLUICE_PUBLIC int accept(int fd, SADDR addr, socklen_t *addrlen)
{
    unsigned gates = gates_on();
    if (likely(gates == 0))
        return REAL(accept)(fd, addr, addrlen);
    if (gates & GATE_CONN)
        return conn_accept(fd, addr.__sockaddr__, addrlen, 0, false);
    int r = REAL(accept)(fd, addr, addrlen);
    if (r >= 0)
        gate_accepted(r, 0);
    return r;
}

SLUICE_PUBLIC int accept4(int fd, SADDR addr, socklen_t *addrlen, int flags)
{
    unsigned gates = gates_on();
    if (likely(gates == 0))
        return REAL(accept4)(fd, addr, addrlen, flags);
    if (gates & GATE_CONN)
        return conn_accept(fd, addr.__sockaddr__, addrlen, flags, true);
    int r = REAL(accept4)(fd, addr, addrlen, flags);
    if (r >= 0)
        gate_accepted(r, flags);
    return r;
}

SLUICE_PUBLIC int listen(int fd, int backlog)
{
    if (likely((gates_on() & GATE_CONN) == 0))
        return REAL(listen)(fd, backlog);
    return conn_listen(fd, backlog);
}
