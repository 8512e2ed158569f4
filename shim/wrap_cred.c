/* wrap_cred.c — the calls that change a process's effective uid (setuid,
 * seteuid, setreuid, setresuid; glibc applies them to every thread). With a
 * stats file, no write of it runs across the change, and the file is handed to
 * the uid the process becomes while it still may (statsfile.c says why).
 * Without one they only forward. Group changes need nothing: replacing a file
 * in a sticky directory depends on its owner alone. */
/* The first call of a wrapper starts the library (real.h, init.c). */
#define SLUICE_WRAPPER_ROOM 1
#include "real.h"

#include <stdbool.h>

#include "config.h"
#include "init.h"
#include "statsfile.h"

/* Set while this thread is inside one of these calls: a libc that built one on
 * another through our wrappers must not take the stats lock twice. */
static __thread bool changing;

static bool hand_over(uid_t new_euid)
{
    sluice_init();
    if (sluice_cfg.stats_path[0] == '\0' || changing)
        return false;
    changing = true;
    statsfile_cred_begin(new_euid);
    return true;
}

static int done(bool handed, int r)
{
    if (handed) {
        statsfile_cred_end();
        changing = false;
    }
    return r;
}

SLUICE_PUBLIC int setuid(uid_t uid)
{
    bool handed = hand_over(uid);
    return done(handed, REAL(setuid)(uid));
}

SLUICE_PUBLIC int seteuid(uid_t euid)
{
    bool handed = hand_over(euid);
    return done(handed, REAL(seteuid)(euid));
}

SLUICE_PUBLIC int setreuid(uid_t ruid, uid_t euid)
{
    bool handed = hand_over(euid);
    return done(handed, REAL(setreuid)(ruid, euid));
}

SLUICE_PUBLIC int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
    bool handed = hand_over(euid);
    return done(handed, REAL(setresuid)(ruid, euid, suid));
}
