/* stats.h — counters and gauges, rendered in the Prometheus text format (the
 * writer thread, statswriter.c, puts them in SLUICE_STATS). */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
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
    X(listen_drops,      "sluice_listen_drops",          "gauge",   "TcpExt ListenDrops now (host-wide; -1: unknown)") \
    X(auto_limit,        "sluice_auto_limit",            "gauge",   "The limit SLUICE_CONN_MAX=auto keeps now") \
    X(auto_reason,       "sluice_auto_limit_reason",     "gauge",   "What last moved it: 0 start, 1 memory, 2 latency, 3 pressure") \
    X(auto_request_bytes,"sluice_auto_request_bytes",    "gauge",   "Learnt memory cost of one more request in service") \
    X(auto_memory,       "sluice_auto_memory_bytes",     "gauge",   "Memory in use, as last sampled") \
    X(auto_memory_mark,  "sluice_auto_memory_mark_bytes","gauge",   "The memory mark (0: no memory signal)") \
    X(auto_noload_ns,    "sluice_auto_noload_latency_seconds","gauge","Service time without load, as learnt") \
    X(auto_latency_ns,   "sluice_auto_latency_seconds",  "gauge",   "Mean service time of the last window") \
    X(auto_pressure,     "sluice_auto_pressure_events_total","counter","Memory-pressure events (PSI) that cut the limit")

/* Histograms: H(field, prometheus name, help), rendered as _bucket{le}, _sum
 * and _count, only once something enabled them. Bounds in seconds. */
#define SLUICE_HISTOGRAMS(H) \
    H(request, "sluice_request_seconds", "Service time of requests, input taken to answer drained (SLUICE_CONN_MAX=auto)")
#define STATS_HIST_BOUNDS_MS { 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 }
#define STATS_HIST_BUCKETS 14   /* the bounds and +Inf */

struct sluice_stats {
#define STATS_FIELD(field, name, type, help) _Atomic int64_t field;
    SLUICE_METRICS(STATS_FIELD)
#undef STATS_FIELD
};

extern struct sluice_stats sluice_stats SLUICE_INTERNAL;

struct sluice_hist {
    _Atomic bool on;
    _Atomic int64_t bucket[STATS_HIST_BUCKETS];   /* not cumulative: the render sums */
    _Atomic int64_t sum_ns;
};
#define STATS_HIST_FIELD(field, name, help) extern struct sluice_hist sluice_hist_##field SLUICE_INTERNAL;
SLUICE_HISTOGRAMS(STATS_HIST_FIELD)
#undef STATS_HIST_FIELD
/* Counts one observation of ns nanoseconds (a few relaxed atomics). */
void stats_observe(struct sluice_hist *h, uint64_t ns) SLUICE_INTERNAL;

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
