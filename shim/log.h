/* log.h — one line per event on stderr, prefixed "sluice[PID]: ", never on
 * stdout. Async-signal-safe: formats into a stack buffer, one write(2). */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "common.h"
#include "config.h"

void sluice_log(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) SLUICE_INTERNAL;

#define log_error(...) sluice_log(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  sluice_log(LOG_WARN, __VA_ARGS__)
#define log_info(...)  sluice_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) sluice_log(LOG_DEBUG, __VA_ARGS__)

#endif
