/* stats.h — counters and gauges, rendered in the Prometheus text format (the
 * writer thread, statswriter.c, puts them in SLUICE_STATS). */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "common.h"

/* Every metric, in one place: X(field, prometheus name, type, help). Counters
 * end in _total; times are in seconds, kept here in nanoseconds. */
#define SLUICE_METRICS(X) \
    X(conn_in_flight,    "sluice_connections_in_flight", "gauge",   "Accepted connections open now") \
    X(conn_limit,        "sluice_connections_limit",     "gauge",   "SLUICE_CONN_MAX (0: off)") \
    X(conn_shared,       "sluice_connections_shared",    "gauge",   "1: in flight and the limit are a budget shared by every process of SLUICE_CONN_KEY") \
    X(conn_paused,       "sluice_paused",                "gauge",   "1 while listeners are paused") \
    X(conn_accepted,     "sluice_accepted_total",        "counter", "Connections handed to the program") \
    X(conn_shed,         "sluice_shed_total",            "counter", "Connections answered and closed by sluice") \
    X(conn_shed_unlingered,"sluice_shed_unlingered_total","counter","Shed connections closed at once to spare the program descriptors") \
    X(conn_shed_cut,     "sluice_shed_cut_total",        "counter", "Shed connections closed after discarding 256 KiB of input") \
    X(conn_pauses,       "sluice_pauses_total",          "counter", "Times the listeners were paused") \
    X(conn_paused_ns,    "sluice_paused_seconds_total",  "counter", "Time spent paused") \
    X(conn_busy,         "sluice_connections_busy",      "gauge",   "Connections holding a slot (idle=free)") \
    X(conn_idle,         "sluice_connections_idle",      "gauge",   "Idle connections without a slot (idle=free)") \
    X(conn_slot_waits_ns,"sluice_slot_wait_seconds_total","counter","Time requests on idle connections waited for a slot") \
    X(write_waits,       "sluice_write_waits_total",     "counter", "Writes that waited for a drain") \
    X(write_wait_ns,     "sluice_write_wait_seconds_total","counter","Time writers waited for a drain") \
    X(write_timeouts,    "sluice_write_timeouts_total",  "counter", "Writes ended by SLUICE_WRITE_TIMEOUT") \
    X(sockets_over_mark, "sluice_sockets_over_mark",     "gauge",   "Sockets with more than SLUICE_WRITE_HIGH unsent now") \
    X(held_reads,        "sluice_held_reads_total",      "counter", "Reads held until output drained") \
    X(held_read_ns,      "sluice_held_read_seconds_total","counter","Time reads were held") \
    X(fs_ops,            "sluice_fs_operations_total",   "counter", "Filesystem operations gated") \
    X(fs_waits,          "sluice_fs_waits_total",        "counter", "Filesystem operations that waited for a token") \
    X(fs_wait_ns,        "sluice_fs_wait_seconds_total", "counter", "Time waited for filesystem tokens") \
    X(fs_timeouts,       "sluice_fs_timeouts_total",     "counter", "Filesystem operations failed by SLUICE_FS_TIMEOUT") \
    X(fs_in_use,         "sluice_fs_tokens_in_use",      "gauge",   "Filesystem tokens held now (this process)") \
    X(fs_limit,          "sluice_fs_tokens_limit",       "gauge",   "SLUICE_FS_MAX (0: off)") \
    X(queue_length,      "sluice_queue_length",          "gauge",   "Connections waiting for a slot in the accept queues (SLUICE_QUEUE_*)") \
    X(queue_oldest_ns,   "sluice_queue_oldest_wait_seconds","gauge","How long the oldest waiting connection has waited") \
    X(queue_timed_out,   "sluice_queue_timed_out_total", "counter", "Waiting connections answered after SLUICE_QUEUE_TIMEOUT") \
    X(queue_full,        "sluice_queue_full_total",      "counter", "Waiting connections answered beyond SLUICE_QUEUE_MAX") \
    X(retry_after_ns,    "sluice_retry_after_seconds",   "gauge",   "Retry-After the shed answer carries now (SLUICE_RETRY_AFTER=auto: the estimate)") \
    X(listen_overflows_start,"sluice_listen_overflows_start","gauge","TcpExt ListenOverflows when sluice started (host-wide; -1: unknown)") \
    X(listen_overflows,  "sluice_listen_overflows",      "gauge",   "TcpExt ListenOverflows now (host-wide; -1: unknown)") \
    X(listen_drops_start,"sluice_listen_drops_start",    "gauge",   "TcpExt ListenDrops when sluice started (host-wide; -1: unknown)") \
    X(listen_drops,      "sluice_listen_drops",          "gauge",   "TcpExt ListenDrops now (host-wide; -1: unknown)")

struct sluice_stats {
#define STATS_FIELD(field, name, type, help) _Atomic int64_t field;
    SLUICE_METRICS(STATS_FIELD)
#undef STATS_FIELD
};

extern struct sluice_stats sluice_stats SLUICE_INTERNAL;

#define STAT_ADD(field, n) atomic_fetch_add_explicit(&sluice_stats.field, (n), memory_order_relaxed)
#define STAT_SET(field, v) atomic_store_explicit(&sluice_stats.field, (v), memory_order_relaxed)

/* fn runs before each render: a gate that keeps a figure elsewhere copies it
 * into sluice_stats then (up to four gates). */
void stats_on_render(void (*fn)(void)) SLUICE_INTERNAL;
/* A section after the counters (the waiting queue's histogram): refresh runs
 * before each render (it may update counters), render writes its text and
 * returns the length (at most cap). */
void stats_add_section(void (*refresh)(void), size_t (*render)(char *buf, size_t cap)) SLUICE_INTERNAL;
/* Renders the exposition text into buf; returns its length (truncated to cap). */
size_t stats_render(char *buf, size_t cap) SLUICE_INTERNAL;

#endif
