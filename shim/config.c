/* config.c — reads every SLUICE_* variable once (see config.h). One table of
 * settings gives each variable its form, its accepted-form text for messages,
 * and where its value goes. Nothing here allocates. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"

struct sluice_config sluice_cfg;

static const char *const conn_modes[] = { "pause", "shed", NULL };
static const char *const conn_idles[] = { "hold", "free", NULL };
static const char *const shed_kinds[] = { "http503", "http429", "close", "reset", NULL };
static const char *const fs_scopes[] = { "process", "host", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

enum form { F_COUNT, F_SIZE, F_DURATION, F_BOOL, F_ENUM, F_PORTS, F_KEY, F_PATH, F_SECONDS };

struct setting {
    const char *name;
    enum form form;
    const char *accepted;           /* the accepted form, for messages */
    void *target;
    const char *const *words;       /* F_ENUM */
};

#define S(name, form, accepted, target, words) { name, form, accepted, target, words }

static const struct setting settings[] = {
    S("SLUICE_CONN_MAX", F_COUNT, "a whole number from 1 to 1000000", &sluice_cfg.conn_max, NULL),
    S("SLUICE_CONN_MODE", F_ENUM, "pause or shed", &sluice_cfg.conn_mode, conn_modes),
    S("SLUICE_CONN_IDLE", F_ENUM, "hold or free", &sluice_cfg.conn_idle, conn_idles),
    S("SLUICE_SHED", F_ENUM, "http503, http429, close or reset", &sluice_cfg.shed, shed_kinds),
    S("SLUICE_RETRY_AFTER", F_SECONDS, "whole seconds from 0 to 86400", &sluice_cfg.retry_after_s, NULL),
    S("SLUICE_BACKLOG", F_COUNT, "a whole number from 1 to 1000000", &sluice_cfg.backlog, NULL),
    S("SLUICE_CONN_PORTS", F_PORTS, "a comma-separated list of ports, such as 8080,8443", NULL, NULL),
    S("SLUICE_WRITE_HIGH", F_SIZE, "a size in bytes, with K, M or G for powers of 1024, such as 64K", &sluice_cfg.write_high, NULL),
    S("SLUICE_WRITE_TIMEOUT", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.write_timeout_ns, NULL),
    S("SLUICE_HOLD_READS", F_BOOL, "1 or 0", &sluice_cfg.hold_reads, NULL),
    S("SLUICE_FS_MAX", F_COUNT, "a whole number from 1 to 1000000", &sluice_cfg.fs_max, NULL),
    S("SLUICE_FS_SCOPE", F_ENUM, "process or host", &sluice_cfg.fs_scope, fs_scopes),
    S("SLUICE_FS_KEY", F_KEY, "1 to 64 letters, digits, '.', '_' or '-'", sluice_cfg.fs_key, NULL),
    S("SLUICE_FS_TIMEOUT", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.fs_timeout_ns, NULL),
    S("SLUICE_STATS", F_PATH, "a file path (%p becomes the process id)", sluice_cfg.stats_path, NULL),
    S("SLUICE_STATS_INTERVAL", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.stats_interval_ns, NULL),
    S("SLUICE_LOG", F_ENUM, "error, warn, info or debug", &sluice_cfg.log_level, log_levels),
    S("SLUICE_STRICT", F_BOOL, "1 or 0", &sluice_cfg.strict, NULL),
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

static bool parse_key(const char *s, char *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                  || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    memcpy(out, s, n + 1);
    return true;
}

/* Keeps a path template (its %p is expanded by whoever writes the file, with
 * its own pid: a forked child is not its parent). */
static bool copy_path(const char *s, char *out)
{
    size_t n = strlen(s);
    if (n == 0 || n + 16 >= SLUICE_PATH_MAX)
        return false;
    memcpy(out, s, n + 1);
    return true;
}

static bool apply(const struct setting *st, const char *value)
{
    switch (st->form) {
    case F_COUNT: return parse_count(value, st->target);
    case F_SIZE: return parse_size(value, st->target);
    case F_DURATION: return parse_duration_ns(value, st->target);
    case F_BOOL: return parse_bool(value, st->target);
    case F_KEY: return parse_key(value, st->target);
    case F_PATH: return copy_path(value, st->target);
    case F_PORTS:
        return parse_ports(value, sluice_cfg.ports, SLUICE_MAX_PORTS, &sluice_cfg.nports);
    case F_SECONDS:
        return parse_uint_range(value, 0, 86400, st->target);
    case F_ENUM: {
        int i = parse_enum(value, st->words);
        if (i < 0)
            return false;
        *(int *) st->target = i;
        return true;
    }
    }
    return false;
}

static bool bad_values;

static void complain(const char *name, const char *value, const char *accepted)
{
    bad_values = true;
    sluice_log(LOG_ERROR, "%s='%s' is not valid: expected %s; %s stays %s", name, value,
               accepted, name, sluice_cfg.strict ? "off and the program stops (SLUICE_STRICT)" : "off");
}

extern char **environ;

void config_load(void)
{
    memset(&sluice_cfg, 0, sizeof sluice_cfg);
    sluice_cfg.log_level = LOG_WARN;
    sluice_cfg.retry_after_s = 1;
    sluice_cfg.stats_interval_ns = 1000000000ULL;
    memcpy(sluice_cfg.fs_key, "default", sizeof "default");

    /* Strictness and the log level first: they decide what the others' messages do. */
    const char *v = getenv("SLUICE_STRICT");
    if (v != NULL && !parse_bool(v, &sluice_cfg.strict))
        complain("SLUICE_STRICT", v, "1 or 0");
    v = getenv("SLUICE_LOG");
    if (v != NULL) {
        int level = parse_enum(v, log_levels);
        if (level < 0)
            complain("SLUICE_LOG", v, "error, warn, info or debug");
        else
            sluice_cfg.log_level = (enum log_level) level;
    }
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *st = &settings[i];
        if (strcmp(st->name, "SLUICE_STRICT") == 0 || strcmp(st->name, "SLUICE_LOG") == 0)
            continue;
        v = getenv(st->name);
        if (v == NULL)
            continue;
        if (!apply(st, v))
            complain(st->name, v, st->accepted);
    }
    /* A misspelt name is bad input too: it would silently leave a gate off. */
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "SLUICE_", 7) != 0)
            continue;
        size_t n = strcspn(*e, "=");
        bool known = false;
        for (size_t i = 0; i < NSETTINGS && !known; i++)
            known = strlen(settings[i].name) == n && strncmp(settings[i].name, *e, n) == 0;
        if (!known) {
            char name[64];
            size_t len = n < sizeof name - 1 ? n : sizeof name - 1;
            memcpy(name, *e, len);
            name[len] = '\0';
            sluice_log(LOG_WARN, "unknown setting %s ignored", name);
        }
    }
    if (bad_values && sluice_cfg.strict)
        _exit(2);
}
