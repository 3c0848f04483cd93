/* metrics.h - Prometheus metrics: a fixed registry of families and a tiny
 * HTTP server for /metrics and /healthz.
 *
 * The families are declared once, in a static table in metrics.c; the ids
 * below index it. Label value sets (series) are created on first use, at most
 * TR_METRICS_MAX_SERIES per family; past that, updates go to the series whose
 * label values are all "other" and trawler_limit_hits_total{limit=
 * "metric_series"} counts each redirected update. A label value longer than
 * TR_METRICS_MAX_VALUE bytes or not valid UTF-8 is replaced by "other" and
 * counted in trawler_limit_hits_total{limit="metric_label_value"}.
 *
 * Threads: tr_metrics_init/serve/shutdown are called once each from the main
 * thread. Updates and tr_metrics_render() are thread-safe (one mutex, no
 * I/O) and may be called from any thread, also before init and after
 * shutdown, when they do nothing.
 */
#ifndef TR_METRICS_H
#define TR_METRICS_H

#include "buf.h"
#include "common.h"

#define TR_METRICS_MAX_SERIES 1000	  /* series per family, plus one "other" */
#define TR_METRICS_MAX_VALUE 256	  /* bytes per label value */
#define TR_METRICS_HEAD_MAX 8192	  /* request line + headers; 431 beyond */
#define TR_METRICS_READ_TIMEOUT_MS 5000	  /* to receive the request head */
#define TR_METRICS_WRITE_TIMEOUT_MS 10000 /* to send the response */
#define TR_METRICS_MAX_CONNS 16		  /* open connections; more wait in the backlog */

/* One id per family; label names in braces, in the order label_values[]
 * takes them. Every family without labels always has its one series. */
typedef enum {
	TR_METRIC_FETCHES = 0,	    /* counter trawler_fetches_total{status_class} */
	TR_METRIC_FETCH_BYTES,	    /* counter trawler_fetch_bytes_total */
	TR_METRIC_FETCH_DURATION,   /* histogram trawler_fetch_duration_seconds */
	TR_METRIC_PAGES_PROCESSED,  /* counter trawler_pages_processed_total */
	TR_METRIC_KAFKA_LAG,	    /* gauge trawler_kafka_consumer_lag{topic,partition} */
	TR_METRIC_CRAWL_PENDING,    /* gauge trawler_crawl_pending{crawl} */
	TR_METRIC_RETRIES,	    /* counter trawler_retries_total */
	TR_METRIC_ROBOTS_REFUSALS,  /* counter trawler_robots_refusals_total */
	TR_METRIC_HOST_QUEUE_DEPTH, /* gauge trawler_host_queue_depth */
	TR_METRIC_HOSTS_QUEUED,	    /* gauge trawler_hosts_queued */
	TR_METRIC_HOST_QUEUE_TOP,   /* gauge trawler_host_queue_depth_top{host} */
	TR_METRIC_DEDUP_HITS,	    /* counter trawler_dedup_hits_total */
	TR_METRIC_LINKS_ADMITTED,   /* counter trawler_links_admitted_total */
	TR_METRIC_HANDLER_ERRORS,   /* counter trawler_handler_errors_total{handler} */
	TR_METRIC_ITEMS_WRITTEN,    /* counter trawler_items_written_total{sink} */
	TR_METRIC_DEAD_LETTERS,	    /* counter trawler_dead_letters_total{stage} */
	TR_METRIC_FETCH_ERRORS,	    /* counter trawler_fetch_errors_total{error} */
	TR_METRIC_LIMIT_HITS,	    /* counter trawler_limit_hits_total{limit} */
	TR_METRIC_RENDER_REFUSED,   /* counter trawler_render_refused_total{reason} */
	TR_METRIC_BROWSER_RESTARTS, /* counter trawler_browser_restarts_total */
	TR_METRIC_HEARTBEAT,	    /* gauge trawler_heartbeat_timestamp_seconds */
	TR_METRIC_UP,		    /* gauge trawler_up, 1 after init */
	TR_METRIC_BUILD_INFO,	    /* gauge trawler_build_info{version}, 1 after init */
	TR_METRIC_COUNT
} tr_metric_id;

/* Set up the registry: every family without labels gets its series at 0,
 * trawler_fetches_total gets its five status classes and
 * trawler_limit_hits_total its known limits at 0, trawler_up and
 * trawler_build_info{version} are set to 1. `component` ("producer") names
 * the server in its `Server: trawler-<component>` response header; both
 * strings are copied; NULL means "unknown".
 * Returns 0, TR_ESTATE when already initialised, or TR_ENOMEM (nothing is
 * left allocated). Not thread-safe; no I/O. */
int tr_metrics_init(const char *component, const char *version);

/* Add `v` to a counter (ignored unless v >= 0) or to a gauge (any sign).
 * `label_values` holds one string per label of the family, in the order of
 * the comment above (NULL array or NULL entry = ""); the strings are copied
 * when a series is created. A call on the wrong family type, with a NaN
 * value, or that cannot allocate its new series is dropped. Thread-safe. */
void tr_metrics_inc(tr_metric_id id, const char *const label_values[], double v);

/* Set a gauge to `v`. Otherwise as tr_metrics_inc(). Thread-safe. */
void tr_metrics_set(tr_metric_id id, const char *const label_values[], double v);

/* Replace every series of the one-label gauge family `id` with n new ones:
 * label value label_values[i], value values[i]. Series not in the new set
 * are gone from the next scrape (for "top N" families whose members change).
 * A wrong family type is ignored; series that cannot be allocated are left
 * out. Thread-safe: a scrape sees the old set or the new one. */
void tr_metrics_gauge_replace(tr_metric_id id, size_t n, const char *const label_values[],
			      const double values[]);

/* A worker's main loop calls this every turn: it sets
 * trawler_heartbeat_timestamp_seconds to the Unix time, at most once a
 * second. A stale value means the loop is stuck (`trawlerctl health`).
 * Call from one thread only. */
void tr_metrics_heartbeat(void);

/* Record one observation `v` (seconds, bytes...) in a histogram: the first
 * bucket with v <= le, _sum and _count. Otherwise as tr_metrics_inc().
 * Thread-safe. */
void tr_metrics_observe(tr_metric_id id, const char *const label_values[], double v);

/* Count one hit of the hard cap `limit` (a name from docs/limits.md, e.g.
 * "title") in trawler_limit_hits_total{limit}. Thread-safe; a no-op before
 * init, so library code may call it whoever links it. */
void tr_metrics_limit_hit(const char *limit);

/* "2xx", "3xx", "4xx", "5xx" for an HTTP status of 200..599, else "error"
 * (no response). The label value for TR_METRIC_FETCHES; a static string. */
const char *tr_metrics_status_class(long http_status);

/* Append every family in the Prometheus text exposition format 0.0.4 to
 * `out` (the tr_buf's max caps the size). Returns 0, TR_ESTATE before init,
 * TR_ENOMEM or TR_ETOOBIG; on failure `out` is back at its length on entry.
 * Thread-safe (holds the registry lock while rendering); no I/O. */
int tr_metrics_render(tr_buf *out);

/* Listen on `bind_addr`:`port` (NULL = "0.0.0.0"; a name or an IPv4/IPv6
 * literal) and serve, from a background thread, GET/HEAD /metrics (the
 * render above), /healthz ("ok"), 404 for other paths, one request per
 * connection (Connection: close). Limits: TR_METRICS_HEAD_MAX,
 * TR_METRICS_READ_TIMEOUT_MS, TR_METRICS_WRITE_TIMEOUT_MS,
 * TR_METRICS_MAX_CONNS. Port 0 means off: returns 0 and does nothing.
 * Returns 0 once listening, TR_EINVAL for a bad port or address, TR_ESTATE
 * before init or when already serving, TR_EIO when the socket cannot be
 * bound (logged), TR_ENOMEM. On failure nothing is left open. The thread
 * blocks all signals. Not thread-safe; does I/O. */
int tr_metrics_serve(int port, const char *bind_addr);

/* Stop the server thread (if any, waiting for it), close its sockets and
 * free the registry; afterwards updates are no-ops and tr_metrics_init()
 * may be called again. Safe to call when not initialised. Not thread-safe
 * against init/serve; concurrent updates are fine. */
void tr_metrics_shutdown(void);

#endif
