/* metrics.c - Prometheus metric registry, text exposition 0.0.4 and the
 * /metrics HTTP server thread. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define MAX_LABELS 2 /* most label names any family has */
/* joined label values, each with its NUL */
#define KEY_MAX (MAX_LABELS * (TR_METRICS_MAX_VALUE + 1))
/* rendered /metrics plus headers */
#define RESPONSE_MAX ((size_t)64 << 20)
/* after the response, drain what the client still sends for this long, or
 * up to this many bytes, so that our close does not become a reset */
#define LINGER_MS 1000
#define LINGER_MAX_BYTES 65536
/* stop polling the listener this long after accept() fails with EMFILE */
#define ACCEPT_PAUSE_MS 200
#define POLL_MAX_MS 1000

typedef enum { FAM_COUNTER = 0, FAM_GAUGE, FAM_HISTOGRAM } fam_type;

/* One metric family, declared once in families[] below. */
typedef struct fam_def {
	const char *name;
	fam_type type;
	const char *help;
	const char *labels[MAX_LABELS]; /* label names; unused slots NULL */
	const double *buckets;		/* histogram upper bounds, increasing, +Inf implied */
	size_t nbuckets;
	const char *const *presets; /* one-label families: values created at init, NULL-ended */
} fam_def;

static const double fetch_duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
						0.5,   1,    2.5,   5,	  10,  30};
static const char *const status_classes[] = {"2xx", "3xx", "4xx", "5xx", "error", NULL};
/* Every cap that counts its hits (docs/limits.md): created at 0. */
static const char *const limit_names[] = {"body_size",
					  "header_size",
					  "headers_kept",
					  "redirect_hops_kept",
					  "retry_wait",
					  "queue_full",
					  "robots_size",
					  "robots_rules",
					  "robots_rule_bytes",
					  "robots_sitemaps",
					  "robots_crawl_delay",
					  "html_utf8",
					  "url_length",
					  "followed_url_length",
					  "links_per_page",
					  "title",
					  "pages_per_host",
					  "max_depth",
					  "query_params",
					  "scope_hosts",
					  "rule_values",
					  "field_values",
					  "field_value_bytes",
					  "deadletter_original",
					  "sitemap",
					  "polite_dns_cache",
					  "polite_dns_queue",
					  "log_line",
					  "metrics_head",
					  "metrics_timeout",
					  "metric_series",
					  "metric_label_value",
					  "render_dom",
					  NULL};
static const char *const refuse_reasons[] = {"type", "address", "robots", "other", NULL};

static const fam_def families[] = {
    [TR_METRIC_FETCHES] = {.name = "trawler_fetches_total",
			   .type = FAM_COUNTER,
			   .help =
			       "Fetches finished, by HTTP status class (error: no HTTP response).",
			   .labels = {"status_class"},
			   .presets = status_classes},
    [TR_METRIC_FETCH_BYTES] = {.name = "trawler_fetch_bytes_total",
			       .type = FAM_COUNTER,
			       .help = "Response body bytes received by fetches."},
    [TR_METRIC_FETCH_DURATION] = {.name = "trawler_fetch_duration_seconds",
				  .type = FAM_HISTOGRAM,
				  .help = "Time from fetch start to the complete response.",
				  .buckets = fetch_duration_buckets,
				  .nbuckets = TR_ARRAY_LEN(fetch_duration_buckets)},
    [TR_METRIC_PAGES_PROCESSED] =
	{.name = "trawler_pages_processed_total",
	 .type = FAM_COUNTER,
	 .help = "Fetch results run through the consumer's handler pipeline."},
    [TR_METRIC_KAFKA_LAG] =
	{.name = "trawler_kafka_consumer_lag",
	 .type = FAM_GAUGE,
	 .help = "Messages between the consumer's position and the partition's high watermark.",
	 .labels = {"topic", "partition"}},
    [TR_METRIC_CRAWL_PENDING] =
	{.name = "trawler_crawl_pending",
	 .type = FAM_GAUGE,
	 .help = "URLs admitted but not yet done in a crawl (Redis pending count).",
	 .labels = {"crawl"}},
    [TR_METRIC_RETRIES] = {.name = "trawler_retries_total",
			   .type = FAM_COUNTER,
			   .help = "Fetches scheduled again after a retryable failure."},
    [TR_METRIC_ROBOTS_REFUSALS] = {.name = "trawler_robots_refusals_total",
				   .type = FAM_COUNTER,
				   .help =
				       "Requests not fetched because robots.txt disallows them."},
    [TR_METRIC_HOST_QUEUE_DEPTH] = {.name = "trawler_host_queue_depth",
				    .type = FAM_GAUGE,
				    .help = "Requests waiting in the per-host queues."},
    [TR_METRIC_HOSTS_QUEUED] = {.name = "trawler_hosts_queued",
				.type = FAM_GAUGE,
				.help = "Hosts with at least one request in their queue."},
    [TR_METRIC_HOST_QUEUE_TOP] =
	{.name = "trawler_host_queue_depth_top",
	 .type = FAM_GAUGE,
	 .help = "Requests queued for each of the 10 politeness groups (hosts) "
		 "with the most queued, refreshed every second.",
	 .labels = {"host"}},
    [TR_METRIC_DEDUP_HITS] = {.name = "trawler_dedup_hits_total",
			      .type = FAM_COUNTER,
			      .help = "Extracted links dropped because they were already seen."},
    [TR_METRIC_LINKS_ADMITTED] = {.name = "trawler_links_admitted_total",
				  .type = FAM_COUNTER,
				  .help = "New links admitted to the frontier."},
    [TR_METRIC_HANDLER_ERRORS] = {.name = "trawler_handler_errors_total",
				  .type = FAM_COUNTER,
				  .help = "Consumer handler failures, by handler.",
				  .labels = {"handler"}},
    [TR_METRIC_ITEMS_WRITTEN] = {.name = "trawler_items_written_total",
				 .type = FAM_COUNTER,
				 .help = "Items written by the consumer's sinks, by sink.",
				 .labels = {"sink"}},
    [TR_METRIC_DEAD_LETTERS] = {.name = "trawler_dead_letters_total",
				.type = FAM_COUNTER,
				.help =
				    "Messages sent to the dead-letter topic, by pipeline stage.",
				.labels = {"stage"}},
    [TR_METRIC_FETCH_ERRORS] = {.name = "trawler_fetch_errors_total",
				.type = FAM_COUNTER,
				.help = "Fetches that got no HTTP response, by error.",
				.labels = {"error"}},
    [TR_METRIC_LIMIT_HITS] = {.name = "trawler_limit_hits_total",
			      .type = FAM_COUNTER,
			      .help = "Times a hard cap was hit, by limit.",
			      .labels = {"limit"},
			      .presets = limit_names},
    [TR_METRIC_RENDER_REFUSED] = {.name = "trawler_render_refused_total",
				  .type = FAM_COUNTER,
				  .help =
				      "Requests of rendered pages the producer failed, by reason "
				      "(blocked type, SSRF guard, robots.txt, other).",
				  .labels = {"reason"},
				  .presets = refuse_reasons},
    [TR_METRIC_BROWSER_RESTARTS] = {.name = "trawler_browser_restarts_total",
				    .type = FAM_COUNTER,
				    .help = "Times the render browser was lost (crash, hang, "
					    "protocol error) and dropped for a new one."},
    [TR_METRIC_HEARTBEAT] = {.name = "trawler_heartbeat_timestamp_seconds",
			     .type = FAM_GAUGE,
			     .help = "Unix time of the worker's last main-loop turn (updated "
				     "every second); stale means the worker is stuck."},
    [TR_METRIC_UP] = {.name = "trawler_up", .type = FAM_GAUGE, .help = "1 while the worker runs."},
    [TR_METRIC_BUILD_INFO] = {.name = "trawler_build_info",
			      .type = FAM_GAUGE,
			      .help = "Always 1; the version label names the running build.",
			      .labels = {"version"}},
};
_Static_assert(TR_ARRAY_LEN(families) == TR_METRIC_COUNT, "one families[] entry per id");

/* One label value set of a family. Allocated in one block: the struct, the
 * histogram bucket counts, then the key. */
typedef struct series {
	double value;	/* counter or gauge */
	double sum;	/* histogram: sum of observations */
	uint64_t count; /* histogram: number of observations */
	uint32_t hash;	/* of key */
	size_t keylen;
	char *key;	    /* label values back to back, each NUL-terminated */
	uint64_t buckets[]; /* histogram: count per bucket, not cumulative */
} series;

typedef struct family {
	series **all; /* in creation order, which is also render order */
	size_t n, cap;
	int32_t *slots; /* open-addressing index into all[]; -1 = empty */
	size_t nslots;	/* 0 or a power of two >= 2 * n */
} family;

static struct {
	pthread_mutex_t lock; /* guards everything below */
	bool ready;
	char *component;
	family fams[TR_METRIC_COUNT];
	series *limit_series; /* trawler_limit_hits_total{limit="metric_series"} */
	series *limit_value;  /* trawler_limit_hits_total{limit="metric_label_value"} */
} g_reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

typedef enum { CONN_FREE = 0, CONN_READ, CONN_WRITE, CONN_LINGER } conn_state;

typedef struct conn {
	int fd;
	conn_state state;
	int64_t deadline_ms; /* monotonic; the connection is closed when it passes */
	size_t lingered;     /* bytes discarded after the response */
	tr_buf in;	     /* request head, at most TR_METRICS_HEAD_MAX */
	tr_buf out;	     /* the whole response */
	size_t sent;
} conn;

/* Server state: written by tr_metrics_serve/shutdown while the thread is not
 * running, otherwise owned by the thread. */
static struct {
	bool running;
	int listen_fd;
	int wake[2]; /* shutdown writes wake[1]; the thread polls wake[0] */
	pthread_t thread;
	int64_t accept_paused_until;
	char component[32]; /* for the Server header */
	conn conns[TR_METRICS_MAX_CONNS];
} g_srv = {.listen_fd = -1, .wake = {-1, -1}};

/* ---- registry ---- */

static size_t fam_nlabels(const fam_def *d)
{
	size_t n = 0;

	while (n < MAX_LABELS && d->labels[n] != NULL)
		n++;
	return n;
}

static uint32_t key_hash(const char *key, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 16777619u;
	}
	return h;
}

/* True when s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF): Prometheus rejects a scrape with anything else. */
static bool utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	bool ok = true;

	while (ok && i < n) {
		unsigned c = s[i];
		size_t len = c < 0x80		  ? 1
			     : (c & 0xE0) == 0xC0 ? 2
			     : (c & 0xF0) == 0xE0 ? 3
			     : (c & 0xF8) == 0xF0 ? 4
						  : 0;
		uint32_t cp = len == 1	 ? c
			      : len == 2 ? (c & 0x1F)
			      : len == 3 ? (c & 0x0F)
					 : (c & 0x07);

		if (len == 0 || i + len > n) {
			ok = false;
			break;
		}
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				ok = false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			ok = false;
		i += len;
	}
	return ok;
}

/* Join the label values into key (KEY_MAX bytes), each NUL-terminated; an
 * over-long or non-UTF-8 value becomes "other" and sets *replaced. Returns
 * the key length. */
static size_t build_key(char *key, const fam_def *d, const char *const vals[], bool *replaced)
{
	size_t len = 0, nl = fam_nlabels(d);

	key[0] = '\0'; /* a family without labels has the empty key */
	*replaced = false;
	for (size_t i = 0; i < nl; i++) {
		const char *v = vals != NULL && vals[i] != NULL ? vals[i] : "";
		size_t n = strnlen(v, TR_METRICS_MAX_VALUE + 1);

		if (n > TR_METRICS_MAX_VALUE || !utf8_valid(v, n)) {
			v = "other";
			n = 5;
			*replaced = true;
		}
		memcpy(key + len, v, n);
		len += n;
		key[len++] = '\0';
	}
	return len;
}

static size_t other_key(char *key, const fam_def *d)
{
	size_t len = 0, nl = fam_nlabels(d);

	for (size_t i = 0; i < nl; i++) {
		memcpy(key + len, "other", 6);
		len += 6;
	}
	return len;
}

static series *family_find(const family *f, const char *key, size_t keylen, uint32_t h)
{
	series *found = NULL;
	size_t mask = f->nslots - 1;

	if (f->nslots == 0)
		goto out;
	for (size_t i = h & mask; f->slots[i] >= 0; i = (i + 1) & mask) {
		series *s = f->all[f->slots[i]];

		if (s->hash == h && s->keylen == keylen && memcmp(s->key, key, keylen) == 0) {
			found = s;
			break;
		}
	}
out:
	return found;
}

static void slots_insert(int32_t *slots, size_t nslots, uint32_t h, int32_t idx)
{
	size_t mask = nslots - 1, i = h & mask;

	while (slots[i] >= 0)
		i = (i + 1) & mask;
	slots[i] = idx;
}

/* Create a series (the caller checked it does not exist). Returns it, or
 * NULL on allocation failure with the family unchanged. */
static series *family_add(family *f, const fam_def *d, const char *key, size_t keylen, uint32_t h)
{
	series *s = NULL;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		series **all = realloc(f->all, cap * sizeof(*all));

		if (all == NULL)
			goto out;
		f->all = all;
		f->cap = cap;
	}
	if ((f->n + 1) * 2 > f->nslots) {
		size_t nslots = f->nslots ? f->nslots * 2 : 16;
		int32_t *slots = malloc(nslots * sizeof(*slots));

		if (slots == NULL)
			goto out;
		for (size_t i = 0; i < nslots; i++)
			slots[i] = -1;
		for (size_t i = 0; i < f->n; i++)
			slots_insert(slots, nslots, f->all[i]->hash, (int32_t)i);
		free(f->slots);
		f->slots = slots;
		f->nslots = nslots;
	}
	s = calloc(1, sizeof(*s) + d->nbuckets * sizeof(s->buckets[0]) + keylen + 1);
	if (s == NULL)
		goto out;
	s->hash = h;
	s->keylen = keylen;
	s->key = (char *)(s->buckets + d->nbuckets);
	if (keylen > 0)
		memcpy(s->key, key, keylen);
	slots_insert(f->slots, f->nslots, h, (int32_t)f->n);
	f->all[f->n++] = s;
out:
	return s;
}

static void limit_hit(series *s)
{
	if (s != NULL)
		s->value += 1;
}

/* The series for these label values, created if needed and allowed; the
 * "other" series once the family is full. NULL on allocation failure.
 * Caller holds the lock. */
static series *series_get(tr_metric_id id, const char *const vals[])
{
	const fam_def *d = &families[id];
	family *f = &g_reg.fams[id];
	char key[KEY_MAX];
	bool replaced;
	size_t keylen = build_key(key, d, vals, &replaced);
	uint32_t h = key_hash(key, keylen);
	series *s = family_find(f, key, keylen, h);

	if (replaced)
		limit_hit(g_reg.limit_value);
	if (s == NULL && f->n < TR_METRICS_MAX_SERIES) {
		s = family_add(f, d, key, keylen, h);
	} else if (s == NULL) {
		keylen = other_key(key, d);
		h = key_hash(key, keylen);
		s = family_find(f, key, keylen, h);
		if (s == NULL)
			s = family_add(f, d, key, keylen, h);
		limit_hit(g_reg.limit_series);
	}
	return s;
}

static void registry_free(void)
{
	for (size_t i = 0; i < TR_METRIC_COUNT; i++) {
		family *f = &g_reg.fams[i];

		for (size_t k = 0; k < f->n; k++)
			free(f->all[k]);
		free(f->all);
		free(f->slots);
		memset(f, 0, sizeof(*f));
	}
	free(g_reg.component);
	g_reg.component = NULL;
	g_reg.limit_series = NULL;
	g_reg.limit_value = NULL;
	g_reg.ready = false;
}

int tr_metrics_init(const char *component, const char *version)
{
	int rc = TR_OK;
	const char *vers[1] = {version != NULL ? version : "unknown"};
	const char *lim[1];
	series *s;

	pthread_mutex_lock(&g_reg.lock);
	if (g_reg.ready) {
		rc = TR_ESTATE;
		goto out;
	}
	g_reg.component = strdup(component != NULL ? component : "unknown");
	if (g_reg.component == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < TR_METRIC_COUNT; i++) {
		const fam_def *d = &families[i];

		if (fam_nlabels(d) == 0 && series_get((tr_metric_id)i, NULL) == NULL)
			rc = TR_ENOMEM;
		for (size_t k = 0; d->presets != NULL && d->presets[k] != NULL; k++)
			if (series_get((tr_metric_id)i, &d->presets[k]) == NULL)
				rc = TR_ENOMEM;
	}
	if (rc != TR_OK)
		goto out;
	lim[0] = "metric_series";
	g_reg.limit_series = series_get(TR_METRIC_LIMIT_HITS, lim);
	lim[0] = "metric_label_value";
	g_reg.limit_value = series_get(TR_METRIC_LIMIT_HITS, lim);
	s = series_get(TR_METRIC_BUILD_INFO, vers);
	if (g_reg.limit_series == NULL || g_reg.limit_value == NULL || s == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	s->value = 1;
	g_reg.fams[TR_METRIC_UP].all[0]->value = 1;
	g_reg.fams[TR_METRIC_HEARTBEAT].all[0]->value = (double)tr_now_ms() / 1000.0;
	g_reg.ready = true;
out:
	if (rc == TR_ENOMEM)
		registry_free();
	pthread_mutex_unlock(&g_reg.lock);
	return rc;
}

typedef enum { OP_INC = 0, OP_SET, OP_OBSERVE } update_op;

/* Common path of the three updates. */
static void update(tr_metric_id id, const char *const vals[], double v, update_op op)
{
	series *s;
	fam_type t;
	bool ok = (unsigned)id < (unsigned)TR_METRIC_COUNT && !isnan(v);

	if (ok) {
		t = families[id].type;
		ok = (op == OP_INC && t == FAM_GAUGE) ||
		     (op == OP_INC && t == FAM_COUNTER && v >= 0) ||
		     (op == OP_SET && t == FAM_GAUGE) || (op == OP_OBSERVE && t == FAM_HISTOGRAM);
	}
	if (!ok)
		goto out;
	pthread_mutex_lock(&g_reg.lock);
	if (g_reg.ready && (s = series_get(id, vals)) != NULL) {
		if (op == OP_INC) {
			s->value += v;
		} else if (op == OP_SET) {
			s->value = v;
		} else {
			const fam_def *d = &families[id];
			size_t b = 0;

			while (b < d->nbuckets && v > d->buckets[b])
				b++;
			if (b < d->nbuckets)
				s->buckets[b]++;
			s->sum += v;
			s->count++;
		}
	}
	pthread_mutex_unlock(&g_reg.lock);
out:
	return;
}

void tr_metrics_inc(tr_metric_id id, const char *const label_values[], double v)
{
	update(id, label_values, v, OP_INC);
}

void tr_metrics_set(tr_metric_id id, const char *const label_values[], double v)
{
	update(id, label_values, v, OP_SET);
}

void tr_metrics_gauge_replace(tr_metric_id id, size_t n, const char *const label_values[],
			      const double values[])
{
	bool ok = (unsigned)id < (unsigned)TR_METRIC_COUNT && families[id].type == FAM_GAUGE &&
		  families[id].labels[0] != NULL && families[id].labels[1] == NULL;
	if (!ok)
		return;
	pthread_mutex_lock(&g_reg.lock);
	if (g_reg.ready) {
		family *f = &g_reg.fams[id];
		for (size_t k = 0; k < f->n; k++)
			free(f->all[k]);
		f->n = 0;
		for (size_t i = 0; i < f->nslots; i++)
			f->slots[i] = -1;
		for (size_t i = 0; i < n; i++) {
			const char *vals[1] = {label_values[i]};
			series *s = isnan(values[i]) ? NULL : series_get(id, vals);
			if (s)
				s->value = values[i];
		}
	}
	pthread_mutex_unlock(&g_reg.lock);
}

void tr_metrics_heartbeat(void)
{
	static int64_t last_ms;
	int64_t now = tr_now_ms();
	if (now - last_ms >= 1000) {
		last_ms = now;
		tr_metrics_set(TR_METRIC_HEARTBEAT, NULL, (double)now / 1000.0);
	}
}

void tr_metrics_observe(tr_metric_id id, const char *const label_values[], double v)
{
	update(id, label_values, v, OP_OBSERVE);
}

void tr_metrics_limit_hit(const char *limit)
{
	const char *lim[] = {limit};
	tr_metrics_inc(TR_METRIC_LIMIT_HITS, lim, 1);
}

const char *tr_metrics_status_class(long http_status)
{
	static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
	const char *c = "error";

	if (http_status >= 200 && http_status <= 599)
		c = classes[http_status / 100 - 2];
	return c;
}

/* ---- text exposition format 0.0.4 ---- */

/* Shortest text that reads back as v; Go's ParseFloat spellings of
 * infinities and NaN. */
static void fmt_double(char *dst, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(dst, n, "NaN");
	} else if (isinf(v)) {
		snprintf(dst, n, "%s", v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(dst, n, "%.15g", v);
		if (strtod(dst, NULL) != v)
			snprintf(dst, n, "%.17g", v);
	}
}

/* Append s escaping backslash and newline, and the double quote too when
 * `quote` (label values; HELP text leaves quotes alone). */
static int add_escaped(tr_buf *b, const char *s, bool quote)
{
	int rc = TR_OK;
	const char *run = s; /* start of the bytes not yet appended */

	for (const char *p = s; rc == TR_OK && *p != '\0'; p++) {
		const char *esc = *p == '\\'	       ? "\\\\"
				  : *p == '\n'	       ? "\\n"
				  : quote && *p == '"' ? "\\\""
						       : NULL;

		if (esc == NULL)
			continue;
		rc = tr_buf_add(b, run, (size_t)(p - run));
		if (rc == TR_OK)
			rc = tr_buf_adds(b, esc);
		run = p + 1;
	}
	if (rc == TR_OK)
		rc = tr_buf_adds(b, run);
	return rc;
}

/* One sample line: name[suffix]{labels[,le="..."]} value */
static int add_sample(tr_buf *b, const fam_def *d, const series *s, const char *suffix,
		      const char *le, double v)
{
	int rc;
	char num[40];
	const char *val = s->key;
	size_t nl = fam_nlabels(d);

	if ((rc = tr_buf_printf(b, "%s%s", d->name, suffix)) != TR_OK)
		goto out;
	if (nl > 0 || le != NULL) {
		if ((rc = tr_buf_adds(b, "{")) != TR_OK)
			goto out;
		for (size_t i = 0; i < nl; i++) {
			if ((rc = tr_buf_printf(b, "%s%s=\"", i ? "," : "", d->labels[i])) !=
				TR_OK ||
			    (rc = add_escaped(b, val, true)) != TR_OK ||
			    (rc = tr_buf_adds(b, "\"")) != TR_OK)
				goto out;
			val += strlen(val) + 1;
		}
		if (le != NULL &&
		    (rc = tr_buf_printf(b, "%sle=\"%s\"", nl ? "," : "", le)) != TR_OK)
			goto out;
		if ((rc = tr_buf_adds(b, "}")) != TR_OK)
			goto out;
	}
	fmt_double(num, sizeof(num), v);
	rc = tr_buf_printf(b, " %s\n", num);
out:
	return rc;
}

static int render_family(tr_buf *b, const fam_def *d, const family *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	int rc;
	char le[40];

	if ((rc = tr_buf_printf(b, "# HELP %s ", d->name)) != TR_OK ||
	    (rc = add_escaped(b, d->help, false)) != TR_OK ||
	    (rc = tr_buf_printf(b, "\n# TYPE %s %s\n", d->name, types[d->type])) != TR_OK)
		goto out;
	for (size_t i = 0; i < f->n; i++) {
		const series *s = f->all[i];
		uint64_t cum = 0;

		if (d->type != FAM_HISTOGRAM) {
			if ((rc = add_sample(b, d, s, "", NULL, s->value)) != TR_OK)
				goto out;
			continue;
		}
		for (size_t k = 0; k < d->nbuckets; k++) {
			cum += s->buckets[k];
			fmt_double(le, sizeof(le), d->buckets[k]);
			if ((rc = add_sample(b, d, s, "_bucket", le, (double)cum)) != TR_OK)
				goto out;
		}
		if ((rc = add_sample(b, d, s, "_bucket", "+Inf", (double)s->count)) != TR_OK ||
		    (rc = add_sample(b, d, s, "_sum", NULL, s->sum)) != TR_OK ||
		    (rc = add_sample(b, d, s, "_count", NULL, (double)s->count)) != TR_OK)
			goto out;
	}
out:
	return rc;
}

int tr_metrics_render(tr_buf *out)
{
	int rc = TR_OK;
	size_t start = out->len;

	pthread_mutex_lock(&g_reg.lock);
	if (!g_reg.ready) {
		rc = TR_ESTATE;
		goto out;
	}
	for (size_t i = 0; i < TR_METRIC_COUNT; i++)
		if ((rc = render_family(out, &families[i], &g_reg.fams[i])) != TR_OK)
			goto out;
out:
	pthread_mutex_unlock(&g_reg.lock);
	if (rc != TR_OK && out->data != NULL) {
		out->len = start;
		out->data[start] = '\0';
	}
	return rc;
}

/* ---- HTTP server ---- */

static void conn_close(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	tr_buf_free(&c->in);
	tr_buf_free(&c->out);
	c->fd = -1;
	c->state = CONN_FREE;
}

/* Send what is left of the response; once done, half-close and linger so
 * that unread request bytes do not turn our close into a reset that could
 * destroy the response before the client reads it. */
static void conn_write(conn *c, int64_t now)
{
	while (c->state == CONN_WRITE && c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);

		if (n > 0)
			c->sent += (size_t)n;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			goto out;
		else if (!(n < 0 && errno == EINTR))
			conn_close(c);
	}
	if (c->state == CONN_WRITE) {
		shutdown(c->fd, SHUT_WR);
		tr_buf_free(&c->in);
		tr_buf_free(&c->out);
		c->state = CONN_LINGER;
		c->deadline_ms = now + LINGER_MS;
		c->lingered = 0;
	}
out:
	return;
}

static void conn_linger(conn *c)
{
	char chunk[4096];

	while (c->state == CONN_LINGER) {
		ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);

		if (n > 0 && (c->lingered += (size_t)n) <= LINGER_MAX_BYTES)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (!(n < 0 && errno == EINTR))
			conn_close(c);
	}
}

/* Queue a complete response and start sending it. `body` may be NULL when
 * len is 0; `head_only` sends the headers of a HEAD request. */
static void conn_respond(conn *c, int64_t now, const char *status, const char *ctype,
			 const char *extra, const char *body, size_t len, bool head_only)
{
	int rc;

	tr_buf_init(&c->out, RESPONSE_MAX);
	rc = tr_buf_printf(&c->out,
			   "HTTP/1.1 %s\r\nServer: trawler-%s\r\nContent-Type: %s\r\n"
			   "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
			   status, g_srv.component, ctype, len, extra);
	if (rc == TR_OK && !head_only && len > 0)
		rc = tr_buf_add(&c->out, body, len);
	if (rc != TR_OK) {
		conn_close(c);
		goto out;
	}
	c->state = CONN_WRITE;
	c->sent = 0;
	c->deadline_ms = now + TR_METRICS_WRITE_TIMEOUT_MS;
	conn_write(c, now);
out:
	return;
}

static void conn_text(conn *c, int64_t now, const char *status, const char *extra, const char *text,
		      bool head_only)
{
	conn_respond(c, now, status, "text/plain; charset=utf-8", extra, text, strlen(text),
		     head_only);
}

/* A complete request head is in c->in: answer it. */
static void conn_handle(conn *c, int64_t now)
{
	char *line = c->in.data, *target, *version, *sp;
	size_t pathlen;
	bool head = false;
	tr_buf body;

	tr_buf_init(&body, RESPONSE_MAX - 1024);
	line[strcspn(line, "\r\n")] = '\0';
	if ((sp = strchr(line, ' ')) == NULL)
		goto bad;
	*sp = '\0';
	target = sp + 1;
	if ((sp = strchr(target, ' ')) == NULL)
		goto bad;
	*sp = '\0';
	version = sp + 1;
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0)
		goto bad;
	head = strcmp(line, "HEAD") == 0;
	if (!head && strcmp(line, "GET") != 0) {
		conn_text(c, now, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
			  "method not allowed\n", false);
		goto out;
	}
	pathlen = strcspn(target, "?");
	if (pathlen == 8 && memcmp(target, "/healthz", 8) == 0) {
		conn_text(c, now, "200 OK", "", "ok\n", head);
	} else if (pathlen == 8 && memcmp(target, "/metrics", 8) == 0) {
		if (tr_metrics_render(&body) == TR_OK)
			conn_respond(c, now, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
				     "", body.data, body.len, head);
		else
			conn_text(c, now, "500 Internal Server Error", "", "render failed\n", head);
	} else {
		conn_text(c, now, "404 Not Found", "", "not found\n", head);
	}
	goto out;
bad:
	conn_text(c, now, "400 Bad Request", "", "bad request\n", false);
out:
	tr_buf_free(&body);
}

static void conn_read(conn *c, int64_t now)
{
	char chunk[2048];
	size_t room = TR_METRICS_HEAD_MAX - c->in.len;
	ssize_t n = recv(c->fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk), 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		goto out;
	if (n <= 0 || tr_buf_add(&c->in, chunk, (size_t)n) != TR_OK) {
		conn_close(c);
		goto out;
	}
	if (memmem(c->in.data, c->in.len, "\r\n\r\n", 4) != NULL ||
	    memmem(c->in.data, c->in.len, "\n\n", 2) != NULL)
		conn_handle(c, now);
	else if (c->in.len >= TR_METRICS_HEAD_MAX) {
		tr_metrics_limit_hit("metrics_head");
		conn_text(c, now, "431 Request Header Fields Too Large", "",
			  "request head too large\n", false);
	}
out:
	return;
}

static void accept_new(int64_t now)
{
	size_t i = 0;

	while (i < TR_METRICS_MAX_CONNS) {
		conn *c = &g_srv.conns[i];
		int fd;

		if (c->state != CONN_FREE) {
			i++;
			continue;
		}
		fd = accept4(g_srv.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0) {
			/* EMFILE and the like: the listener stays readable, so stop
			 * polling it for a while instead of spinning. */
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				g_srv.accept_paused_until = now + ACCEPT_PAUSE_MS;
			break;
		}
		c->fd = fd;
		c->state = CONN_READ;
		c->deadline_ms = now + TR_METRICS_READ_TIMEOUT_MS;
		c->sent = 0;
		tr_buf_init(&c->in, TR_METRICS_HEAD_MAX);
		tr_buf_init(&c->out, RESPONSE_MAX);
		i++;
	}
}

static void *server_main(void *arg)
{
	struct pollfd pfds[2 + TR_METRICS_MAX_CONNS];
	size_t who[2 + TR_METRICS_MAX_CONNS];
	bool stop = false;

	TR_UNUSED(arg);
	while (!stop) {
		int64_t now = tr_mono_ms(), timeout = POLL_MAX_MS;
		nfds_t nfds = 0;
		int listen_idx = -1, n;
		size_t used = 0;

		pfds[nfds++] = (struct pollfd){.fd = g_srv.wake[0], .events = POLLIN};
		for (size_t i = 0; i < TR_METRICS_MAX_CONNS; i++) {
			conn *c = &g_srv.conns[i];

			if (c->state == CONN_FREE)
				continue;
			used++;
			who[nfds] = i;
			pfds[nfds++] = (struct pollfd){
			    .fd = c->fd, .events = c->state == CONN_WRITE ? POLLOUT : POLLIN};
			if (c->deadline_ms - now < timeout)
				timeout = c->deadline_ms - now;
		}
		if (used < TR_METRICS_MAX_CONNS && now >= g_srv.accept_paused_until) {
			listen_idx = (int)nfds;
			pfds[nfds++] = (struct pollfd){.fd = g_srv.listen_fd, .events = POLLIN};
		} else if (now < g_srv.accept_paused_until &&
			   g_srv.accept_paused_until - now < timeout) {
			timeout = g_srv.accept_paused_until - now;
		}
		n = poll(pfds, nfds, timeout < 0 ? 0 : (int)timeout);
		if (n < 0 && errno != EINTR) {
			tr_log(TR_LOG_ERROR, "metrics server stopped: poll failed", 1, "error",
			       strerror(errno));
			break;
		}
		now = tr_mono_ms();
		if (n > 0 && pfds[0].revents != 0)
			stop = true;
		for (nfds_t k = 1; n > 0 && !stop && k < nfds; k++) {
			conn *c;

			if ((int)k == listen_idx || pfds[k].revents == 0)
				continue;
			c = &g_srv.conns[who[k]];
			if (c->state == CONN_READ)
				conn_read(c, now);
			else if (c->state == CONN_WRITE)
				conn_write(c, now);
			if (c->state == CONN_LINGER)
				conn_linger(c);
		}
		for (size_t i = 0; i < TR_METRICS_MAX_CONNS; i++)
			if (g_srv.conns[i].state != CONN_FREE &&
			    now >= g_srv.conns[i].deadline_ms) {
				if (g_srv.conns[i].state != CONN_LINGER)
					tr_metrics_limit_hit("metrics_timeout");
				conn_close(&g_srv.conns[i]);
			}
		if (!stop && listen_idx >= 0 && (pfds[listen_idx].revents & POLLIN))
			accept_new(now);
	}
	return NULL;
}

int tr_metrics_serve(int port, const char *bind_addr)
{
	int rc = TR_OK, fd = -1, wake[2] = {-1, -1}, err = 0, gai;
	struct addrinfo hints, *res = NULL;
	const char *addr = bind_addr != NULL ? bind_addr : "0.0.0.0";
	char portstr[16];
	bool ready;
	sigset_t all, old;

	if (port == 0)
		goto out;
	if (port < 0 || port > 65535) {
		rc = TR_EINVAL;
		goto out;
	}
	pthread_mutex_lock(&g_reg.lock);
	ready = g_reg.ready;
	pthread_mutex_unlock(&g_reg.lock);
	if (!ready || g_srv.running) {
		rc = TR_ESTATE;
		goto out;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((gai = getaddrinfo(addr, portstr, &hints, &res)) != 0) {
		tr_log(TR_LOG_ERROR, "metrics: bad bind address", 2, "addr", addr, "error",
		       gai_strerror(gai));
		rc = gai == EAI_MEMORY ? TR_ENOMEM : TR_EINVAL;
		goto out;
	}
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		tr_log(TR_LOG_ERROR, "metrics: cannot listen", 3, "addr", addr, "port", portstr,
		       "error", strerror(err));
		rc = TR_EIO;
		goto out;
	}
	if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0) {
		tr_log(TR_LOG_ERROR, "metrics: pipe failed", 1, "error", strerror(errno));
		rc = TR_EIO;
		goto out;
	}
	g_srv.listen_fd = fd;
	g_srv.wake[0] = wake[0];
	g_srv.wake[1] = wake[1];
	g_srv.accept_paused_until = 0;
	pthread_mutex_lock(&g_reg.lock);
	snprintf(g_srv.component, sizeof(g_srv.component), "%s", g_reg.component);
	pthread_mutex_unlock(&g_reg.lock);
	for (char *p = g_srv.component; *p != '\0'; p++) /* a header token, no CR/LF */
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			*p = '_';
	for (size_t i = 0; i < TR_METRICS_MAX_CONNS; i++) {
		memset(&g_srv.conns[i], 0, sizeof(g_srv.conns[i]));
		g_srv.conns[i].fd = -1;
	}
	/* The thread inherits the mask: keep SIGTERM/SIGINT for the main loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&g_srv.thread, NULL, server_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		tr_log(TR_LOG_ERROR, "metrics: cannot start thread", 1, "error", strerror(err));
		g_srv.listen_fd = g_srv.wake[0] = g_srv.wake[1] = -1;
		rc = err == EAGAIN ? TR_ENOMEM : TR_EIO;
		goto out;
	}
	/* fd and wake[] now owned by the server thread / g_srv */
	g_srv.running = true;
	fd = wake[0] = wake[1] = -1;
	tr_log(TR_LOG_INFO, "metrics server listening", 2, "addr", addr, "port", portstr);
out:
	if (res != NULL)
		freeaddrinfo(res);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 2; i++)
		if (wake[i] >= 0)
			close(wake[i]);
	return rc;
}

void tr_metrics_shutdown(void)
{
	if (g_srv.running) {
		char one = 1;

		if (write(g_srv.wake[1], &one, 1) != 1)
			tr_log(TR_LOG_WARN, "metrics: wake-up write failed", 1, "error",
			       strerror(errno));
		pthread_join(g_srv.thread, NULL);
		for (size_t i = 0; i < TR_METRICS_MAX_CONNS; i++)
			if (g_srv.conns[i].state != CONN_FREE)
				conn_close(&g_srv.conns[i]);
		close(g_srv.listen_fd);
		close(g_srv.wake[0]);
		close(g_srv.wake[1]);
		g_srv.listen_fd = g_srv.wake[0] = g_srv.wake[1] = -1;
		g_srv.running = false;
	}
	pthread_mutex_lock(&g_reg.lock);
	registry_free();
	pthread_mutex_unlock(&g_reg.lock);
}
