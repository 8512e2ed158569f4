/* log.h — one line per event on stderr, prefixed "sluice[PID]: ", never on
 * stdout. Async-signal-safe: formats into a stack buffer, one write(2). */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "common.h"

/* The levels of SLUICE_LOG, quietest first. (Prefixed: <syslog.h> has LOG_INFO.) */
enum log_level { SLUICE_LOG_ERROR = 0, SLUICE_LOG_WARN, SLUICE_LOG_INFO, SLUICE_LOG_DEBUG };

/* Messages above level are dropped; warn until config.c says otherwise. */
void log_set_level(enum log_level level) SLUICE_INTERNAL;

void sluice_log(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) SLUICE_INTERNAL;

#define log_error(...) sluice_log(SLUICE_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  sluice_log(SLUICE_LOG_WARN, __VA_ARGS__)
#define log_info(...)  sluice_log(SLUICE_LOG_INFO, __VA_ARGS__)
#define log_debug(...) sluice_log(SLUICE_LOG_DEBUG, __VA_ARGS__)

#endif
