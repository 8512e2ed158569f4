/* statsfile.h — the stats file on disk: where it is (a directory descriptor
 * opened at start-up), which process writes it, how it is replaced (an unnamed
 * temp file linked and renamed over it), what a credential change does to it,
 * and the cleaning of temp files dead writers left. */
#ifndef SLUICE_STATSFILE_H
#define SLUICE_STATSFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "common.h"

/* At start-up (and in a forked child): resolves the target's directory while
 * the process still has the credentials it started with. */
void statsfile_start(void) SLUICE_INTERNAL;
/* The first line of the file: which process writes it. Returns its length. */
size_t statsfile_header(char *buf, size_t cap) SLUICE_INTERNAL;
/* Puts text in place of the file, atomically; final: the last write (exit). */
void statsfile_write(const char *text, size_t len, bool final) SLUICE_INTERNAL;
/* Around a change of the effective uid to new_euid ((uid_t) -1: unchanged):
 * no write runs across it, and the file is handed to its next owner first. */
void statsfile_cred_begin(uid_t new_euid) SLUICE_INTERNAL;
void statsfile_cred_end(void) SLUICE_INTERNAL;
/* In a forked child; writes: it has a file of its own (%p). */
void statsfile_atfork_child(bool writes) SLUICE_INTERNAL;

#endif
