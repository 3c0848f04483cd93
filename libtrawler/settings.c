/* settings.c - the option table and its loader (defaults, file, env, flags). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "settings.h"

typedef enum { OPT_STRING, OPT_LONG, OPT_DOUBLE, OPT_BOOL } opt_type;

typedef struct opt {
	const char *name; /* flag --name, env TRAWLER_NAME, file key name */
	opt_type type;
	const char *def; /* default, as text */
	size_t offset;	 /* into tr_settings */
	double min, max; /* accepted range for numbers */
	unsigned exe;	 /* TR_EXE_* it applies to */
	const char *help;
} opt;

#define O(f) offsetof(tr_settings, f)
#define BIG 1e15

/* clang-format off */
static const opt options[] = {
	{"config", OPT_STRING, NULL, (size_t)-1, 0, 0, TR_EXE_ALL,
	 "Read options from FILE (lines `name = value`, `#` comments)."},
	{"brokers", OPT_STRING, "127.0.0.1:9092", O(brokers), 0, 0, TR_EXE_ALL,
	 "Kafka bootstrap servers, comma separated."},
	{"redis", OPT_STRING, "redis://127.0.0.1:6379/0", O(redis), 0, 0, TR_EXE_ALL,
	 "Redis URL: redis://[:password@]host:port[/db]."},
	{"crawl-id", OPT_STRING, "default", O(crawl_id), 0, 0, TR_EXE_ALL,
	 "Crawl to seed, watch or exit with (letters, digits, - _ .)."},
	{"frontier-topic", OPT_STRING, "trawler.frontier", O(frontier_topic), 0, 0, TR_EXE_ALL,
	 "Kafka topic of crawl requests."},
	{"pages-topic", OPT_STRING, "trawler.pages", O(pages_topic), 0, 0, TR_EXE_ALL,
	 "Kafka topic of fetch results."},
	{"items-topic", OPT_STRING, "trawler.items", O(items_topic), 0, 0, TR_EXE_ALL,
	 "Kafka topic of extracted items."},
	{"dlq-topic", OPT_STRING, "trawler.deadletter", O(dlq_topic), 0, 0, TR_EXE_ALL,
	 "Kafka dead-letter topic for messages that could not be processed."},
	{"group", OPT_STRING, NULL, O(group), 0, 0, TR_EXE_WORKERS,
	 "Kafka consumer group (default trawler-producers / trawler-consumers)."},
	{"worker-id", OPT_STRING, NULL, O(worker_id), 0, 0, TR_EXE_WORKERS,
	 "Name of this worker in logs and results (default HOSTNAME-PID)."},
	{"log-format", OPT_STRING, "logfmt", O(log_format), 0, 0, TR_EXE_ALL,
	 "Log line format: logfmt or json."},
	{"log-level", OPT_STRING, "info", O(log_level), 0, 0, TR_EXE_ALL,
	 "Minimum log level: debug, info, warn or error."},
	{"exit-when-done", OPT_BOOL, "false", O(exit_when_done), 0, 0, TR_EXE_WORKERS,
	 "Exit cleanly once the crawl --crawl-id is complete."},
	{"stop-timeout", OPT_DOUBLE, "30", O(stop_timeout), 0.1, 3600, TR_EXE_WORKERS,
	 "Seconds to drain in-flight work after SIGTERM/SIGINT (or crawl completion) before "
	 "exiting; the Kafka clean-up after it gets 60 s more, then the process exits anyway."},
	{"connect-check-timeout", OPT_DOUBLE, "10", O(connect_check_timeout), 0.5, 600, TR_EXE_ALL,
	 "Seconds to wait for Kafka and Redis at start-up before failing."},
	{"metrics-port", OPT_LONG, "0", O(metrics_port), 0, 65535, TR_EXE_ALL,
	 "Serve Prometheus metrics on this port (0 = off); trawlerctl health probes it on "
	 "127.0.0.1."},
	{"metrics-bind", OPT_STRING, "0.0.0.0", O(metrics_bind), 0, 0, TR_EXE_WORKERS,
	 "Address the metrics endpoint listens on."},
	{"concurrency", OPT_LONG, "256", O(concurrency), 1, 10000, TR_EXE_PRODUCER,
	 "Maximum transfers in flight per producer."},
	{"delay", OPT_DOUBLE, "1", O(delay), 0, 3600, TR_EXE_PRODUCER,
	 "Minimum seconds between request starts to one host (or group, see --politeness)."},
	{"host-connections", OPT_LONG, "1", O(host_connections), 1, 1000, TR_EXE_PRODUCER,
	 "Maximum concurrent connections to one host (or group, see --politeness)."},
	{"politeness", OPT_STRING, "host", O(politeness), 0, 0, TR_EXE_ALL,
	 "What --delay and --host-connections apply to: `host` (host:port), `domain` (registrable "
	 "domain) or `ip` (resolved address). Give every worker and trawlerctl the same value."},
	{"resolve", OPT_STRING, "", O(resolve), 0, 0, TR_EXE_PRODUCER,
	 "Fixed addresses HOST:PORT:ADDR,... (as curl --resolve), used to fetch and for "
	 "--politeness ip."},
	{"timeout", OPT_DOUBLE, "30", O(timeout), 0.1, 3600, TR_EXE_PRODUCER,
	 "Total seconds allowed for one fetch."},
	{"connect-timeout", OPT_DOUBLE, "10", O(connect_timeout), 0.1, 600, TR_EXE_PRODUCER,
	 "Seconds allowed to connect."},
	{"low-speed-limit", OPT_LONG, "100", O(low_speed_limit), 0, 100000000, TR_EXE_PRODUCER,
	 "Abort a transfer slower than this many bytes/s for --low-speed-time (0 = off)."},
	{"low-speed-time", OPT_DOUBLE, "15", O(low_speed_time), 1, 3600, TR_EXE_PRODUCER,
	 "Seconds below --low-speed-limit before a transfer is aborted (a timeout)."},
	{"max-body", OPT_LONG, "10485760", O(max_body), 1024, 30000000, TR_EXE_PRODUCER,
	 "Maximum body bytes kept; larger bodies are cut and marked truncated."},
	{"user-agent", OPT_STRING, "trawler/0.1 (+https://github.com/trawler-crawler/trawler)",
	 O(user_agent), 0, 0, TR_EXE_PRODUCER, "User-Agent header, with a contact URL."},
	{"allow-private", OPT_BOOL, "false", O(allow_private), 0, 0, TR_EXE_PRODUCER | TR_EXE_CTL,
	 "Allow loopback and private-network targets (refused by default)."},
	{"allow-address", OPT_STRING, "", O(allow_address), 0, 0, TR_EXE_PRODUCER | TR_EXE_CTL,
	 "Addresses exempt from the private-address guard: CIDR list, e.g. 10.1.0.0/16,::1/128."},
	{"ca-file", OPT_STRING, "", O(ca_file), 0, 0, TR_EXE_PRODUCER,
	 "Extra PEM CA bundle trusted for HTTPS (the system store is used too)."},
	{"content-types", OPT_STRING,
	 "text/html,application/xhtml+xml,text/plain,text/xml,application/xml,application/json,"
	 "application/ld+json,application/rss+xml,application/atom+xml,text/csv",
	 O(content_types), 0, 0, TR_EXE_PRODUCER,
	 "Bodies downloaded only for these media types (decided from the headers; `type/` is a "
	 "prefix, `*` all); others are reported with error content_type."},
	{"robots", OPT_BOOL, "true", O(robots), 0, 0, TR_EXE_PRODUCER,
	 "Obey robots.txt (RFC 9309) for the user agent's product token."},
	{"robots-ttl", OPT_DOUBLE, "3600", O(robots_ttl), 1, 2592000, TR_EXE_PRODUCER,
	 "Seconds a fetched robots.txt stays cached (in Redis, cluster-wide)."},
	{"robots-retry", OPT_DOUBLE, "60", O(robots_retry), 0.1, 86400, TR_EXE_PRODUCER,
	 "Seconds a host waits after its robots.txt failed with 5xx or no answer."},
	{"sitemaps", OPT_BOOL, "false", O(sitemaps), 0, 0, TR_EXE_WORKERS,
	 "Admit the in-scope Sitemap: URLs of each robots.txt (producer) and follow the <loc> URLs "
	 "of sitemaps, gzip too (consumer)."},
	{"sitemap-max-urls", OPT_LONG, "50000", O(sitemap_max_urls), 1, 1000000, TR_EXE_CONSUMER,
	 "<loc> URLs taken from one sitemap (sitemaps.org allows 50,000)."},
	{"sitemap-max-bytes", OPT_LONG, "52428800", O(sitemap_max_bytes), 1024, 1073741824,
	 TR_EXE_CONSUMER, "Bytes of a gzip sitemap inflated at most (sitemaps.org allows 50 MiB)."},
	{"validators", OPT_BOOL, "false", O(validators), 0, 0, TR_EXE_ALL,
	 "Conditional GET for re-crawls: consumers keep each page's ETag and Last-Modified in "
	 "Redis (per site, across crawls), producers send them back; 304 is reported not_modified."},
	{"validators-ttl", OPT_LONG, "2592000", O(validators_ttl), 60, 315360000, TR_EXE_CONSUMER,
	 "Seconds a site's stored validators are kept after its last write."},
	{"revisit", OPT_BOOL, "false", O(revisit), 0, 0, TR_EXE_CTL,
	 "`trawlerctl seed`: also seed every URL of the seed hosts in the validator store (a "
	 "re-crawl reaches pages whose linking page answers 304)."},
	{"revisit-max", OPT_LONG, "1000000", O(revisit_max), 1, 100000000, TR_EXE_CTL,
	 "URLs taken from the validator store per seed host with --revisit."},
	{"seed-render", OPT_BOOL, "false", O(seed_render), 0, 0, TR_EXE_CTL,
	 "`trawlerctl seed`: mark the seeds `render`; producers load them in headless Chromium "
	 "whatever their --render-regex (links found on them are rendered only if they match "
	 "it)."},
	{"max-redirects", OPT_LONG, "10", O(max_redirects), 0, 100, TR_EXE_PRODUCER,
	 "Redirects followed per request."},
	{"max-queued", OPT_LONG, "10000", O(max_queued), 10, 10000000, TR_EXE_PRODUCER,
	 "Requests held in per-host queues before the frontier is paused."},
	{"max-unacked-mb", OPT_LONG, "8", O(max_unacked_mb), 1, 4096, TR_EXE_PRODUCER,
	 "Results published but not yet acknowledged by Kafka (MiB) before new fetches wait."},
	{"max-attempts", OPT_LONG, "3", O(max_attempts), 1, 100, TR_EXE_PRODUCER,
	 "Tries per request for timeouts, resets, 429 and 5xx before the failure is reported."},
	{"retry-base", OPT_DOUBLE, "1", O(retry_base), 0, 3600, TR_EXE_PRODUCER,
	 "First retry backoff in seconds; doubles per attempt, +-25% jitter."},
	{"retry-max", OPT_DOUBLE, "300", O(retry_max), 0, 86400, TR_EXE_PRODUCER,
	 "Longest backoff or Retry-After honoured, in seconds."},
	{"render-regex", OPT_STRING, "", O(render_regex), 0, 0, TR_EXE_PRODUCER,
	 "Load URLs matching this POSIX extended regular expression in headless Chromium and "
	 "publish the rendered DOM (docs/render.md); requests marked render are rendered too; "
	 "empty = only those."},
	{"render-tabs", OPT_LONG, "4", O(render_tabs), 1, 64, TR_EXE_PRODUCER,
	 "Browser tabs per producer: pages rendered at once."},
	{"render-timeout", OPT_DOUBLE, "30", O(render_timeout), 1, 3600, TR_EXE_PRODUCER,
	 "Seconds allowed to load and render one page (a timeout is retried like a fetch's)."},
	{"render-wait", OPT_STRING, "load", O(render_wait), 0, 0, TR_EXE_PRODUCER,
	 "When a rendered page is taken: `load` (load event), `networkidle` (no requests for "
	 "0.5 s) or `selector:CSS` (after load, once CSS matches an element)."},
	{"render-max-dom", OPT_LONG, "10485760", O(render_max_dom), 1024, 30000000, TR_EXE_PRODUCER,
	 "Rendered DOM bytes kept; a larger DOM is cut and marked truncated."},
	{"render-block", OPT_STRING, "image,media,font", O(render_block), 0, 0, TR_EXE_PRODUCER,
	 "Resource types a rendered page may not load (DevTools types: image, media, font, "
	 "stylesheet, script, xhr, fetch, ...; empty = none)."},
	{"chromium", OPT_STRING, "", O(chromium), 0, 0, TR_EXE_PRODUCER,
	 "Browser binary for rendering (empty: /usr/lib/chromium/chromium, else chromium, "
	 "chromium-browser or google-chrome on PATH)."},
	{"out", OPT_STRING, "out", O(out), 0, 0, TR_EXE_CONSUMER,
	 "Directory for pages.jsonl (one file per consumer: pages.WORKER.jsonl when >1)."},
	{"max-depth", OPT_LONG, "1000", O(max_depth), 0, 1000000, TR_EXE_CONSUMER,
	 "Links deeper than this many hops from a seed are not followed."},
	{"scope", OPT_STRING, "host", O(scope), 0, 0, TR_EXE_CONSUMER,
	 "Links followed: `host` (a seed's host:port) or `domain` (a seed's registrable domain)."},
	{"allow-regex", OPT_STRING, "", O(allow_regex), 0, 0, TR_EXE_CONSUMER,
	 "Follow only URLs matching this POSIX extended regular expression."},
	{"deny-regex", OPT_STRING, "", O(deny_regex), 0, 0, TR_EXE_CONSUMER,
	 "Never follow URLs matching this POSIX extended regular expression."},
	{"max-url-length", OPT_LONG, "2048", O(max_url_length), 0, 8192, TR_EXE_CONSUMER,
	 "Longer URLs are not followed (0 = up to the 8192 hard cap)."},
	{"strip-params", OPT_STRING, "utm_*,fbclid,gclid,dclid,msclkid,mc_eid,_ga,_hsenc",
	 O(strip_params), 0, 0, TR_EXE_CONSUMER | TR_EXE_CTL,
	 "Query parameters removed from URLs (names; `prefix*` for a prefix)."},
	{"sort-query", OPT_BOOL, "false", O(sort_query), 0, 0, TR_EXE_CONSUMER | TR_EXE_CTL,
	 "Order query parameters by name, so ?b=1&a=2 and ?a=2&b=1 are one URL."},
	{"max-pages-per-host", OPT_LONG, "0", O(max_pages_per_host), 0, 1000000000,
	 TR_EXE_CONSUMER, "Admit at most this many URLs per host and crawl (0 = no cap; a trap guard)."},
	{"follow-nofollow", OPT_BOOL, "false", O(follow_nofollow), 0, 0, TR_EXE_CONSUMER,
	 "Also follow rel=nofollow links and links of pages whose robots meta says nofollow."},
	{"max-links", OPT_LONG, "10000", O(max_links), 0, 1000000, TR_EXE_CONSUMER,
	 "Links taken from one page at most."},
	{"dedup-buckets", OPT_LONG, "1024", O(dedup_buckets), 1, 16777216, TR_EXE_CONSUMER | TR_EXE_CTL,
	 "Redis dedup buckets per crawl; size to expected URLs / 400 (set when seeding)."},
	{"head-extensions", OPT_STRING,
	 "pdf,doc,docx,xls,xlsx,ppt,pptx,odt,ods,odp,rtf,epub,zip,gz,tgz,bz2,xz,7z,rar,tar,"
	 "jpg,jpeg,png,gif,webp,svg,ico,bmp,tif,tiff,avif,mp3,wav,ogg,flac,m4a,aac,mp4,m4v,avi,"
	 "mov,mkv,webm,wmv,flv,iso,exe,dmg,apk,msi,bin,woff,woff2,ttf,otf,eot",
	 O(head_extensions), 0, 0, TR_EXE_CONSUMER,
	 "Links whose path ends in one of these extensions are checked with HEAD (empty: none)."},
	{"extract", OPT_STRING, "", O(extract), 0, 0, TR_EXE_CONSUMER,
	 "Extraction rules file (XPath and JSON fields per URL pattern, docs/extract.md): fields "
	 "go under \"fields\" in pages.jsonl; empty = off."},
	{"items", OPT_BOOL, "false", O(items), 0, 0, TR_EXE_CONSUMER,
	 "Publish one trawler.v1.Item per page (with its fields) to --items-topic."},
	{"plugin", OPT_STRING, "", O(plugin), 0, 0, TR_EXE_CONSUMER,
	 "Handler plug-ins (shared objects, comma separated), run after the extractors, before the sinks."},
	{"plugin-config", OPT_STRING, "", O(plugin_config), 0, 0, TR_EXE_CONSUMER,
	 "Configuration string handed to every plug-in's create()."},
	{"postgres", OPT_STRING, "", O(postgres), 0, 0, TR_EXE_CONSUMER,
	 "Also upsert one row per page into PostgreSQL: a libpq connection string (spaces, no "
	 "commas; password via PGPASSWORD or ~/.pgpass), empty = off."},
	{"postgres-table", OPT_STRING, "trawler_pages", O(postgres_table), 0, 0, TR_EXE_CONSUMER,
	 "Table the PostgreSQL sink writes (created if missing; NAME or SCHEMA.NAME)."},
	{"jsonl-max-bytes", OPT_LONG, "1073741824", O(jsonl_max_bytes), 0, 1099511627776L,
	 TR_EXE_CONSUMER, "Rotate pages.jsonl past this size (0 = never)."},
	{"warc", OPT_BOOL, "false", O(warc), 0, 0, TR_EXE_CONSUMER,
	 "Also archive every HTTP response as WARC/1.1 request and response records in "
	 "OUT/warc/trawler-TIME-PID-SERIAL.warc.gz (one gzip member per record)."},
	{"warc-max-bytes", OPT_LONG, "1073741824", O(warc_max_bytes), 0, 1099511627776L,
	 TR_EXE_CONSUMER, "Start a new WARC file once one holds this many bytes (0 = never)."},
	{"lease", OPT_DOUBLE, "1800", O(lease), 1, 604800, TR_EXE_CONSUMER,
	 "Seconds an admitted URL may stay unfinished before it is enqueued again."},
	{"transactional", OPT_BOOL, "false", O(transactional), 0, 0, TR_EXE_CONSUMER,
	 "Run each batch (frontier links, items, dead letters, pages offsets) in one Kafka "
	 "transaction: readers with isolation.level=read_committed see each page once."},
	{"transactional-id", OPT_STRING, "", O(transactional_id), 0, 0, TR_EXE_CONSUMER,
	 "Kafka transactional.id with --transactional (default GROUP.WORKER-ID); a restarted "
	 "worker that keeps it aborts its predecessor's open transaction at once."},
	{"fault-skip-publish", OPT_LONG, "0", O(fault_skip_publish), 0, 1000000, TR_EXE_CONSUMER,
	 "Testing only: do not publish the first N admitted links (a crash between admission "
	 "and publish)."},
	{"fault-crash-point", OPT_STRING, "", O(fault_crash_point), 0, 0, TR_EXE_CONSUMER,
	 "Testing only, with --transactional: SIGKILL itself in batch --fault-crash-batch at "
	 "`before-commit` (offsets sent, transaction open) or `after-commit` (before Redis done)."},
	{"fault-crash-batch", OPT_LONG, "2", O(fault_crash_batch), 1, 1000000, TR_EXE_CONSUMER,
	 "Testing only: the batch (counted from 1, batches with pages) --fault-crash-point hits."},
	{"range", OPT_STRING, "", O(range), 0, 0, TR_EXE_CTL,
	 "`trawlerctl seed`: request only bytes FIRST-LAST (or FIRST-) of the seeds."},
	{"method", OPT_STRING, "GET", O(method), 0, 0, TR_EXE_CTL,
	 "`trawlerctl seed`: GET, or HEAD for headers only."},
	{"dedup", OPT_STRING, "exact", O(dedup), 0, 0, TR_EXE_CTL,
	 "`trawlerctl seed` of a new crawl: `exact` (bucketed sets, ~4.7 bytes/URL) or `bloom` "
	 "(Bloom filter: smaller, but a false positive silently skips a URL)."},
	{"bloom-capacity", OPT_DOUBLE, "10000000", O(bloom_capacity), 1000, 4e9, TR_EXE_CTL,
	 "Bloom mode: URLs the filter is sized for."},
	{"bloom-error", OPT_DOUBLE, "0.01", O(bloom_error), 1e-9, 0.5, TR_EXE_CTL,
	 "Bloom mode: false-positive rate at capacity (~1.2 bytes/URL at 0.01)."},
	{"partitions", OPT_LONG, "12", O(partitions), 1, 1000, TR_EXE_CTL,
	 "Partitions for topics created by `trawlerctl init`."},
	{"health-max-age", OPT_DOUBLE, "30", O(health_max_age), 1, 86400, TR_EXE_CTL,
	 "trawlerctl health: seconds since the worker's last main-loop turn before it counts "
	 "as stuck."},
	{"wait-timeout", OPT_DOUBLE, "0", O(wait_timeout), 0, 1e9, TR_EXE_CTL,
	 "`trawlerctl wait` gives up after this many seconds (0 = never)."},
	{"watch", OPT_BOOL, "false", O(watch), 0, 0, TR_EXE_CTL,
	 "`trawlerctl status` keeps updating."},
};
/* clang-format on */

static const opt *find_opt(const char *name, size_t len, unsigned exe)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(options); i++) {
		if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0 &&
		    (options[i].exe & exe))
			return &options[i];
	}
	return NULL;
}

static int set_passthrough(tr_settings *s, const char *key, const char *value, char *err,
			   size_t errlen)
{
	int rc = TR_OK;
	for (int i = 0; i < s->kafka_count; i++) {
		if (strcmp(s->kafka_keys[i], key) == 0) {
			char *v = strdup(value);
			if (!v)
				return TR_ENOMEM;
			free(s->kafka_values[i]);
			s->kafka_values[i] = v;
			return TR_OK;
		}
	}
	if (s->kafka_count >= TR_SETTINGS_MAX_PASSTHROUGH) {
		snprintf(err, errlen, "too many kafka.* options (at most %d)",
			 TR_SETTINGS_MAX_PASSTHROUGH);
		rc = TR_EINVAL;
		goto out;
	}
	s->kafka_keys[s->kafka_count] = strdup(key);
	s->kafka_values[s->kafka_count] = strdup(value);
	if (!s->kafka_keys[s->kafka_count] || !s->kafka_values[s->kafka_count]) {
		free(s->kafka_keys[s->kafka_count]);
		free(s->kafka_values[s->kafka_count]);
		rc = TR_ENOMEM;
		goto out;
	}
	s->kafka_count++;
out:
	return rc;
}

static int parse_bool(bool *out, const char *v)
{
	if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	    !strcasecmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
		 !strcasecmp(v, "off"))
		*out = false;
	else
		return TR_EINVAL;
	return TR_OK;
}

/* Store `value` for option `o`; `source` names where it came from. */
static int set_value(tr_settings *s, const opt *o, const char *value, const char *source, char *err,
		     size_t errlen)
{
	int rc = TR_OK;
	char *field = (char *)s + o->offset;
	char *end = NULL;

	switch (o->type) {
	case OPT_STRING: {
		char *copy = strdup(value);
		if (!copy)
			return TR_ENOMEM;
		free(*(char **)field);
		*(char **)field = copy;
		break;
	}
	case OPT_BOOL:
		if (parse_bool((bool *)field, value) != TR_OK) {
			snprintf(err, errlen,
				 "%s: option %s: invalid value '%s' (accepted: true or false)",
				 source, o->name, value);
			rc = TR_EINVAL;
		}
		break;
	case OPT_LONG: {
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end != '\0' || v < (long)o->min || v > (long)o->max) {
			snprintf(err, errlen,
				 "%s: option %s: invalid value '%s' (accepted: integer %ld..%ld)",
				 source, o->name, value, (long)o->min, (long)o->max);
			rc = TR_EINVAL;
		} else {
			*(long *)field = v;
		}
		break;
	}
	case OPT_DOUBLE: {
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end != '\0' || !isfinite(v) || v < o->min ||
		    v > o->max) {
			snprintf(err, errlen,
				 "%s: option %s: invalid value '%s' (accepted: number %g..%g)",
				 source, o->name, value, o->min, o->max);
			rc = TR_EINVAL;
		} else {
			*(double *)field = v;
		}
		break;
	}
	}
	return rc;
}

static char *trim(char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	size_t n = strlen(p);
	while (n > 0 && isspace((unsigned char)p[n - 1]))
		p[--n] = '\0';
	return p;
}

static int load_file(tr_settings *s, unsigned exe, const char *path, char *err, size_t errlen)
{
	int rc = TR_OK;
	char line[4096];
	char source[600];
	int lineno = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "option config: cannot open '%s': %s", path, strerror(errno));
		return TR_EINVAL;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line longer than %zu bytes", path, lineno,
				 sizeof(line) - 2);
			rc = TR_EINVAL;
			goto out;
		}
		char *p = trim(line);
		if (*p == '#' || *p == '\0')
			continue;
		char *eq = strchr(p, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected `name = value`", path, lineno);
			rc = TR_EINVAL;
			goto out;
		}
		*eq = '\0';
		char *key = trim(p), *value = trim(eq + 1);
		snprintf(source, sizeof(source), "%s:%d", path, lineno);
		if (strncmp(key, "kafka.", 6) == 0) {
			rc = set_passthrough(s, key + 6, value, err, errlen);
		} else {
			const opt *o = find_opt(key, strlen(key), exe);
			if (!o || o->offset == (size_t)-1) {
				snprintf(err, errlen, "%s: unknown option '%s'", source, key);
				rc = TR_EINVAL;
			} else {
				rc = set_value(s, o, value, source, err, errlen);
			}
		}
		if (rc != TR_OK)
			goto out;
	}
out:
	fclose(f);
	return rc;
}

static void env_name(char *out, size_t outlen, const char *name)
{
	size_t i = 0;
	int n = snprintf(out, outlen, "TRAWLER_");
	for (i = 0; name[i] && (size_t)n + i + 1 < outlen; i++)
		out[n + i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	out[n + i] = '\0';
}

int tr_settings_load(tr_settings *s, unsigned exe, int argc, char **argv, char ***positional,
		     int *npositional, bool *help_out, char *err, size_t errlen)
{
	int rc = TR_OK;
	const char *config_path = NULL;
	char **pos = NULL;
	int npos = 0;

	memset(s, 0, sizeof(*s));
	*help_out = false;
	pos = calloc((size_t)argc + 1, sizeof(*pos));
	if (!pos)
		return TR_ENOMEM;

	/* 1. defaults */
	for (size_t i = 0; i < TR_ARRAY_LEN(options); i++) {
		if (options[i].def && options[i].offset != (size_t)-1 &&
		    (rc = set_value(s, &options[i], options[i].def, "default", err, errlen)))
			goto out;
	}
	/* 2. config file: from the environment or the command line */
	config_path = getenv("TRAWLER_CONFIG");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			config_path = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config_path = argv[i] + 9;
	}
	if (config_path && (rc = load_file(s, exe, config_path, err, errlen)))
		goto out;
	/* 3. environment */
	for (size_t i = 0; i < TR_ARRAY_LEN(options); i++) {
		char name[80];
		if (!(options[i].exe & exe) || options[i].offset == (size_t)-1)
			continue;
		env_name(name, sizeof(name), options[i].name);
		const char *v = getenv(name);
		if (v && (rc = set_value(s, &options[i], v, name, err, errlen)))
			goto out;
	}
	/* 4. flags */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				pos[npos++] = argv[i];
			break;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			*help_out = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			pos[npos++] = argv[i];
			continue;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		if (strncmp(name, "kafka.", 6) == 0) {
			if (!eq) {
				snprintf(err, errlen, "option %s: expected --kafka.KEY=VALUE", a);
				rc = TR_EINVAL;
				goto out;
			}
			char key[256];
			snprintf(key, sizeof(key), "%.*s", (int)(nlen - 6), name + 6);
			if ((rc = set_passthrough(s, key, eq + 1, err, errlen)))
				goto out;
			continue;
		}
		bool negated = false;
		const opt *o = find_opt(name, nlen, exe);
		if (!o && nlen > 3 && strncmp(name, "no-", 3) == 0) {
			o = find_opt(name + 3, nlen - 3, exe);
			negated = o && o->type == OPT_BOOL;
			if (!negated)
				o = NULL;
		}
		if (!o) {
			snprintf(err, errlen, "unknown option --%.*s (see --help)", (int)nlen,
				 name);
			rc = TR_EINVAL;
			goto out;
		}
		const char *value = NULL;
		if (eq)
			value = eq + 1;
		else if (o->type == OPT_BOOL)
			value = negated ? "false" : "true";
		else if (i + 1 < argc)
			value = argv[++i];
		else {
			snprintf(err, errlen, "option --%s: missing value", o->name);
			rc = TR_EINVAL;
			goto out;
		}
		if (o->offset == (size_t)-1)
			continue; /* --config, already loaded */
		char source[96];
		snprintf(source, sizeof(source), "--%s", o->name);
		if ((rc = set_value(s, o, value, source, err, errlen)))
			goto out;
	}
	/* cross-checks */
	{
		tr_log_level l;
		tr_log_format f;
		if (tr_log_parse_format(&f, s->log_format) != TR_OK) {
			snprintf(err, errlen,
				 "option log-format: invalid value '%s' (accepted: logfmt, json)",
				 s->log_format);
			rc = TR_EINVAL;
			goto out;
		}
		if (tr_log_parse_level(&l, s->log_level) != TR_OK) {
			snprintf(err, errlen,
				 "option log-level: invalid value '%s' (accepted: debug, info, "
				 "warn, error)",
				 s->log_level);
			rc = TR_EINVAL;
			goto out;
		}
		for (const char *p = s->crawl_id; *p; p++) {
			if (!isalnum((unsigned char)*p) && !strchr("-_.", *p)) {
				snprintf(err, errlen,
					 "option crawl-id: invalid value '%s' (accepted: letters, "
					 "digits, - _ .)",
					 s->crawl_id);
				rc = TR_EINVAL;
				goto out;
			}
		}
		if (s->crawl_id[0] == '\0' || strlen(s->crawl_id) > 100) {
			snprintf(err, errlen, "option crawl-id: must be 1..100 characters");
			rc = TR_EINVAL;
			goto out;
		}
	}
	*positional = pos;
	*npositional = npos;
	pos = NULL;
out:
	free(pos);
	return rc;
}

void tr_settings_free(tr_settings *s)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(options); i++) {
		if (options[i].type == OPT_STRING && options[i].offset != (size_t)-1) {
			char **p = (char **)((char *)s + options[i].offset);
			free(*p);
			*p = NULL;
		}
	}
	for (int i = 0; i < s->kafka_count; i++) {
		free(s->kafka_keys[i]);
		free(s->kafka_values[i]);
	}
	s->kafka_count = 0;
}

static const char *type_name(opt_type t)
{
	switch (t) {
	case OPT_STRING:
		return "string";
	case OPT_LONG:
		return "integer";
	case OPT_DOUBLE:
		return "number";
	case OPT_BOOL:
		return "bool";
	}
	return "?";
}

void tr_settings_print_help(FILE *f, unsigned exe, const char *usage)
{
	fprintf(f,
		"%s\n\nOptions (also settable as TRAWLER_NAME in the environment or "
		"`name = value` in --config FILE):\n",
		usage);
	for (size_t i = 0; i < TR_ARRAY_LEN(options); i++) {
		const opt *o = &options[i];
		if (!(o->exe & exe))
			continue;
		fprintf(f, "  --%-22s %s", o->name, o->help);
		if (o->def)
			fprintf(f, " [%s]", o->def);
		fputc('\n', f);
	}
	fprintf(f, "  --kafka.KEY=VALUE        Pass KEY=VALUE to librdkafka.\n"
		   "  --help                   Show this help.\n");
}

void tr_settings_print_markdown(FILE *f)
{
	fprintf(f, "| option | env | type | default | range | applies to | meaning |\n"
		   "| --- | --- | --- | --- | --- | --- | --- |\n");
	for (size_t i = 0; i < TR_ARRAY_LEN(options); i++) {
		const opt *o = &options[i];
		char env[80], range[64] = "";
		env_name(env, sizeof(env), o->name);
		if (o->type == OPT_LONG)
			snprintf(range, sizeof(range), "%ld..%ld", (long)o->min, (long)o->max);
		else if (o->type == OPT_DOUBLE)
			snprintf(range, sizeof(range), "%g..%g", o->min, o->max);
		fprintf(f, "| `--%s` | `%s` | %s | %s | %s | %s%s%s | %s |\n", o->name, env,
			type_name(o->type), o->def ? o->def : "", range,
			(o->exe & TR_EXE_PRODUCER) ? "producer " : "",
			(o->exe & TR_EXE_CONSUMER) ? "consumer " : "",
			(o->exe & TR_EXE_CTL) ? "ctl" : "", o->help);
	}
}
