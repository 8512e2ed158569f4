/* procstat.c — see procstat.h. Used by the host-scope fs budget (is a holder
 * still the process it was?) and by threads.c (has the program's last thread
 * ended?). */
#include "procstat.h"

#include <fcntl.h>
#include <string.h>

#include "real.h"

const char *procstat_fields(const char *path, char *buf, size_t cap)
{
    int fd = REAL(open)(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = REAL(read)(fd, buf, cap - 1);
    REAL(close)(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p != NULL && p[1] == ' ' && p[2] != '\0' ? p + 2 : NULL;
}
