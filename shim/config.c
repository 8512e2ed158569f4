/* config.c — reads every SLUICE_* variable once (see config.h). One table of
 * settings gives each variable its form, its accepted-form text for messages,
 * and where its value goes. Nothing here allocates. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"

struct sluice_config sluice_cfg;
_Atomic unsigned sluice_gates;

static const char *const conn_modes[] = { "pause", "shed", NULL };
static const char *const conn_idles[] = { "hold", "free", NULL };
static const char *const shed_kinds[] = { "http503", "http429", "close", "reset", NULL };
static const char *const fs_scopes[] = { "process", "host", NULL };
static const char *const conn_scopes[] = { "process", "host", NULL };
static const char *const queue_orders[] = { "fifo", "lifo", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

enum form { F_CONN_MAX, F_MEM_HIGH, F_COUNT, F_SIZE, F_DURATION, F_BOOL, F_ENUM, F_PORTS, F_KEY, F_PATH,
            F_SECONDS, F_RETRY, F_ORDER };

struct setting {
    const char *name;
    enum form form;
    const char *accepted;           /* the accepted form, for messages */
    void *target;
    const char *const *words;       /* F_ENUM */
    const char *dflt;               /* the default a bad value leaves; NULL: off */
};

#define S(name, form, accepted, target, words) { name, form, accepted, target, words, NULL }
#define D(name, form, accepted, target, words, dflt) { name, form, accepted, target, words, dflt }

/* TCP_NOTSENT_LOWAT and SO_SNDBUF take an int: a larger mark cannot be set. */
#define WRITE_HIGH_MAX 0x7fffffffULL

static const struct setting settings[] = {
    S("SLUICE_CONN_MAX", F_CONN_MAX, "a whole number from 1 to 1000000, auto, or auto:CEILING such as auto:200", &sluice_cfg.conn_max, NULL),
    S("SLUICE_MEM_HIGH", F_MEM_HIGH, "a size such as 300M, or a percentage of the memory cgroup's limit such as 85%", NULL, NULL),
    D("SLUICE_CONN_MODE", F_ENUM, "pause or shed", &sluice_cfg.conn_mode, conn_modes, "pause"),
    D("SLUICE_CONN_IDLE", F_ENUM, "hold or free", &sluice_cfg.conn_idle, conn_idles, "hold"),
    D("SLUICE_SHED", F_ENUM, "http503, http429, close or reset", &sluice_cfg.shed, shed_kinds, "http503"),
    D("SLUICE_RETRY_AFTER", F_RETRY, "whole seconds from 0 to 86400, or auto", &sluice_cfg.retry_after_s, NULL, "1"),
    S("SLUICE_BACKLOG", F_COUNT, "a whole number from 1 to 1000000", &sluice_cfg.backlog, NULL),
    D("SLUICE_CONN_SCOPE", F_ENUM, "process or host", &sluice_cfg.conn_scope, conn_scopes, "process"),
    D("SLUICE_CONN_KEY", F_KEY, "1 to 64 letters, digits, '.', '_' or '-'", sluice_cfg.conn_key, NULL, "default"),
    S("SLUICE_QUEUE_TIMEOUT", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.queue_timeout_ns, NULL),
    S("SLUICE_QUEUE_MAX", F_COUNT, "a whole number from 1 to 1000000", &sluice_cfg.queue_max, NULL),
    D("SLUICE_QUEUE_ORDER", F_ORDER, "fifo or lifo", &sluice_cfg.queue_lifo, queue_orders, "fifo"),
    S("SLUICE_CONN_PORTS", F_PORTS, "a comma-separated list of ports, such as 8080,8443", NULL, NULL),
    S("SLUICE_WRITE_HIGH", F_SIZE, "a size in bytes below 2G, with K, M or G for powers of 1024, such as 64K", &sluice_cfg.write_high, NULL),
    S("SLUICE_WRITE_TIMEOUT", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.write_timeout_ns, NULL),
    S("SLUICE_HOLD_READS", F_BOOL, "1 or 0", &sluice_cfg.hold_reads, NULL),
    S("SLUICE_FS_MAX", F_COUNT, "a whole number from 1 to 1000000", &sluice_cfg.fs_max, NULL),
    D("SLUICE_FS_SCOPE", F_ENUM, "process or host", &sluice_cfg.fs_scope, fs_scopes, "process"),
    D("SLUICE_FS_KEY", F_KEY, "1 to 64 letters, digits, '.', '_' or '-'", sluice_cfg.fs_key, NULL, "default"),
    S("SLUICE_FS_TIMEOUT", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.fs_timeout_ns, NULL),
    S("SLUICE_STATS", F_PATH, "a file path (%p becomes the process id)", sluice_cfg.stats_path, NULL),
    D("SLUICE_STATS_INTERVAL", F_DURATION, "a duration such as 250ms, 2s or 1m (a plain number is seconds)", &sluice_cfg.stats_interval_ns, NULL, "1s"),
    D("SLUICE_LOG", F_ENUM, "error, warn, info or debug", &sluice_cfg.log_level, log_levels, "warn"),
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
    case F_CONN_MAX: return parse_conn_max(value, st->target, &sluice_cfg.conn_auto);
    case F_MEM_HIGH: return parse_size_or_percent(value, &sluice_cfg.mem_high, &sluice_cfg.mem_high_pct);
    case F_COUNT: return parse_count(value, st->target);
    case F_SIZE: {
        uint64_t v;
        if (!parse_size(value, &v) || v > WRITE_HIGH_MAX)
            return false;
        *(uint64_t *) st->target = v;
        return true;
    }
    case F_DURATION: return parse_duration_ns(value, st->target);
    case F_BOOL: return parse_bool(value, st->target);
    case F_KEY: return parse_key(value, st->target);
    case F_PATH: return copy_path(value, st->target);
    case F_PORTS:
        return parse_ports(value, sluice_cfg.ports, SLUICE_MAX_PORTS, &sluice_cfg.nports);
    case F_SECONDS:
        return parse_uint_range(value, 0, 86400, st->target);
    case F_ORDER: {
        int i = parse_enum(value, st->words);
        if (i < 0)
            return false;
        *(bool *) st->target = i == 1;
        return true;
    }
    case F_RETRY:
        if (strcmp(value, "auto") == 0) {
            sluice_cfg.retry_after_auto = true;
            return true;
        }
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

/* Set only by the launcher, in a throwaway process: parse and report the
 * settings, then exit (2 if any was bad, else 0) before anything starts — no
 * stats file, no shared budget, no thread, not even the program's main. */
#define CHECK_ONLY_VAR "SLUICE_CHECK_SETTINGS_AND_EXIT"

static bool bad_values;
static bool check_only;     /* CHECK_ONLY_VAR: see below */

/* One line per bad value: the variable, the value (escaped and bounded by the
 * log), the accepted form, and what happens instead: the setting stays off,
 * keeps its default dflt, or what instead says. */
static void complain(const char *name, const char *value, const char *accepted,
                     const char *dflt, const char *instead)
{
    bad_values = true;
    if (check_only)
        sluice_log(SLUICE_LOG_ERROR, "%s='%s' is not valid: expected %s; the command does not run",
                   name, value, accepted);
    else if (sluice_cfg.strict)
        sluice_log(SLUICE_LOG_ERROR, "%s='%s' is not valid: expected %s; the program stops (SLUICE_STRICT)",
                   name, value, accepted);
    else if (instead != NULL)
        sluice_log(SLUICE_LOG_ERROR, "%s='%s' is not valid: expected %s; %s", name, value, accepted, instead);
    else if (dflt != NULL)
        sluice_log(SLUICE_LOG_ERROR, "%s='%s' is not valid: expected %s; %s keeps its default, %s", name,
                   value, accepted, name, dflt);
    else
        sluice_log(SLUICE_LOG_ERROR, "%s='%s' is not valid: expected %s; %s stays off", name, value,
                   accepted, name);
}

extern char **environ;

static bool is_known(const char *assignment, size_t n)
{
    if (n == sizeof CHECK_ONLY_VAR - 1 && strncmp(assignment, CHECK_ONLY_VAR, n) == 0)
        return true;
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strlen(settings[i].name) == n && strncmp(settings[i].name, assignment, n) == 0)
            return true;
    return false;
}

void config_load(void)
{
    memset(&sluice_cfg, 0, sizeof sluice_cfg);
    sluice_cfg.log_level = SLUICE_LOG_WARN;
    log_set_level(SLUICE_LOG_WARN);
    sluice_cfg.retry_after_s = 1;
    sluice_cfg.stats_interval_ns = 1000000000ULL;
    memcpy(sluice_cfg.fs_key, "default", sizeof "default");
    memcpy(sluice_cfg.conn_key, "default", sizeof "default");
    check_only = getenv(CHECK_ONLY_VAR) != NULL;

    /* Strictness and the log level first: they decide what the others' messages do. */
    const char *v = getenv("SLUICE_STRICT");
    if (v != NULL && !parse_bool(v, &sluice_cfg.strict))
        complain("SLUICE_STRICT", v, "1 or 0", NULL, NULL);
    v = getenv("SLUICE_LOG");
    if (v != NULL) {
        int level = parse_enum(v, log_levels);
        if (level < 0)
            complain("SLUICE_LOG", v, "error, warn, info or debug", "warn", NULL);
        else
            sluice_cfg.log_level = (enum log_level) level;
    }
    log_set_level(sluice_cfg.log_level);
    const char *bad_key = NULL, *bad_conn_key = NULL;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *st = &settings[i];
        if (strcmp(st->name, "SLUICE_STRICT") == 0 || strcmp(st->name, "SLUICE_LOG") == 0)
            continue;
        v = getenv(st->name);
        if (v == NULL || apply(st, v))
            continue;
        if (st->target == sluice_cfg.fs_key)
            bad_key = v;    /* what it means depends on the scope: below */
        else if (st->target == sluice_cfg.conn_key)
            bad_conn_key = v;
        else
            complain(st->name, v, st->accepted, st->dflt, NULL);
    }
    /* A bad key must not fall back to the shared "default" budget: that would
     * throttle this process against unrelated ones, silently. */
    if (bad_key != NULL) {
        const char *accepted = "1 to 64 letters, digits, '.', '_' or '-'";
        if (sluice_cfg.fs_scope == FS_SCOPE_HOST && sluice_cfg.fs_max != 0) {
            sluice_cfg.fs_max = 0;
            complain("SLUICE_FS_KEY", bad_key, accepted, NULL,
                     "the filesystem gate stays off in this process rather than share the 'default' budget");
        } else {
            complain("SLUICE_FS_KEY", bad_key, accepted, NULL,
                     "it stays unused (it names a budget only with SLUICE_FS_SCOPE=host)");
        }
    }
    if (bad_conn_key != NULL) {
        const char *accepted = "1 to 64 letters, digits, '.', '_' or '-'";
        if (sluice_cfg.conn_scope == CONN_SCOPE_HOST && sluice_cfg.conn_max != 0) {
            sluice_cfg.conn_max = 0;
            complain("SLUICE_CONN_KEY", bad_conn_key, accepted, NULL,
                     "the connection limit stays off in this process rather than share the 'default' budget");
        } else {
            complain("SLUICE_CONN_KEY", bad_conn_key, accepted, NULL,
                     "it stays unused (it names a budget only with SLUICE_CONN_SCOPE=host)");
        }
    }
    /* auto counts requests in service, as idle=free does. */
    if (sluice_cfg.conn_auto) {
        const char *idle = getenv("SLUICE_CONN_IDLE");
        if (idle != NULL && sluice_cfg.conn_idle != CONN_IDLE_FREE)
            complain("SLUICE_CONN_IDLE", idle, "free with SLUICE_CONN_MAX=auto", NULL,
                     "auto counts requests in service: SLUICE_CONN_IDLE is free");
        sluice_cfg.conn_idle = CONN_IDLE_FREE;
    } else if (getenv("SLUICE_MEM_HIGH") != NULL) {
        sluice_log(SLUICE_LOG_WARN, "SLUICE_MEM_HIGH is used only with SLUICE_CONN_MAX=auto: ignored");
    }
    /* A misspelt name is bad input too: it would silently leave a gate off. */
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "SLUICE_", 7) != 0)
            continue;
        size_t n = strcspn(*e, "=");
        if (is_known(*e, n))
            continue;
        bad_values = true;
        int shown = n > INT_MAX ? INT_MAX : (int) n;
        if (sluice_cfg.strict)
            sluice_log(SLUICE_LOG_ERROR, "unknown setting %.*s; the program stops (SLUICE_STRICT)",
                       shown, *e);
        else
            sluice_log(SLUICE_LOG_WARN, "unknown setting %.*s ignored", shown, *e);
    }
    if (check_only)
        _exit(bad_values ? 2 : 0);
    if (bad_values && sluice_cfg.strict)
        _exit(2);
}
