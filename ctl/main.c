/* main.c - trawlerctl: create topics, validate and seed URLs, watch a crawl
 * and wait for it to complete. */
#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "crawlstate.h"
#include "fetch.h"
#include "jsonw.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"
#include "polite.h"
#include "redis.h"
#include "scope.h"
#include "url.h"
#include "validators.h"

#define USAGE                                                                                      \
	"usage: trawlerctl COMMAND [OPTIONS] [ARGS]\n"                                             \
	"Commands:\n"                                                                              \
	"  init                 create the Kafka topics (idempotent), check Redis\n"               \
	"  validate URL...      check seed URLs without contacting anything\n"                     \
	"  seed URL...          admit seed URLs into crawl --crawl-id and enqueue them\n"          \
	"  status               show admitted/pending/done/failed counts (all crawls with "        \
	"--crawl-id all)\n"                                                                        \
	"  wait                 block until crawl --crawl-id is complete (exit 0)\n"               \
	"  stats                Redis memory of crawl --crawl-id: bytes per URL, Bloom error\n"    \
	"  delete-topics        delete the four topics (a finished run's own topics)\n"            \
	"  dump-items           print the items topic as JSON lines, as a read_committed\n"        \
	"                       reader sees it (--kafka.isolation.level=read_uncommitted: all)\n"  \
	"  health               probe a worker on this host: its /metrics on --metrics-port\n"     \
	"                       answers, trawler_up is 1 and its main loop turned within\n"        \
	"                       --health-max-age seconds (exit 0 = healthy; a container\n"         \
	"                       health check)\n"                                                   \
	"  options-doc          print the options reference (markdown)"

/* Is the URL's host a literal private/loopback address (not exempted by
 * `allowed`, a CIDR list) or localhost? */
static bool host_is_private(const char *url, const char *allowed)
{
	bool priv = false;
	char *host = NULL;
	CURLU *u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		struct sockaddr_storage ss;
		char h[256];
		snprintf(h, sizeof(h), "%s", host);
		if (h[0] == '[') {
			h[strlen(h) - 1] = '\0';
			memmove(h, h + 1, strlen(h));
		}
		memset(&ss, 0, sizeof(ss));
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
		} else {
			size_t n = strlen(h);
			priv = strcasecmp(h, "localhost") == 0 ||
			       (n > 10 && strcasecmp(h + n - 10, ".localhost") == 0);
		}
		if (ss.ss_family != AF_UNSPEC)
			priv = tr_fetch_addr_is_private((struct sockaddr *)&ss) &&
			       tr_fetch_addr_in_list(allowed, (struct sockaddr *)&ss) != 1;
	}
	curl_free(host);
	curl_url_cleanup(u);
	return priv;
}

/* Canonicalize every seed; on the first bad one print why and fail. */
static int validate(const tr_settings *s, char **urls, int n, char **canon)
{
	if (n == 0) {
		fprintf(stderr, "trawlerctl: no seed URLs given\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		char *c = NULL;
		int rc = tr_url_canonicalize(&c, urls[i]);
		if (rc != TR_OK) {
			fprintf(stderr, "trawlerctl: malformed seed URL '%s': %s\n", urls[i],
				rc == TR_ETOOBIG ? "too long" : "not an absolute http(s) URL");
			return 2;
		}
		if (!s->allow_private && host_is_private(c, s->allow_address)) {
			fprintf(
			    stderr,
			    "trawlerctl: seed URL '%s' points at a loopback or private address; "
			    "refused without --allow-private (or --allow-address)\n",
			    urls[i]);
			free(c);
			return 2;
		}
		if (canon)
			canon[i] = c;
		else
			free(c);
	}
	return 0;
}

static int connect_redis(const tr_settings *s, tr_redis **r)
{
	char err[512];
	if (tr_redis_connect(r, s->redis, s->connect_check_timeout, err, sizeof(err)) != TR_OK) {
		fprintf(stderr, "trawlerctl: Redis unreachable: %s\n", err);
		return 1;
	}
	return 0;
}

static rd_kafka_t *connect_kafka(const tr_settings *s)
{
	char err[512];
	rd_kafka_t *rk = tr_kafka_producer_new(s, NULL, NULL, NULL, err, sizeof(err));
	if (!rk || tr_kafka_check(rk, s->brokers, s->connect_check_timeout, err, sizeof(err))) {
		fprintf(stderr, "trawlerctl: %s\n", err);
		if (rk)
			rd_kafka_destroy(rk);
		return NULL;
	}
	return rk;
}

static int cmd_init(const tr_settings *s)
{
	char err[512];
	tr_redis *r = NULL;
	int rc = connect_redis(s, &r);
	if (rc)
		return rc;
	tr_redis_free(r);
	rd_kafka_t *rk = connect_kafka(s);
	if (!rk)
		return 1;
	const char *topics[] = {s->frontier_topic, s->pages_topic, s->items_topic, s->dlq_topic};
	if (tr_kafka_create_topics(rk, topics, 4, (int)s->partitions, 30, err, sizeof(err))) {
		fprintf(stderr, "trawlerctl: %s\n", err);
		rc = 1;
	} else {
		printf("topics ready: %s %s %s %s (%ld partitions)\n", topics[0], topics[1],
		       topics[2], topics[3], s->partitions);
	}
	rd_kafka_destroy(rk);
	return rc;
}

/* --range FIRST-LAST or FIRST- into r; returns 0 or 2 with a message. */
static int parse_range(const char *spec, Trawler__V1__ByteRange *r)
{
	unsigned long long a = 0, b = 0;
	char dash = 0, extra = 0;
	int n = sscanf(spec, "%llu%c%llu%c", &a, &dash, &b, &extra);
	if (!((n == 2 && dash == '-') || (n == 3 && dash == '-' && b >= a))) {
		fprintf(stderr,
			"trawlerctl: option range: invalid value '%s' (accepted: FIRST-LAST or "
			"FIRST-)\n",
			spec);
		return 2;
	}
	r->first = a;
	r->last = n == 3 ? b : 0;
	return 0;
}

static int cmd_delete_topics(const tr_settings *s)
{
	char err[512];
	int rc = 0;
	rd_kafka_t *rk = connect_kafka(s);
	if (!rk)
		return 1;
	const char *topics[] = {s->frontier_topic, s->pages_topic, s->items_topic, s->dlq_topic};
	if (tr_kafka_delete_topics(rk, topics, 4, 30, err, sizeof(err))) {
		fprintf(stderr, "trawlerctl: %s\n", err);
		rc = 1;
	}
	rd_kafka_destroy(rk);
	return rc;
}

/* Admit seeds in chunks: a script takes at most 65,536 arguments. */
#define SEED_CHUNK 10000
static int admit_chunks(tr_redis *r, const tr_crawl_info *info, uint32_t marks, const uint64_t *fps,
			char **canon, int n, unsigned char *dec)
{
	for (int i = 0; i < n; i += SEED_CHUNK) {
		size_t m = (size_t)(n - i < SEED_CHUNK ? n - i : SEED_CHUNK);
		if (tr_crawl_admit(r, info, 0, marks, fps + i, canon + i, m, dec + i) != TR_OK)
			return TR_EIO;
	}
	return TR_OK;
}

static int cmd_seed(const tr_settings *s, char **urls, int n, int nscope);

struct revisit {
	char **urls;
	int n, cap;
	const char *base; /* scheme://authority of the seed */
	char **seeds;	  /* canonical seeds: not listed twice (admitted again) */
	int nseeds;
	bool oom;
};

static void on_stored(const char *path, void *payload)
{
	struct revisit *rv = payload;
	if (rv->oom)
		return;
	if (rv->n == rv->cap) {
		int cap = rv->cap ? rv->cap * 2 : 64;
		char **nu = realloc(rv->urls, (size_t)cap * sizeof(*nu));
		if (!nu) {
			rv->oom = true;
			return;
		}
		rv->urls = nu;
		rv->cap = cap;
	}
	size_t bl = strlen(rv->base), pl = strlen(path);
	char *u = malloc(bl + pl + 1);
	if (!u) {
		rv->oom = true;
		return;
	}
	memcpy(u, rv->base, bl);
	memcpy(u + bl, path, pl + 1);
	for (int i = 0; i < rv->nseeds; i++) {
		if (rv->seeds[i] && strcmp(rv->seeds[i], u) == 0) {
			free(u);
			return;
		}
	}
	rv->urls[rv->n++] = u;
}

/* seed --revisit: the given seeds, then every URL the validator store
 * lists for their hosts (at most --revisit-max per host). */
static int cmd_seed_revisit(const tr_settings *s, char **urls, int n)
{
	struct revisit rv = {NULL, 0, 0, NULL, NULL, 0, false};
	tr_redis *r = NULL;
	int rc = 0;
	char done[64][300];
	int ndone = 0;
	if ((rc = validate(s, urls, n, NULL)))
		return rc;
	if ((rc = connect_redis(s, &r)))
		return rc;
	rv.base = "";
	for (int i = 0; i < n && !rv.oom; i++)
		on_stored(urls[i], &rv); /* the seeds come first, unchanged */
	if (!(rv.seeds = calloc((size_t)n, sizeof(*rv.seeds)))) {
		tr_redis_free(r);
		return 1;
	}
	for (int i = 0; i < n; i++)
		tr_url_canonicalize(&rv.seeds[i], urls[i]); /* NULL when malformed */
	rv.nseeds = n;
	for (int i = 0; i < n && !rv.oom; i++) {
		char *c = NULL, key[300];
		if (tr_url_canonicalize(&c, urls[i]) != TR_OK ||
		    tr_url_host_key(key, sizeof(key), c) != TR_OK) {
			free(c);
			continue;
		}
		bool seen = false;
		for (int k = 0; k < ndone; k++)
			seen = seen || strcmp(done[k], key) == 0;
		const char *slash = strstr(c, "://");
		slash = slash ? strchr(slash + 3, '/') : NULL;
		if (slash && !seen && ndone < 64) {
			snprintf(done[ndone++], sizeof(done[0]), "%s", key);
			c[slash - c] = '\0';
			rv.base = c;
			long got = tr_validators_scan(r, key, s->revisit_max, on_stored, &rv);
			if (got < 0) {
				fprintf(stderr, "trawlerctl: Redis error reading stored URLs: %s\n",
					tr_redis_error(r));
				rc = 1;
			} else {
				printf("revisit: %ld stored URL(s) of %s\n", got, key);
			}
		}
		free(c);
	}
	tr_redis_free(r);
	if (rv.oom) {
		fprintf(stderr, "trawlerctl: out of memory listing stored URLs\n");
		rc = 1;
	}
	if (!rc)
		rc = cmd_seed(s, rv.urls, rv.n, n);
	for (int i = 0; i < rv.n; i++)
		free(rv.urls[i]);
	free(rv.urls);
	for (int i = 0; i < rv.nseeds; i++)
		free(rv.seeds[i]);
	free(rv.seeds);
	return rc;
}

/* Seeds urls[0..n); the first nscope of them define the crawl's scope (the
 * rest are --revisit URLs of the same hosts). */
static int cmd_seed(const tr_settings *s, char **urls, int n, int nscope)
{
	Trawler__V1__ByteRange range = TRAWLER__V1__BYTE_RANGE__INIT;
	Trawler__V1__Method method = TRAWLER__V1__METHOD__METHOD_GET;
	if (s->range[0] && parse_range(s->range, &range))
		return 2;
	if (strcasecmp(s->method, "HEAD") == 0) {
		method = TRAWLER__V1__METHOD__METHOD_HEAD;
	} else if (strcasecmp(s->method, "GET") != 0) {
		fprintf(stderr,
			"trawlerctl: option method: invalid value '%s' (accepted: GET, HEAD)\n",
			s->method);
		return 2;
	}
	tr_polite_mode polite;
	if (tr_polite_mode_parse(&polite, s->politeness) != TR_OK) {
		fprintf(
		    stderr,
		    "trawlerctl: option politeness: invalid value '%s' (accepted: host, domain, "
		    "ip)\n",
		    s->politeness);
		return 2;
	}
	int rc = 0;
	tr_redis *r = NULL;
	rd_kafka_t *rk = NULL;
	tr_crawl_info info;
	char **canon = calloc((size_t)n + 1, sizeof(*canon));
	char **keys = calloc((size_t)n + 1, sizeof(*keys));
	uint64_t *fps = calloc((size_t)n + 1, sizeof(*fps));
	unsigned char *dec = calloc((size_t)n + 1, 1);
	memset(&info, 0, sizeof(info));
	if (!canon || !keys || !fps || !dec) {
		rc = 1;
		goto out;
	}
	if ((rc = validate(s, urls, n, canon)))
		goto out;
	{ /* the same query rules as the consumers (one URL, one fingerprint) */
		char err[256];
		tr_scope *sc = NULL;
		tr_scope_opts so = {"host", "", "", 0, s->strip_params, s->sort_query};
		if (tr_scope_new(&sc, &so, err, sizeof(err)) != TR_OK) {
			rc = 1;
			goto out;
		}
		for (int i = 0; i < n; i++) {
			char *norm = NULL;
			if (tr_scope_normalize(sc, &norm, canon[i]) == TR_OK) {
				free(canon[i]);
				canon[i] = norm;
			}
		}
		tr_scope_free(sc);
	}
	for (int i = 0; i < n; i++) {
		keys[i] = malloc(300);
		if (!keys[i] || tr_url_host_key(keys[i], 300, canon[i]) != TR_OK) {
			rc = 1;
			goto out;
		}
		fps[i] = tr_url_fingerprint(canon[i], strlen(canon[i]));
	}
	if ((rc = connect_redis(s, &r)))
		goto out;
	if (!(rk = connect_kafka(s))) {
		rc = 1;
		goto out;
	}
	tr_crawl_dedup dd = {s->dedup_buckets, strcmp(s->dedup, "bloom") == 0, s->bloom_capacity,
			     s->bloom_error};
	if (strcmp(s->dedup, "exact") != 0 && !dd.bloom) {
		fprintf(stderr,
			"trawlerctl: option dedup: invalid value '%s' (accepted: exact, bloom)\n",
			s->dedup);
		rc = 2;
		goto out;
	}
	if (tr_crawl_create(r, s->crawl_id, &dd, (const char *const *)keys, nscope) ||
	    tr_crawl_info_load(r, s->crawl_id, &info) ||
	    (info.max_per_host = LONG_MAX / 2, /* count seeds toward any per-host cap */
	     admit_chunks(r, &info, s->seed_render ? TR_CRAWL_RENDER : 0, fps, canon, n, dec))) {
		fprintf(stderr, "trawlerctl: Redis error while seeding: %s\n", tr_redis_error(r));
		rc = 1;
		goto out;
	}
	/* a crawl keeps the frontier topic it was created with: seeding more
	 * URLs into it later reaches its workers whatever this shell's settings */
	const char *topic = s->frontier_topic;
	char stored[256] = "";
	{
		char meta[160];
		snprintf(meta, sizeof(meta), "tr:{%s}:meta", s->crawl_id);
		redisReply *rep =
		    tr_redis_cmd(r, "HSETNX %s frontier_topic %s", meta, s->frontier_topic);
		if (rep)
			freeReplyObject(rep);
		rep = tr_redis_cmd(r, "HGET %s frontier_topic", meta);
		if (rep && rep->type == REDIS_REPLY_STRING)
			snprintf(stored, sizeof(stored), "%s", rep->str);
		if (rep)
			freeReplyObject(rep);
		if (stored[0] && strcmp(stored, topic) != 0) {
			fprintf(stderr,
				"trawlerctl: crawl %s uses frontier topic %s; seeding there\n",
				s->crawl_id, stored);
			topic = stored;
		}
	}
	int queued = 0;
	for (int i = 0; i < n; i++) {
		if (dec[i] != TR_ADMIT_NEW && dec[i] != TR_ADMIT_AGAIN)
			continue;
		Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT;
		rq.url = canon[i];
		rq.crawl_id = s->crawl_id;
		rq.attempt = 1;
		rq.fingerprint = fps[i];
		rq.enqueued_at_ms = tr_now_ms();
		rq.method = method;
		rq.render = s->seed_render;
		if (s->range[0])
			rq.range = &range;
		size_t len = trawler__v1__crawl_request__get_packed_size(&rq);
		uint8_t *buf = malloc(len ? len : 1);
		if (!buf) {
			rc = 1;
			goto out;
		}
		trawler__v1__crawl_request__pack(&rq, buf);
		char fkey[300]; /* the frontier key: host:port or registrable domain */
		if (tr_polite_frontier_key(fkey, sizeof(fkey), canon[i], polite) != TR_OK)
			snprintf(fkey, sizeof(fkey), "%s", keys[i]);
		rd_kafka_resp_err_t e = rd_kafka_producev(
		    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(fkey, strlen(fkey)),
		    RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
		    RD_KAFKA_V_END);
		if (e) {
			free(buf);
			fprintf(stderr, "trawlerctl: cannot enqueue %s: %s\n", canon[i],
				rd_kafka_err2str(e));
			rc = 1;
			goto out;
		}
		queued++;
	}
	if (rd_kafka_flush(rk, (int)(s->connect_check_timeout * 1000) + 20000) != 0) {
		fprintf(stderr, "trawlerctl: Kafka did not acknowledge the seeds\n");
		rc = 1;
		goto out;
	}
	printf("crawl %s: %d seed(s) enqueued, %d already seen\n", s->crawl_id, queued, n - queued);
out:
	for (int i = 0; canon && i < n; i++) {
		free(canon[i]);
		free(keys ? keys[i] : NULL);
	}
	free(canon);
	free(keys);
	free(fps);
	free(dec);
	tr_crawl_info_clear(&info);
	if (rk)
		rd_kafka_destroy(rk);
	tr_redis_free(r);
	return rc;
}

static void print_counts(FILE *f, const char *cid, const tr_crawl_counts *c, double rate, bool tty)
{
	double elapsed =
	    ((c->finished_ms && c->pending <= 0 ? c->finished_ms : tr_now_ms()) - c->created_ms) /
	    1000.0;
	fprintf(f,
		"%scrawl=%s admitted=%lld pending=%lld done=%lld failed=%lld rate=%.1f/s "
		"elapsed=%.1fs%s%s",
		tty ? "\r\033[K" : "", cid, c->admitted, c->pending, c->done, c->failed, rate,
		elapsed, tr_crawl_is_complete(c) ? " complete" : "", tty ? "" : "\n");
	fflush(f);
}

static int cmd_stats(const tr_settings *s)
{
	tr_redis *r = NULL;
	tr_crawl_counts c;
	tr_crawl_memory m;
	tr_crawl_info info;
	int rc = connect_redis(s, &r);
	if (rc)
		return rc;
	memset(&info, 0, sizeof(info));
	if (tr_crawl_counts_get(r, s->crawl_id, &c) != TR_OK || !c.exists ||
	    tr_crawl_info_load(r, s->crawl_id, &info) != TR_OK ||
	    tr_crawl_memory_get(r, s->crawl_id, &m) != TR_OK) {
		fprintf(stderr, "trawlerctl: no crawl named '%s' (or Redis error)\n", s->crawl_id);
		tr_redis_free(r);
		return 1;
	}
	double n = c.admitted > 0 ? (double)c.admitted : 1;
	printf("crawl=%s admitted=%lld keys=%lld\n", s->crawl_id, c.admitted, m.keys);
	printf("dedup_mode=%s dedup_bytes=%lld dedup_bytes_per_url=%.2f\n",
	       info.bloom ? "bloom" : "exact", m.dedup_bytes, (double)m.dedup_bytes / n);
	printf("pending_bytes=%lld other_bytes=%lld total_bytes_per_url=%.2f\n", m.pending_bytes,
	       m.other_bytes, (double)(m.dedup_bytes + m.pending_bytes + m.other_bytes) / n);
	if (info.bloom) {
		double p = pow(
		    1 - exp(-(double)info.bloom_k * (double)c.admitted / (double)info.bloom_bits),
		    info.bloom_k);
		printf("bloom_bits=%llu bloom_k=%d false_positive_rate=%.6f\n",
		       (unsigned long long)info.bloom_bits, info.bloom_k, p);
	} else {
		printf("dedup_buckets=%ld fingerprint_bits=%d\n", info.dedup_buckets,
		       32 + (int)floor(log2((double)info.dedup_buckets)));
	}
	tr_crawl_info_clear(&info);
	tr_redis_free(r);
	return 0;
}

static int cmd_status(const tr_settings *s, bool wait_mode)
{
	tr_redis *r = NULL;
	int rc = connect_redis(s, &r);
	bool tty = isatty(STDOUT_FILENO) && (wait_mode || s->watch);
	int64_t start = tr_mono_ms(), last_print = 0;
	long long last_done = -1;
	int64_t last_t = 0;
	double rate = 0;
	if (rc)
		return rc;
	if (!wait_mode && strcmp(s->crawl_id, "all") == 0) {
		char **ids = NULL;
		int n = tr_crawl_list(r, &ids);
		for (int i = 0; i < n; i++) {
			tr_crawl_counts c;
			if (tr_crawl_counts_get(r, ids[i], &c) == TR_OK)
				print_counts(stdout, ids[i], &c, 0, false);
			free(ids[i]);
		}
		free(ids);
		tr_redis_free(r);
		return n < 0 ? 1 : 0;
	}
	for (;;) {
		tr_crawl_counts c;
		int64_t now = tr_mono_ms();
		if (tr_crawl_counts_get(r, s->crawl_id, &c) != TR_OK) {
			fprintf(stderr, "trawlerctl: Redis error: %s\n", tr_redis_error(r));
			rc = 1;
			break;
		}
		if (!wait_mode && !c.exists) {
			fprintf(stderr, "trawlerctl: no crawl named '%s'\n", s->crawl_id);
			rc = 1;
			break;
		}
		if (last_done >= 0 && now > last_t)
			rate = 0.7 * rate +
			       0.3 * (double)(c.done - last_done) * 1000.0 / (double)(now - last_t);
		last_done = c.done;
		last_t = now;
		bool complete = tr_crawl_is_complete(&c);
		if (!wait_mode && !s->watch) {
			print_counts(stdout, s->crawl_id, &c, rate, false);
			break;
		}
		if (tty || complete || now - last_print >= 2000) {
			print_counts(stdout, s->crawl_id, &c, rate, tty);
			last_print = now;
		}
		if (wait_mode && complete) {
			if (tty)
				putchar('\n');
			break;
		}
		if (wait_mode && s->wait_timeout > 0 &&
		    now - start > (int64_t)(s->wait_timeout * 1000)) {
			fprintf(stderr, "\ntrawlerctl: crawl %s not complete after %.0f s\n",
				s->crawl_id, s->wait_timeout);
			rc = 1;
			break;
		}
		if (tr_lifecycle_stopping()) {
			rc = 130;
			break;
		}
		usleep(200000);
	}
	tr_redis_free(r);
	return rc;
}

/* One item as a JSON line: where it is in the topic and what it is. */
static int print_item(tr_buf *b, const rd_kafka_message_t *m)
{
	Trawler__V1__Item *it = trawler__v1__item__unpack(NULL, m->len, m->payload);
	int rc = TR_OK;
	tr_buf_reset(b);
	rc |= tr_buf_adds(b, "{");
	rc |= tr_jsonw_kv_int(b, true, "partition", m->partition);
	rc |= tr_jsonw_kv_int(b, false, "offset", (long long)m->offset);
	if (it) {
		rc |= tr_jsonw_kv_str(b, false, "crawl_id", it->crawl_id);
		rc |= tr_jsonw_kv_str(b, false, "url", it->url);
		rc |= tr_jsonw_kv_int(b, false, "status", it->status);
	} else {
		rc |= tr_jsonw_kv_str(b, false, "error", "not a trawler.v1.Item");
	}
	rc |= tr_buf_adds(b, "}\n");
	if (rc == TR_OK)
		fwrite(b->data, 1, b->len, stdout);
	if (it)
		trawler__v1__item__free_unpacked(it, NULL);
	return rc == TR_OK ? TR_OK : TR_ENOMEM;
}

/* Read --items-topic from the beginning to the end of every partition (for
 * read_committed, the last stable offset) and print each item. */
static int cmd_dump_items(const tr_settings *s)
{
	char err[512];
	int rc = 1, eofs = 0, nparts = 0;
	long long count = 0;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_partition_list_t *l = NULL;
	bool *at_end = NULL; /* per partition: its end was reached */
	tr_buf b;
	tr_buf_init(&b, 1 << 20);
	rd_kafka_t *rk = tr_kafka_reader_new(s, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "trawlerctl: %s\n", err);
		goto out;
	}
	rd_kafka_topic_t *t = rd_kafka_topic_new(rk, s->items_topic, NULL);
	rd_kafka_resp_err_t e =
	    rd_kafka_metadata(rk, 0, t, &md, (int)(s->connect_check_timeout * 1000));
	rd_kafka_topic_destroy(t);
	if (e || md->topic_cnt != 1 || md->topics[0].err) {
		fprintf(stderr, "trawlerctl: cannot read topic %s: %s\n", s->items_topic,
			rd_kafka_err2str(e		 ? e
					 : md->topic_cnt ? md->topics[0].err
							 : e));
		goto out;
	}
	nparts = md->topics[0].partition_cnt;
	l = rd_kafka_topic_partition_list_new(nparts > 0 ? nparts : 1);
	if (!(at_end = calloc((size_t)nparts + 1, sizeof(*at_end))))
		goto out;
	for (int i = 0; i < nparts; i++)
		rd_kafka_topic_partition_list_add(l, s->items_topic, md->topics[0].partitions[i].id)
		    ->offset = RD_KAFKA_OFFSET_BEGINNING;
	if ((e = rd_kafka_assign(rk, l))) {
		fprintf(stderr, "trawlerctl: cannot read topic %s: %s\n", s->items_topic,
			rd_kafka_err2str(e));
		goto out;
	}
	int64_t idle_until = tr_mono_ms() + (int64_t)(s->connect_check_timeout * 1000);
	while (eofs < nparts && !tr_lifecycle_stopping()) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (!m) {
			if (tr_mono_ms() > idle_until) {
				fprintf(stderr, "trawlerctl: %s: no end reached within %.0f s\n",
					s->items_topic, s->connect_check_timeout);
				goto out;
			}
			continue;
		}
		idle_until = tr_mono_ms() + (int64_t)(s->connect_check_timeout * 1000);
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			if (m->partition >= 0 && m->partition < nparts && !at_end[m->partition]) {
				at_end[m->partition] = true;
				eofs++;
			}
		} else if (m->err) {
			fprintf(stderr, "trawlerctl: %s: %s\n", s->items_topic,
				rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			goto out;
		} else if (print_item(&b, m) == TR_OK) {
			count++;
		}
		rd_kafka_message_destroy(m);
	}
	fprintf(stderr, "trawlerctl: %lld item(s) in %s (%d partitions)\n", count, s->items_topic,
		nparts);
	rc = eofs == nparts ? 0 : 1;
out:
	fflush(stdout);
	free(at_end);
	tr_buf_free(&b);
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rk) {
		rd_kafka_consumer_close(rk);
		rd_kafka_destroy(rk);
	}
	return rc;
}

/* The /metrics body of a worker, capped: a health probe needs two lines. */
#define HEALTH_MAX_BODY (4 * 1024 * 1024)

static size_t health_write(char *data, size_t size, size_t n, void *arg)
{
	tr_buf *b = arg;
	size_t len = size * n;
	return tr_buf_add(b, data, len) == TR_OK ? len : 0; /* 0: curl fails the transfer */
}

/* The value of the unlabelled sample `name` in a Prometheus text body. */
static bool metric_value(const char *text, const char *name, double *out)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, name, n) == 0 && p[n] == ' ') {
			char *end = NULL;
			*out = strtod(p + n + 1, &end);
			return end != p + n + 1;
		}
	}
	return false;
}

/* trawlerctl health: exit 0 when the worker answers on 127.0.0.1:PORT with
 * trawler_up 1 and a heartbeat younger than --health-max-age, 1 otherwise
 * (the reason on stderr), 2 without a port. */
static int cmd_health(const tr_settings *s)
{
	char url[64], errbuf[CURL_ERROR_SIZE] = "";
	tr_buf body;
	double up = 0, beat = 0, age = 0;
	long status = 0;
	int rc = 1;
	CURL *h = NULL;
	if (s->metrics_port <= 0) {
		fprintf(stderr,
			"trawlerctl health: set --metrics-port (TRAWLER_METRICS_PORT) to the "
			"worker's metrics port\n");
		return 2;
	}
	tr_buf_init(&body, HEALTH_MAX_BODY);
	snprintf(url, sizeof(url), "http://127.0.0.1:%ld/metrics", s->metrics_port);
	if (!(h = curl_easy_init()))
		goto out;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, health_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	CURLcode e = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (e != CURLE_OK || status != 200 || body.len == 0) {
		fprintf(stderr, "trawlerctl health: %s: %s\n", url,
			e != CURLE_OK ? (errbuf[0] ? errbuf : curl_easy_strerror(e))
				      : "no metrics (not HTTP 200 or empty)");
		goto out;
	}
	if (!metric_value(body.data, "trawler_up", &up) || up != 1) {
		fprintf(stderr, "trawlerctl health: %s: trawler_up is not 1\n", url);
		goto out;
	}
	if (!metric_value(body.data, "trawler_heartbeat_timestamp_seconds", &beat)) {
		fprintf(stderr, "trawlerctl health: %s: no trawler_heartbeat_timestamp_seconds\n",
			url);
		goto out;
	}
	age = (double)tr_now_ms() / 1000.0 - beat;
	if (age > s->health_max_age) {
		fprintf(
		    stderr,
		    "trawlerctl health: %s: main loop stuck, last turn %.1f s ago (limit %g s)\n",
		    url, age, s->health_max_age);
		goto out;
	}
	printf("healthy: %s answers, last main-loop turn %.1f s ago\n", url, age < 0 ? 0 : age);
	rc = 0;
out:
	if (h)
		curl_easy_cleanup(h);
	tr_buf_free(&body);
	return rc;
}

int main(int argc, char **argv)
{
	tr_settings s;
	char **pos = NULL;
	int npos = 0, rc;
	rc = tr_lifecycle_init(&s, TR_EXE_CTL, "trawlerctl", USAGE, argc, argv, &pos, &npos);
	if (rc != 0) {
		rc = rc == 1 ? 0 : 2;
		goto out;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	tr_lifecycle_signals();
	if (npos < 1) {
		fprintf(stderr, "%s\n", USAGE);
		rc = 2;
	} else if (strcmp(pos[0], "init") == 0) {
		rc = cmd_init(&s);
	} else if (strcmp(pos[0], "validate") == 0) {
		rc = validate(&s, pos + 1, npos - 1, NULL);
	} else if (strcmp(pos[0], "seed") == 0) {
		rc = s.revisit ? cmd_seed_revisit(&s, pos + 1, npos - 1)
			       : cmd_seed(&s, pos + 1, npos - 1, npos - 1);
	} else if (strcmp(pos[0], "status") == 0) {
		rc = cmd_status(&s, false);
	} else if (strcmp(pos[0], "delete-topics") == 0) {
		rc = cmd_delete_topics(&s);
	} else if (strcmp(pos[0], "stats") == 0) {
		rc = cmd_stats(&s);
	} else if (strcmp(pos[0], "wait") == 0) {
		rc = cmd_status(&s, true);
	} else if (strcmp(pos[0], "dump-items") == 0) {
		rc = cmd_dump_items(&s);
	} else if (strcmp(pos[0], "health") == 0) {
		rc = cmd_health(&s);
	} else if (strcmp(pos[0], "options-doc") == 0) {
		tr_settings_print_markdown(stdout);
	} else {
		fprintf(stderr, "trawlerctl: unknown command '%s'\n%s\n", pos[0], USAGE);
		rc = 2;
	}
	curl_global_cleanup();
out:
	free(pos);
	tr_settings_free(&s);
	return rc;
}
