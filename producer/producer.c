/* producer.c - the fetch loop: consume CrawlRequests, schedule them per host
 * (politeness), fetch with libcurl multi, publish one FetchResult each, and
 * store a frontier offset only once everything before it is acknowledged. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crawlstate.h"
#include "deadletter.h"
#include "request.h"
#include "fetch.h"
#include "hostq.h"
#include "ipslots.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "producer.h"
#include "producer_int.h"
#include "render.h"
#include "robots_gate.h"
#include "redis.h"
#include "url.h"
#include "validators.h"

static bool take_skip(prod *p, int32_t partition, int64_t offset);

job *job_new(Trawler__V1__CrawlRequest *req, const char *host_key, const char *polite_key)
{
	size_t hn = strlen(host_key) + 1, pn = strlen(polite_key) + 1;
	job *j = calloc(1, sizeof(*j) + hn + pn);
	if (j) {
		memcpy(j->keys, host_key, hn);
		memcpy(j->keys + hn, polite_key, pn);
		j->host_key = j->keys;
		j->polite_key = j->keys + hn;
		j->req = req;
	}
	return j;
}

void job_free(void *p)
{
	job *j = p;
	if (!j)
		return;
	if (j->req)
		trawler__v1__crawl_request__free_unpacked(j->req, NULL);
	free(j);
}

int job_list_push(job ***items, size_t *n, size_t *cap, job *j)
{
	if (*n == *cap) {
		size_t ncap = *cap ? 2 * *cap : 16;
		job **a = realloc(*items, ncap * sizeof(*a));
		if (!a)
			return TR_ENOMEM;
		*items = a;
		*cap = ncap;
	}
	(*items)[(*n)++] = j;
	return TR_OK;
}

static bool job_any(void *item, void *arg)
{
	TR_UNUSED(item);
	TR_UNUSED(arg);
	return true;
}

static void job_drop(void *item, void *arg)
{
	TR_UNUSED(arg);
	job_free(item);
}

static void store_offset(prod *p, int32_t partition)
{
	int64_t off;
	if (!tr_offsets_advanced(p->offs, partition, &off))
		return;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, p->s->frontier_topic, partition)->offset = off;
	rd_kafka_resp_err_t e = rd_kafka_offsets_store(p->kc, l);
	if (e)
		tr_log(TR_LOG_DEBUG, "offset store skipped", 1, "error", rd_kafka_err2str(e));
	rd_kafka_topic_partition_list_destroy(l);
}

/* The message at (partition, offset) is finished: its output is acked. */
static void offset_done(prod *p, int32_t partition, int64_t offset, uint32_t gen)
{
	if (gen != p->gen)
		return; /* from before a rebalance: it will be redelivered anyway */
	if (tr_offsets_done(p->offs, partition, offset) == TR_OK)
		store_offset(p, partition);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	prod *p = opaque;
	token *t = m->_private;
	TR_UNUSED(rk);
	p->unacked_bytes -= m->len < p->unacked_bytes ? m->len : p->unacked_bytes;
	if (m->err && t && t->partition < 0) {
		/* a sitemap request (no frontier offset): admitted already, the
		 * lease reaper enqueues it again */
		tr_log(TR_LOG_WARN, "publishing a sitemap request failed", 1, "error",
		       rd_kafka_err2str(m->err));
	} else if (m->err) {
		/* Not acknowledged: keep the offset uncommitted and stop, so the
		 * request is redelivered rather than lost. */
		tr_log(TR_LOG_ERROR, "publishing a result failed", 1, "error",
		       rd_kafka_err2str(m->err));
		p->fatal = true;
	} else if (t && t->partition >= 0) {
		p->produced++;
		offset_done(p, t->partition, t->offset, t->gen);
	}
	free(t);
}

/* Publish `value` (malloc'd, ownership moves here) to `topic`. */
static int publish(prod *p, const char *topic, const char *key, void *value, size_t len,
		   int32_t partition, int64_t offset, uint32_t gen)
{
	token *t = malloc(sizeof(*t));
	rd_kafka_resp_err_t e;
	if (!t) {
		free(value);
		return TR_ENOMEM;
	}
	t->partition = partition;
	t->offset = offset;
	t->gen = gen;
	for (;;) {
		e = rd_kafka_producev(
		    p->kp, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
		    RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
		    RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(p->kp, 100);
	}
	if (e) {
		tr_log(TR_LOG_ERROR, "cannot publish", 2, "topic", topic, "error",
		       rd_kafka_err2str(e));
		free(value);
		free(t);
		p->fatal = true;
		return TR_EIO;
	}
	p->unacked_bytes += len;
	return TR_OK;
}

int publish_frontier(prod *p, const char *key, void *value, size_t len)
{
	return publish(p, p->s->frontier_topic, key, value, len, -1, -1, p->gen);
}

static int publish_result(prod *p, const Trawler__V1__FetchResult *res, const char *key,
			  int32_t partition, int64_t offset, uint32_t gen)
{
	size_t len = trawler__v1__fetch_result__get_packed_size(res);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return TR_ENOMEM;
	trawler__v1__fetch_result__pack(res, buf);
	return publish(p, p->s->pages_topic, key, buf, len, partition, offset, gen);
}

/* A request that cannot be fetched at all still gets its one result. */
void publish_error(prod *p, job *j, Trawler__V1__FetchError err, const char *msg)
{
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
	res.request = j->req;
	res.final_url = j->req->url;
	res.error = err;
	res.error_message = (char *)msg;
	res.fetched_at_ms = tr_now_ms();
	res.worker_id = p->s->worker_id;
	p->failed++;
	publish_result(p, &res, j->host_key[0] ? j->host_key : "invalid", j->partition, j->offset,
		       j->gen);
}

static void count_fetch(const Trawler__V1__FetchResult *res)
{
	const char *cls[] = {res->error && !res->status ? "error"
							: tr_metrics_status_class(res->status)};
	tr_metrics_inc(TR_METRIC_FETCHES, cls, 1);
	tr_metrics_inc(TR_METRIC_FETCH_BYTES, NULL, (double)res->body.len);
	if (res->timings)
		tr_metrics_observe(TR_METRIC_FETCH_DURATION, NULL, res->timings->total_us / 1e6);
	if (res->error) {
		const char *err[] = {tr_fetch_error_name(res->error)};
		tr_metrics_inc(TR_METRIC_FETCH_ERRORS, err, 1);
	}
	if (res->truncated) {
		tr_metrics_limit_hit(res->rendered ? "render_dom" : "body_size");
	}
}

static void on_send(void *ctx, void *payload)
{
	prod *p = payload;
	job *j = ctx;
	tr_hostq_charge_send(p->hq, j->polite_key, tr_mono_ms());
	if (p->polite == TR_POLITE_IP)
		ipslots_sent(p, j->polite_key, tr_hostq_delay(p->hq, j->polite_key));
}

/* Timeouts, resets, 429 and 5xx are worth another try. */
static bool retryable(const Trawler__V1__FetchResult *res)
{
	switch (res->error) {
	case TRAWLER__V1__FETCH_ERROR__ERROR_TIMEOUT:
	case TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT:
	case TRAWLER__V1__FETCH_ERROR__ERROR_RECV:
	case TRAWLER__V1__FETCH_ERROR__ERROR_SEND:
	case TRAWLER__V1__FETCH_ERROR__ERROR_PROTOCOL:
	case TRAWLER__V1__FETCH_ERROR__ERROR_BROWSER:
		return true;
	case TRAWLER__V1__FETCH_ERROR__ERROR_NONE:
		return res->status == 429 || (res->status >= 500 && res->status <= 599);
	default:
		return false;
	}
}

/* Exponential backoff with +-25% jitter, or Retry-After when longer; capped. */
static int64_t backoff_ms(const prod *p, const Trawler__V1__FetchResult *res, uint32_t attempt)
{
	double b = p->s->retry_base * 1000.0;
	for (uint32_t i = 1; i < attempt && b < p->s->retry_max * 1000.0; i++)
		b *= 2;
	b *= 0.75 + 0.5 * ((double)rand() / RAND_MAX);
	int64_t ms = (int64_t)b;
	int64_t ra = tr_fetch_retry_after_ms(res);
	if (ra > ms)
		ms = ra;
	if (ms > (int64_t)(p->s->retry_max * 1000)) {
		if (ra > (int64_t)(p->s->retry_max * 1000)) /* a server asked for longer */
			tr_metrics_limit_hit("retry_wait");
		ms = (int64_t)(p->s->retry_max * 1000);
	}
	return ms;
}

static bool on_fetched(const Trawler__V1__FetchResult *res, void *ctx, void *payload)
{
	prod *p = payload;
	job *j = ctx;
	int64_t now = tr_mono_ms();
	tr_hostq_release(p->hq, j->polite_key, now);
	ipslots_release(p, j);
	if (j->is_robots) {
		robots_gate_done(p, j, res, now);
		j->req = NULL; /* owned and freed by the fetcher */
		job_free(j);
		return false;
	}
	p->fetched++;
	if (retryable(res) && res->request->attempt < (uint32_t)p->s->max_attempts &&
	    (p->revoking || tr_lifecycle_stopping())) {
		/* no time to wait for a retry: leave the offset unfinished so the
		 * next owner of the partition tries again */
		j->req = NULL; /* owned and freed by the fetcher */
		job_free(j);
		return false;
	}
	if (retryable(res) && res->request->attempt < (uint32_t)p->s->max_attempts &&
	    j->gen == p->gen) {
		/* Retry in this process without blocking anything else: the host
		 * is deferred (a 429/503 host is throttled as a whole) and the
		 * request goes back to its queue; its offset stays unfinished. */
		int64_t wait = backoff_ms(p, res, res->request->attempt);
		j->req = (Trawler__V1__CrawlRequest *)res->request;
		j->req->attempt++;
		tr_hostq_defer(p->hq, j->polite_key, now + wait);
		if (tr_hostq_push(p->hq, j->polite_key, j) == TR_OK) {
			p->retries++;
			tr_metrics_inc(TR_METRIC_RETRIES, NULL, 1);
			return true;
		}
		j->req = NULL;
	}
	if (res->error)
		p->failed++;
	count_fetch(res);
	publish_result(p, res, j->host_key, j->partition, j->offset, j->gen);
	j->req = NULL; /* owned and freed by the fetcher */
	job_free(j);
	return false;
}

/* A frontier message that is not a CrawlRequest goes to the dead-letter
 * topic; its offset completes when that is acknowledged. */
static void dead_letter(prod *p, const rd_kafka_message_t *m, const char *reason)
{
	size_t len;
	uint8_t *buf = tr_deadletter_pack(m, p->s->frontier_topic, "producer:decode", reason,
					  p->s->worker_id, &len);
	if (!buf)
		return;
	p->dead++;
	tr_log(TR_LOG_WARN, "frontier message sent to dead-letter topic", 1, "reason", reason);
	publish(p, p->s->dlq_topic, "frontier", buf, len, m->partition, m->offset, p->gen);
}

/* Politeness handover: a host's next allowed start, as wall-clock ms, kept
 * in Redis for as long as it matters, so the next owner of the host's
 * partition waits just as this producer would have. */
static void handover_one(const char *key, int64_t next_ms, void *arg)
{
	prod *p = arg;
	int64_t wait = next_ms - tr_mono_ms();
	if (wait <= 0 || p->polite == TR_POLITE_IP) /* ip mode: kept there already */
		return;
	redisReply *rep = tr_redis_cmd(p->redis, "SET tr:polite:{%s} %lld PX %lld", key,
				       (long long)(tr_now_ms() + wait), (long long)wait);
	if (rep)
		freeReplyObject(rep);
}

/* First sight of a host: honour a next-start time another producer left. */
static void takeover(prod *p, const char *key)
{
	redisReply *rep = tr_redis_cmd(p->redis, "GET tr:polite:{%s}", key);
	if (rep && rep->type == REDIS_REPLY_STRING) {
		int64_t wait = atoll(rep->str) - tr_now_ms();
		if (wait > 0)
			tr_hostq_defer(p->hq, key, tr_mono_ms() + wait);
	}
	if (rep)
		freeReplyObject(rep);
}

/* ip mode: hold j until its host's address is known. */
static int dnswait_park(prod *p, job *j)
{
	return job_list_push(&p->dnswait, &p->ndnswait, &p->capdnswait, j);
}

/* Lookups have answered: the waiting requests whose address is known now
 * join their politeness group's queue (the address, or host:port when the
 * name did not resolve: the fetch reports the DNS error). */
static void dnswait_release(prod *p)
{
	size_t keep = 0;
	for (size_t i = 0; i < p->ndnswait; i++) {
		job *j = p->dnswait[i], *nj = NULL;
		char pk[HOST_KEY_MAX];
		int rc = tr_polite_key_try(pk, sizeof(pk), p->resolver, j->req->url, p->polite);
		if (rc == TR_EAGAIN) {
			p->dnswait[keep++] = j;
			continue;
		}
		if (rc != TR_OK)
			snprintf(pk, sizeof(pk), "%s", j->host_key);
		if (!(nj = job_new(j->req, j->host_key, pk))) { /* the key is sized into the job */
			p->dnswait[keep++] = j;
			p->fatal = true;
			continue;
		}
		nj->partition = j->partition;
		nj->offset = j->offset;
		nj->gen = j->gen;
		j->req = NULL;
		job_free(j);
		if (tr_hostq_push(p->hq, nj->polite_key, nj) != TR_OK) {
			job_free(nj);
			p->fatal = true;
		}
	}
	p->ndnswait = keep;
}

/* Drop the waiting requests (revoke, stop): like queued ones, they stay
 * uncommitted and are delivered again. */
static void dnswait_drop(prod *p)
{
	for (size_t i = 0; i < p->ndnswait; i++)
		job_free(p->dnswait[i]);
	p->ndnswait = 0;
}

static bool reaped_and_done(prod *p, const Trawler__V1__CrawlRequest *req)
{
	tr_crawl_info info;
	bool done = false;
	for (size_t i = 0; i < req->n_metadata; i++) {
		if (strcmp(req->metadata[i]->key, "reaped") != 0)
			continue;
		if (tr_crawl_info_load(p->redis, req->crawl_id, &info) == TR_OK) {
			done = tr_crawl_is_pending(p->redis, &info, req->fingerprint) == 0;
			tr_crawl_info_clear(&info);
		}
	}
	return done;
}

static void take_message(prod *p, rd_kafka_message_t *m)
{
	job *j = NULL;
	if (m->err) {
		if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			tr_log(TR_LOG_WARN, "frontier consume error", 1, "error",
			       rd_kafka_message_errstr(m));
		return;
	}
	p->consumed++;
	if (tr_offsets_track(p->offs, m->partition, m->offset) != TR_OK) {
		/* redelivered after a seek: start this partition over */
		tr_offsets_reset(p->offs, m->partition);
		if (tr_offsets_track(p->offs, m->partition, m->offset) != TR_OK)
			return;
	}
	if (take_skip(p, m->partition, m->offset)) {
		/* finished by the partition's previous owner after its commit point */
		offset_done(p, m->partition, m->offset, p->gen);
		return;
	}
	Trawler__V1__CrawlRequest *req =
	    trawler__v1__crawl_request__unpack(NULL, m->len, m->payload);
	if (req)
		tr_request_drop_unknown(req);
	if (!req || !req->url || !req->crawl_id || !*req->crawl_id) {
		if (req)
			trawler__v1__crawl_request__free_unpacked(req, NULL);
		dead_letter(p, m,
			    req ? "crawl request without url or crawl_id"
				: "not a CrawlRequest (protobuf decode failed)");
		return;
	}
	if (reaped_and_done(p, req)) {
		/* a lease re-enqueued it, but the first copy finished meanwhile */
		trawler__v1__crawl_request__free_unpacked(req, NULL);
		offset_done(p, m->partition, m->offset, p->gen);
		return;
	}
	char host_key[HOST_KEY_MAX], polite_key[HOST_KEY_MAX];
	int krc = TR_OK;
	bool bad_url = tr_url_host_key(host_key, sizeof(host_key), req->url) != TR_OK;
	if (bad_url)
		host_key[0] = '\0';
	else if ((krc = tr_polite_key_try(polite_key, sizeof(polite_key), p->resolver, req->url,
					  p->polite)) != TR_OK)
		memcpy(polite_key, host_key, sizeof(polite_key)); /* TR_EAGAIN: for now */
	j = job_new(req, host_key, bad_url ? "" : polite_key);
	if (!j) {
		trawler__v1__crawl_request__free_unpacked(req, NULL);
		p->fatal = true;
		return;
	}
	j->partition = m->partition;
	j->offset = m->offset;
	j->gen = p->gen;
	if (bad_url) {
		publish_error(p, j, TRAWLER__V1__FETCH_ERROR__ERROR_BAD_URL, "malformed URL");
		job_free(j);
		return;
	}
	if (krc == TR_EAGAIN) { /* ip mode: waits for its address, the loop does not */
		if (dnswait_park(p, j) != TR_OK) {
			job_free(j);
			p->fatal = true;
		}
		return;
	}
	if (p->polite != TR_POLITE_IP && !tr_hostq_has(p->hq, j->polite_key))
		takeover(p, j->polite_key);
	if (tr_hostq_push(p->hq, j->polite_key, j) != TR_OK) {
		job_free(j);
		p->fatal = true;
	}
}

/* Requests started and not yet finished: fetches and rendered pages. */
static int in_flight(const prod *p)
{
	return tr_fetcher_running(p->fetcher) + tr_render_held(p->render);
}

/* Is j for the browser: marked render, or its URL matches --render-regex?
 * HEAD and Range requests (documents, media) are never rendered. */
static bool wants_render(const prod *p, const job *j)
{
	const Trawler__V1__CrawlRequest *q = j->req;
	if (j->is_robots || q->method == TRAWLER__V1__METHOD__METHOD_HEAD ||
	    (q->range && (q->range->first || q->range->last)))
		return false;
	return q->render || (p->render_re_set && regexec(&p->render_re, q->url, 0, NULL, 0) == 0);
}

/* Before giving partitions up: let running transfers finish (bounded) and
 * their results be acknowledged, so their offsets are committed and the
 * next owner neither refetches them nor overlaps with them. */
static void drain_in_flight(prod *p)
{
	double limit = p->s->stop_timeout < 20 ? p->s->stop_timeout : 20;
	int64_t deadline = tr_mono_ms() + (int64_t)(limit * 1000);
	p->revoking = true;
	while (in_flight(p) > 0 && tr_mono_ms() < deadline) {
		tr_fetcher_perform(p->fetcher);
		tr_render_perform(p->render);
		rd_kafka_poll(p->kp, 0);
		struct curl_waitfd rf[2];
		unsigned nrf = tr_render_waitfds(p->render, rf, 2);
		tr_fetcher_wait(p->fetcher, rf, nrf, 50);
	}
	tr_fetcher_perform(p->fetcher);
	rd_kafka_flush(p->kp, 10000); /* delivery reports store the offsets */
	p->revoking = false;
}

static void log_parts(const char *msg, const rd_kafka_topic_partition_list_t *parts)
{
	char list[512];
	size_t n = 0;
	list[0] = '\0';
	for (int i = 0; i < parts->cnt && n + 8 < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%d", i ? "," : "",
				      (int)parts->elems[i].partition);
	tr_log(TR_LOG_INFO, msg, 1, "partitions", list);
}

#define COMMIT_METADATA_MAX 4000 /* broker offset.metadata.max.bytes is 4096 */
#define SKIP_RANGES_MAX 512

/* Commit each revoked partition at its lowest unfinished offset and leave
 * the offsets already finished above it in Redis (tr:skip:{group}:topic:
 * partition = "BASE:RANGES", 1 h), so the next owner skips them instead of
 * fetching them again. (Kafka commit metadata would be the natural place,
 * but librdkafka 2.0.2 does not return it from rd_kafka_committed.) */
static const char *group_of(const prod *p)
{
	return p->s->group ? p->s->group : "trawler-producers";
}

static void commit_with_done(prod *p, rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt);
	char meta[COMMIT_METADATA_MAX];
	for (int i = 0; i < parts->cnt; i++) {
		int32_t part = parts->elems[i].partition;
		int64_t base = tr_offsets_done_above(p->offs, part, meta, sizeof(meta));
		if (base < 0)
			continue;
		rd_kafka_topic_partition_list_add(l, parts->elems[i].topic, part)->offset = base;
		if (!meta[0])
			continue;
		redisReply *rep =
		    tr_redis_cmd(p->redis, "SET tr:skip:{%s}:%s:%d %lld:%s PX 3600000", group_of(p),
				 parts->elems[i].topic, (int)part, (long long)base, meta);
		if (rep)
			freeReplyObject(rep);
		char pnum[16];
		snprintf(pnum, sizeof(pnum), "%d", (int)part);
		tr_log(TR_LOG_DEBUG, "finished above the commit point, handed over", 2, "partition",
		       pnum, "offsets", meta);
	}
	if (l->cnt) {
		rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 0);
		if (e)
			tr_log(TR_LOG_WARN, "commit at revoke failed", 1, "error",
			       rd_kafka_err2str(e));
	}
	rd_kafka_topic_partition_list_destroy(l);
}

/* Read what the previous owners finished above their commits. */
static void load_skips(prod *p, const rd_kafka_topic_partition_list_t *parts)
{
	for (int32_t i = 0; i < p->nskips; i++) {
		free(p->skips[i].r);
		p->skips[i].r = NULL;
		p->skips[i].n = 0;
	}
	for (int i = 0; i < parts->cnt; i++) {
		int32_t part = parts->elems[i].partition;
		if (part < 0 || part > 65535)
			continue;
		redisReply *rep = tr_redis_cmd(p->redis, "GET tr:skip:{%s}:%s:%d", group_of(p),
					       parts->elems[i].topic, (int)part);
		const char *colon =
		    rep && rep->type == REDIS_REPLY_STRING ? strchr(rep->str, ':') : NULL;
		if (colon && part >= p->nskips) {
			struct skipset *ns = realloc(p->skips, (size_t)(part + 1) * sizeof(*ns));
			if (ns) {
				memset(ns + p->nskips, 0,
				       (size_t)(part + 1 - p->nskips) * sizeof(*ns));
				p->skips = ns;
				p->nskips = part + 1;
			}
		}
		if (colon && part < p->nskips &&
		    (p->skips[part].r = malloc(SKIP_RANGES_MAX * sizeof(*p->skips[part].r)))) {
			p->skips[part].n = tr_offsets_parse_done(colon + 1, atoll(rep->str),
								 p->skips[part].r, SKIP_RANGES_MAX);
			tr_log(TR_LOG_DEBUG, "previous owner finished above its commit", 1,
			       "offsets", rep->str);
		}
		if (rep)
			freeReplyObject(rep);
	}
}

/* Was this offset finished by the previous owner? */
static bool take_skip(prod *p, int32_t partition, int64_t offset)
{
	if (partition < 0 || partition >= p->nskips)
		return false;
	const struct skipset *sk = &p->skips[partition];
	for (size_t i = 0; i < sk->n; i++)
		if (offset >= sk->r[i][0] && offset <= sk->r[i][1])
			return true;
	return false;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	prod *p = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		p->gen++;
		for (int i = 0; i < parts->cnt; i++)
			tr_offsets_reset(p->offs, parts->elems[i].partition);
		load_skips(p, parts);
		rd_kafka_assign(rk, parts);
		if (p->assigned)
			rd_kafka_topic_partition_list_destroy(p->assigned);
		p->assigned = rd_kafka_topic_partition_list_copy(parts);
		if (p->paused) /* our pause state does not survive a rebalance */
			rd_kafka_pause_partitions(rk, p->assigned);
		log_parts("frontier partitions assigned", parts);
	} else {
		/* queued requests go back to Kafka; running ones finish first */
		tr_hostq_drop_if(p->hq, job_any, job_drop, NULL);
		dnswait_drop(p);
		robots_gate_drop_parked(p->robots);
		drain_in_flight(p);
		tr_hostq_drop_if(p->hq, job_any, job_drop, NULL); /* retries queued meanwhile */
		commit_with_done(p, rk, parts);
		tr_hostq_foreach_pending(p->hq, tr_mono_ms(), handover_one, p);
		p->gen++;
		for (int i = 0; i < parts->cnt; i++)
			tr_offsets_reset(p->offs, parts->elems[i].partition);
		rd_kafka_assign(rk, NULL);
		if (p->assigned)
			rd_kafka_topic_partition_list_destroy(p->assigned);
		p->assigned = NULL;
		log_parts("frontier partitions revoked", parts);
	}
}

static void backpressure(prod *p)
{
	size_t q = tr_hostq_queued(p->hq) + robots_gate_parked(p->robots) + p->ndnswait;
	size_t max = (size_t)p->s->max_queued;
	if (!p->paused && q >= max) {
		p->paused = true;
		tr_metrics_limit_hit("queue_full");
		if (p->assigned)
			rd_kafka_pause_partitions(p->kc, p->assigned);
	} else if (p->paused && q < max / 2) {
		p->paused = false;
		if (p->assigned)
			rd_kafka_resume_partitions(p->kc, p->assigned);
	}
}

/* The robots.txt fetch of a host could not even start: same as no answer. */
static void robots_start_failed(prod *p, job *rj, int64_t now)
{
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
	res.error = TRAWLER__V1__FETCH_ERROR__ERROR_OTHER;
	tr_hostq_release(p->hq, rj->polite_key, now);
	ipslots_release(p, rj);
	robots_gate_done(p, rj, &res, now);
	job_free(rj);
}

/* Pass j through the robots.txt gate. Returns the job to fetch now (j, or
 * the host's robots.txt fetch), or NULL when there is nothing to fetch. */
static job *gate(prod *p, job *j, int64_t now)
{
	const char *why = NULL;
	if (!p->robots || j->is_robots)
		return j;
	switch (robots_gate_check(p, j, now, &why)) {
	case GATE_ALLOW:
		return j;
	case GATE_DENY:
		tr_metrics_inc(TR_METRIC_ROBOTS_REFUSALS, NULL, 1);
		tr_hostq_refund(p->hq, j->polite_key);
		publish_error(p, j, TRAWLER__V1__FETCH_ERROR__ERROR_ROBOTS_DISALLOWED, why);
		job_free(j);
		return NULL;
	case GATE_PARKED:
		tr_hostq_refund(p->hq, j->polite_key);
		return NULL;
	case GATE_FETCH: {
		/* the host's start slot goes to its robots.txt */
		job *rj = robots_gate_fetch_job(j);
		if (!rj) { /* out of memory: as if robots.txt did not answer */
			Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
			res.error = TRAWLER__V1__FETCH_ERROR__ERROR_OTHER;
			tr_hostq_release(p->hq, j->polite_key, now);
			robots_gate_done(p, j, &res, now); /* uses only the keys */
		}
		return rj;
	}
	}
	return j;
}

/* Kafka is behind: fetching more would only pile results up in memory. */
static bool output_backed_up(const prod *p)
{
	return p->unacked_bytes >= (size_t)p->s->max_unacked_mb << 20;
}

/* --validators: a GET of the whole page that does not carry validators
 * already gets those the validator store keeps for its URL (a re-crawl),
 * so it is sent as a conditional GET. */
static void add_validators(prod *p, Trawler__V1__CrawlRequest *req)
{
	char *etag = NULL, *lm = NULL;
	if (req->method != TRAWLER__V1__METHOD__METHOD_GET || req->range ||
	    (req->etag && *req->etag) || (req->last_modified && *req->last_modified))
		return;
	if (tr_validators_load(p->redis, req->url, &etag, &lm) != TR_OK)
		return;
	/* protobuf-c frees these with the request (they differ from the
	 * default empty string) */
	if (etag)
		req->etag = etag;
	if (lm)
		req->last_modified = lm;
}

/* ip mode: a popped job starts only with its address's cluster-wide slot;
 * otherwise it goes back to the head of its queue, the address deferred. */
static bool take_ip_slot(prod *p, job *j, int64_t now)
{
	int64_t wait = ipslots_acquire(p, j, j->polite_key, tr_hostq_delay(p->hq, j->polite_key));
	if (wait <= 0)
		return true;
	tr_hostq_refund(p->hq, j->polite_key);
	tr_hostq_defer(p->hq, j->polite_key, now + wait);
	if (tr_hostq_push_front(p->hq, j->polite_key, j) != TR_OK)
		return true; /* out of memory: start it under the local limits */
	return false;
}

static void start_ready(prod *p)
{
	int64_t now = tr_mono_ms();
	while (in_flight(p) < p->s->concurrency && !output_backed_up(p)) {
		const char *key = NULL;
		job *j = tr_hostq_pop_ready(p->hq, now, &key);
		if (!j)
			break;
		if (!(j = gate(p, j, now)))
			continue;
		if (p->polite == TR_POLITE_IP && !take_ip_slot(p, j, now))
			continue;
		if (j->is_robots) {
			if (tr_fetcher_start(p->fetcher, j->req, j) != TR_OK)
				robots_start_failed(p, j, now);
			continue;
		}
		tr_log(TR_LOG_DEBUG, "start", 2, "host", j->host_key, "url", j->req->url);
		if ((j->render = wants_render(p, j))) {
			if (tr_render_start(p->render, j->req, j) != TR_OK) {
				tr_hostq_release(p->hq, j->polite_key, now);
				ipslots_release(p, j);
				publish_error(p, j, TRAWLER__V1__FETCH_ERROR__ERROR_OTHER,
					      "cannot start render");
				job_free(j);
			}
			continue;
		}
		if (p->s->validators)
			add_validators(p, j->req);
		if (tr_fetcher_start(p->fetcher, j->req, j) != TR_OK) {
			tr_hostq_release(p->hq, j->polite_key, now);
			ipslots_release(p, j);
			publish_error(p, j, TRAWLER__V1__FETCH_ERROR__ERROR_OTHER,
				      "cannot start transfer");
			job_free(j);
		}
	}
}

static bool crawl_complete(prod *p)
{
	tr_crawl_counts c;
	return tr_crawl_counts_get(p->redis, p->s->crawl_id, &c) == TR_OK &&
	       tr_crawl_is_complete(&c);
}

/* A request of a rendered page: robots.txt and politeness, as for fetches.
 * The page's own host is known to the gate; another host's robots.txt is
 * used when known (memory or the Redis cache), else the request goes. */
static int render_check(const char *url, bool main_doc, void *ctx, void *payload,
			int64_t *not_before_ms, bool *polite, const char **why)
{
	prod *p = payload;
	job *j = ctx;
	char key[HOST_KEY_MAX];
	if (tr_url_host_key(key, sizeof(key), url) != TR_OK) {
		*why = "malformed URL";
		return TRAWLER__V1__FETCH_ERROR__ERROR_BAD_URL;
	}
	if (p->robots && robots_gate_peek(p, key, url, tr_mono_ms()) == 0) {
		*why = "disallowed by robots.txt";
		return TRAWLER__V1__FETCH_ERROR__ERROR_ROBOTS_DISALLOWED;
	}
	/* the page's own host: its sub-resources keep the host's delay; the
	 * page itself already had its turn */
	*polite = j && strcmp(key, j->host_key) == 0;
	if (!main_doc && *polite)
		*not_before_ms = tr_hostq_next_start_ms(p->hq, j->polite_key);
	return 0;
}

static void render_send(void *ctx, void *payload)
{
	prod *p = payload;
	job *j = ctx;
	if (j)
		tr_hostq_charge_send(p->hq, j->polite_key, tr_mono_ms());
}

static int render_setup(prod *p, const tr_settings *s)
{
	tr_render_opts ro;
	char bin[4096];
	int rc;
	if (s->render_regex && *s->render_regex) {
		if (regcomp(&p->render_re, s->render_regex, REG_EXTENDED | REG_NOSUB) != 0) {
			tr_log(TR_LOG_ERROR,
			       "option render-regex: invalid value (accepted: POSIX extended "
			       "regular expression)",
			       1, "value", s->render_regex);
			return TR_EINVAL;
		}
		p->render_re_set = true;
	}
	memset(&ro, 0, sizeof(ro));
	ro.binary = s->chromium;
	ro.tabs = s->render_tabs;
	ro.timeout = s->render_timeout;
	ro.wait = s->render_wait;
	ro.max_dom = s->render_max_dom;
	ro.block_types = s->render_block;
	ro.user_agent = s->user_agent;
	ro.allow_private = s->allow_private;
	ro.allow_address = s->allow_address;
	ro.worker_id = s->worker_id;
	rc = tr_render_new(&p->render, &ro, on_fetched, render_check, render_send, p);
	if (rc != TR_OK)
		return rc;
	if (!tr_render_find_binary(bin, sizeof(bin), s->chromium)) {
		if (p->render_re_set)
			tr_log(TR_LOG_WARN,
			       "render mode unavailable: no Chromium binary; pages matching "
			       "render-regex get error render_unavailable (install with "
			       "deploy/deps.sh --render, or set --chromium)",
			       1, "chromium",
			       s->chromium && *s->chromium ? s->chromium : "(search)");
	} else if (p->render_re_set) {
		tr_log(TR_LOG_INFO, "render mode on", 3, "regex", s->render_regex, "chromium", bin,
		       "wait", s->render_wait);
	}
	return TR_OK;
}

static int setup(prod *p, const tr_settings *s)
{
	char err[512];
	tr_fetch_opts fo;
	rd_kafka_resp_err_t e;
	memset(p, 0, sizeof(*p));
	p->s = s;
	p->kpipe[0] = p->kpipe[1] = -1;
	if (tr_redis_connect(&p->redis, s->redis, s->connect_check_timeout, err, sizeof(err))) {
		tr_log(TR_LOG_ERROR, "Redis unreachable", 1, "error", err);
		return TR_EIO;
	}
	p->kp = tr_kafka_producer_new(s, NULL, on_delivery, p, err, sizeof(err));
	if (!p->kp ||
	    tr_kafka_check(p->kp, s->brokers, s->connect_check_timeout, err, sizeof(err))) {
		tr_log(TR_LOG_ERROR, "Kafka unreachable", 1, "error", err);
		return TR_EIO;
	}
	/* frontier messages are small (~150 B), but librdkafka's broker
	 * thread holds each in a Fetch buffer plus ~1 KB of its own: 256 KiB
	 * and 100 per partition of prefetch (~1,700 requests, a third of a
	 * second at full speed) keep that thread at a few MiB however large
	 * the backlog (2 MiB let it reach 18 MiB in a 100k-page crawl, 512 KiB
	 * 8 MiB; throughput the same in A/B runs) */
	p->kc = tr_kafka_consumer_new(s, s->group ? s->group : "trawler-producers", true, 256, 100,
				      on_rebalance, p, err, sizeof(err));
	if (!p->kc) {
		tr_log(TR_LOG_ERROR, "cannot create consumer", 1, "error", err);
		return TR_EIO;
	}
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, s->frontier_topic, RD_KAFKA_PARTITION_UA);
	e = rd_kafka_subscribe(p->kc, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (e) {
		tr_log(TR_LOG_ERROR, "cannot subscribe", 1, "error", rd_kafka_err2str(e));
		return TR_EIO;
	}
	p->cq = rd_kafka_queue_get_consumer(p->kc);
	if (pipe(p->kpipe) != 0)
		return TR_EIO;
	for (int i = 0; i < 2; i++)
		fcntl(p->kpipe[i], F_SETFL, fcntl(p->kpipe[i], F_GETFL) | O_NONBLOCK);
	rd_kafka_queue_io_event_enable(p->cq, p->kpipe[1], "c", 1);
	p->offs = tr_offsets_new();
	p->hq = tr_hostq_new((int64_t)(s->delay * 1000), (int)s->host_connections);
	if (tr_polite_mode_parse(&p->polite, s->politeness) != TR_OK) {
		tr_log(TR_LOG_ERROR,
		       "option politeness: invalid value (accepted: host, domain, ip)", 1, "value",
		       s->politeness);
		return TR_EINVAL;
	}
	if (tr_polite_resolver_new(&p->resolver, s->resolve) != TR_OK) {
		tr_log(TR_LOG_ERROR,
		       "option resolve: invalid value (accepted: HOST:PORT:ADDR,... with an IP "
		       "address)",
		       1, "value", s->resolve);
		return TR_EINVAL;
	}
	memset(&fo, 0, sizeof(fo));
	fo.max_body = s->max_body;
	fo.timeout = s->timeout;
	fo.connect_timeout = s->connect_timeout;
	fo.low_speed_limit = s->low_speed_limit;
	fo.low_speed_time = s->low_speed_time;
	fo.max_redirects = s->max_redirects;
	fo.max_total_conns = s->concurrency;
	fo.max_host_conns = s->host_connections;
	fo.user_agent = s->user_agent;
	fo.allow_private = s->allow_private;
	fo.allow_address = s->allow_address;
	fo.ca_file = s->ca_file;
	fo.content_types = s->content_types;
	fo.worker_id = s->worker_id;
	fo.resolve = s->resolve;
	if (s->robots && !(p->robots = robots_gate_new(s->user_agent)))
		return TR_ENOMEM;
	if (!p->offs || !p->hq)
		return TR_ENOMEM;
	int frc = tr_fetcher_new(&p->fetcher, &fo, on_fetched, p);
	if (frc == TR_EINVAL)
		tr_log(TR_LOG_ERROR,
		       "option allow-address: invalid value (accepted: comma-separated CIDR list)",
		       1, "value", s->allow_address);
	if (frc != TR_OK)
		return frc;
	tr_fetcher_on_send(p->fetcher, on_send);
	return render_setup(p, s);
}

static void teardown(prod *p)
{
	if (p->kc) {
		/* revoke (and commit) here, not inside close (see kafka.h) */
		if (p->cq && tr_kafka_consumer_leave(p->kc, p->cq, TR_LEAVE_TIMEOUT_MS) != TR_OK)
			tr_log(TR_LOG_WARN, "frontier partitions still assigned at close", 0);
		rd_kafka_consumer_close(p->kc); /* commits stored offsets */
		if (p->cq)
			rd_kafka_queue_destroy(p->cq);
		if (p->assigned)
			rd_kafka_topic_partition_list_destroy(p->assigned);
		rd_kafka_destroy(p->kc);
	}
	if (p->kp)
		rd_kafka_destroy(p->kp);
	tr_render_free(p->render); /* before the jobs its pages point at */
	tr_fetcher_free(p->fetcher);
	robots_gate_free(p->robots);
	if (p->render_re_set)
		regfree(&p->render_re);
	tr_hostq_free(p->hq, job_free);
	dnswait_drop(p);
	free(p->dnswait);
	tr_polite_resolver_free(p->resolver);
	tr_offsets_free(p->offs);
	for (int32_t i = 0; i < p->nskips; i++)
		free(p->skips[i].r);
	free(p->skips);
	tr_redis_free(p->redis);
	for (int i = 0; i < 2; i++)
		if (p->kpipe[i] >= 0)
			close(p->kpipe[i]);
}

/* trawler_host_queue_depth_top: the deepest host queues, so an operator
 * sees which hosts hold the backlog without a series per host. */
#define TOP_HOSTS 10
static void top_hosts_gauge(const prod *p)
{
	const char *keys[TOP_HOSTS];
	size_t depths[TOP_HOSTS];
	double values[TOP_HOSTS];
	size_t n = tr_hostq_deepest(p->hq, TOP_HOSTS, keys, depths);
	for (size_t i = 0; i < n; i++)
		values[i] = (double)depths[i];
	tr_metrics_gauge_replace(TR_METRIC_HOST_QUEUE_TOP, n, keys, values);
}

static void drain_pipe(int fd)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int tr_producer_run(const tr_settings *s)
{
	prod p;
	int rc = 1;
	rd_kafka_message_t *msgs[CONSUME_BATCH];
	int64_t next_check = 0, next_gauges = 0, next_stats = tr_mono_ms() + STATS_LOG_MS,
		stop_deadline = 0;
	bool complete = false, more = false;
	char num[5][24];

	memset(&p, 0, sizeof(p));
	p.kpipe[0] = p.kpipe[1] = -1;
	if (tr_lifecycle_signals() != TR_OK || setup(&p, s) != TR_OK)
		goto out;
	tr_log(TR_LOG_INFO, "producer started", 3, "worker", s->worker_id, "brokers", s->brokers,
	       "topic", s->frontier_topic);

	while (!p.fatal) {
		int64_t now = tr_mono_ms();
		bool stopping = tr_lifecycle_stopping() || complete;
		if (!stopping) {
			ssize_t n = rd_kafka_consume_batch_queue(p.cq, 0, msgs, CONSUME_BATCH);
			more = n == CONSUME_BATCH;
			for (ssize_t i = 0; i < n; i++) {
				take_message(&p, msgs[i]);
				rd_kafka_message_destroy(msgs[i]);
			}
			backpressure(&p);
			start_ready(&p);
		} else if (!stop_deadline) {
			stop_deadline = now + (int64_t)(s->stop_timeout * 1000);
			tr_log(TR_LOG_INFO, complete ? "crawl complete, stopping" : "stopping", 0);
			/* queued requests are not started; they stay uncommitted */
			tr_hostq_drop_if(p.hq, job_any, job_drop, NULL);
			robots_gate_drop_parked(p.robots);
			dnswait_drop(&p);
		}
		tr_fetcher_perform(p.fetcher);
		tr_render_perform(p.render);
		rd_kafka_poll(p.kp, 0);
		tr_metrics_heartbeat();
		if (stopping && (in_flight(&p) == 0 || now > stop_deadline))
			break;
		if (s->exit_when_done && now >= next_check) {
			next_check = now + COMPLETION_CHECK_MS;
			complete = complete || crawl_complete(&p);
		}
		if (now >= next_gauges) {
			next_gauges = now + 1000;
			tr_metrics_set(TR_METRIC_HOST_QUEUE_DEPTH, NULL,
				       (double)(tr_hostq_queued(p.hq) +
						robots_gate_parked(p.robots) + p.ndnswait));
			tr_metrics_set(TR_METRIC_HOSTS_QUEUED, NULL, (double)tr_hostq_hosts(p.hq));
			top_hosts_gauge(&p);
		}
		if (now >= next_stats) {
			next_stats = now + STATS_LOG_MS;
			snprintf(num[0], 24, "%llu", p.consumed);
			snprintf(num[1], 24, "%llu", p.fetched);
			snprintf(num[2], 24, "%llu", p.produced);
			snprintf(num[3], 24, "%zu", tr_hostq_queued(p.hq) + p.ndnswait);
			snprintf(num[4], 24, "%d", in_flight(&p));
			tr_log(TR_LOG_INFO, "progress", 5, "consumed", num[0], "fetched", num[1],
			       "published", num[2], "queued", num[3], "in_flight", num[4]);
		}
		int64_t wait = more ? 0 : 100;
		int64_t ready = tr_hostq_next_ready_ms(p.hq);
		if (in_flight(&p) >= s->concurrency || output_backed_up(&p))
			ready = INT64_MAX;
		int64_t rnext = tr_render_next_ms(p.render);
		if (rnext < ready)
			ready = rnext;
		if (output_backed_up(&p) && wait > 5)
			wait = 5; /* delivery reports are polled, not signalled */
		if (ready != INT64_MAX) {
			int64_t d = ready - tr_mono_ms();
			if (d < wait)
				wait = d < 0 ? 0 : d;
		}
		struct curl_waitfd extra[5] = {
		    {p.kpipe[0], CURL_WAIT_POLLIN, 0},
		    {tr_lifecycle_wake_fd(), CURL_WAIT_POLLIN, 0},
		};
		unsigned nextra = 2;
		int dns_fd = tr_polite_resolver_fd(p.resolver);
		if (dns_fd >= 0)
			extra[nextra++] = (struct curl_waitfd){dns_fd, CURL_WAIT_POLLIN, 0};
		nextra += tr_render_waitfds(p.render, extra + nextra, 2);
		tr_fetcher_wait(p.fetcher, extra, nextra, (int)wait);
		drain_pipe(p.kpipe[0]);
		tr_lifecycle_drain();
		/* always collected, so the resolver's fd does not stay readable */
		if (tr_polite_resolver_collect(p.resolver) && p.ndnswait)
			dnswait_release(&p);
	}
	/* deliver what was fetched, then commit */
	if (p.kp &&
	    rd_kafka_flush(p.kp, (int)(s->stop_timeout * 1000)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		tr_log(TR_LOG_WARN, "results still unacknowledged at exit (will be refetched)", 0);
	rc = p.fatal ? 1 : 0;
	snprintf(num[0], 24, "%llu", p.fetched);
	snprintf(num[1], 24, "%llu", p.produced);
	tr_log(TR_LOG_INFO, "producer stopped", 2, "fetched", num[0], "published", num[1]);
out:
	tr_lifecycle_exit_deadline(s->stop_timeout + TR_TEARDOWN_GRACE_S, rc);
	teardown(&p);
	return rc;
}
