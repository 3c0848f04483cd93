/* consumer.c - the processing loop. Per batch of fetch results: extract,
 * admit new links in Redis (one pipelined round trip), publish them to the
 * frontier and wait for the acks, append pages.jsonl and make it durable,
 * mark the pages done in Redis, then commit the pages offsets. A crash at
 * any point redelivers the batch; Redis scripts keep the counts exact.
 *
 * Transactional mode (--transactional): the batch's Kafka outputs and its
 * offsets are one Kafka transaction, each page is claimed in Redis for its
 * message first, and pages are marked done after the commit; claims left by
 * a crash are settled against the group's committed offsets (see
 * docs/guarantees.md for the crash points). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "consumer.h"
#include "crawlstate.h"
#include "deadletter.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "pipeline.h"
#include "polite.h"
#include "scope.h"
#include "sitemap.h"
#include "redis.h"
#include "request.h"
#include "url.h"
#include "validators.h"

#define BATCH 512
#define CRAWL_CACHE 64
#define CRAWL_INFO_TTL_MS 5000
#define COMPLETION_CHECK_MS 500
#define REDIS_RETRIES 5

typedef struct cons {
	const tr_settings *s;
	rd_kafka_t *kc, *kp;
	rd_kafka_queue_t *cq;
	tr_redis *redis;
	tr_pipeline *pl;
	tr_crawl_info crawls[CRAWL_CACHE];
	int ncrawls;
	tr_page_opts popts;
	tr_scope *scope;
	tr_polite_mode polite; /* decides the frontier key */
	int delivery_errors;
	long fault_skip; /* links still to drop (--fault-skip-publish) */
	int64_t next_reap;
	bool fatal;
	bool txn;	 /* --transactional */
	bool in_txn;	 /* a transaction is open */
	bool settle_due; /* partitions were assigned: settle leftover claims */
	int fault_point; /* --fault-crash-point: 0 none, FAULT_* */
	long batches;	 /* batches with pages so far (fault injection) */
	unsigned long long pages, links_new, dead;
} cons;

/* One message of a batch. */
typedef struct item {
	rd_kafka_message_t *m;
	Trawler__V1__FetchResult *res;
	const tr_crawl_info *crawl;
	tr_page page;
	unsigned char *decisions;
	char *redir_url; /* final URL of a redirected fetch, marked seen + done */
	uint64_t redir_fp;
	unsigned char redir_decision;
	bool skip; /* transactional: another message produces (or produced) its outputs */
} item;

#define TXN_OK 0
#define TXN_RETRY 1 /* retriable: call again */
#define TXN_ABORT 2 /* abort the transaction and rewind the batch */
#define TXN_FATAL 3 /* stop without committing */
/* tries of a call that fails retriably: 0.25 s doubling to 4 s between, ~16 s */
#define TXN_TRIES 8

#define FAULT_BEFORE_COMMIT 1
#define FAULT_AFTER_COMMIT 2

/* A page whose links, outputs and done mark this batch produces. */
static bool active(const item *it)
{
	return it->crawl && !it->skip;
}

/* Testing only: die like kill -9 at a transactional crash point. */
static void fault_crash(cons *c, int point)
{
	if (c->fault_point != point || c->batches != c->s->fault_crash_batch)
		return;
	/* the open transaction's messages reach the broker first, so that a
	 * read_uncommitted reader can see what the abort hides */
	rd_kafka_flush(c->kp, 10000);
	tr_log(TR_LOG_WARN, "fault injection: SIGKILL", 1, "point", c->s->fault_crash_point);
	raise(SIGKILL);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	cons *c = opaque;
	TR_UNUSED(rk);
	if (m->err) {
		c->delivery_errors++;
		tr_log(TR_LOG_ERROR, "publishing failed", 1, "error", rd_kafka_err2str(m->err));
	}
}

static const tr_crawl_info *crawl_get(cons *c, const char *cid)
{
	int64_t now = tr_mono_ms();
	int slot = -1;
	for (int i = 0; i < c->ncrawls; i++) {
		if (strcmp(c->crawls[i].crawl_id, cid) == 0) {
			if (now - c->crawls[i].loaded_ms < CRAWL_INFO_TTL_MS)
				return &c->crawls[i];
			slot = i;
			break;
		}
	}
	if (slot < 0)
		slot = c->ncrawls < CRAWL_CACHE ? c->ncrawls++ : (int)(now % CRAWL_CACHE);
	tr_crawl_info fresh;
	int rc = tr_crawl_info_load(c->redis, cid, &fresh);
	if (rc != TR_OK) {
		/* keep a stale entry rather than none */
		if (strcmp(c->crawls[slot].crawl_id, cid) == 0)
			return &c->crawls[slot];
		/* no such crawl: the caller dead-letters the page; Redis down
		 * (after the reconnect window): stop without committing, the
		 * batch is redelivered instead of diverted */
		if (rc != TR_ENOTFOUND) {
			tr_log(TR_LOG_ERROR, "Redis unavailable: cannot read crawl", 2, "crawl",
			       cid, "error", tr_redis_error(c->redis));
			c->fatal = true;
		}
		return NULL;
	}
	tr_crawl_info_clear(&c->crawls[slot]);
	c->crawls[slot] = fresh;
	c->crawls[slot].max_per_host = c->s->max_pages_per_host;
	return &c->crawls[slot];
}

static int publish(cons *c, const char *topic, const char *key, void *value, size_t len)
{
	rd_kafka_resp_err_t e;
	for (;;) {
		e = rd_kafka_producev(c->kp, RD_KAFKA_V_TOPIC(topic),
				      RD_KAFKA_V_KEY(key, strlen(key)),
				      RD_KAFKA_V_VALUE(value, len),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(c->kp, 100);
	}
	if (e) {
		free(value);
		tr_log(TR_LOG_ERROR, "cannot publish", 2, "topic", topic, "error",
		       rd_kafka_err2str(e));
		c->fatal = true;
		return TR_EIO;
	}
	return TR_OK;
}

static void dead_letter_stage(cons *c, const rd_kafka_message_t *m, const char *stage_name,
			      const char *reason)
{
	size_t len;
	uint8_t *buf =
	    tr_deadletter_pack(m, c->s->pages_topic, stage_name, reason, c->s->worker_id, &len);
	if (!buf)
		return;
	c->dead++;
	tr_log(TR_LOG_WARN, "pages message sent to dead-letter topic", 2, "stage", stage_name,
	       "reason", reason);
	publish(c, c->s->dlq_topic, "pages", buf, len);
}

static void dead_letter(cons *c, const rd_kafka_message_t *m, const char *reason)
{
	dead_letter_stage(c, m, "consumer:decode", reason);
}

/* Publish a CrawlRequest to the frontier, keyed by host:port or, with
 * --politeness domain, by registrable domain (polite.h), as HEAD when its
 * path names a document, image, media or archive. */
static void publish_request(cons *c, Trawler__V1__CrawlRequest *rq)
{
	char key[300];
	rq->attempt = 1;
	rq->enqueued_at_ms = tr_now_ms();
	if (!tr_request_is_sitemap(rq) && tr_page_wants_head(rq->url, c->s->head_extensions))
		rq->method = TRAWLER__V1__METHOD__METHOD_HEAD;
	if (tr_polite_frontier_key(key, sizeof(key), rq->url, c->polite) != TR_OK)
		return; /* canonical URLs always have one */
	size_t len = trawler__v1__crawl_request__get_packed_size(rq);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		c->fatal = true;
		return;
	}
	trawler__v1__crawl_request__pack(rq, buf);
	publish(c, c->s->frontier_topic, key, buf, len);
}

static Trawler__V1__CrawlRequest__MetadataEntry sitemap_entry = {
    PROTOBUF_C_MESSAGE_INIT(&trawler__v1__crawl_request__metadata_entry__descriptor),
    (char *)"sitemap", (char *)"1"};
static Trawler__V1__CrawlRequest__MetadataEntry *sitemap_meta[1] = {&sitemap_entry};

/* Publish one followed link. */
static void publish_link(cons *c, const item *it, size_t k)
{
	const Trawler__V1__CrawlRequest *parent = it->res->request;
	Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT;
	if (c->fault_skip > 0) { /* fault injection: admitted, never published */
		c->fault_skip--;
		return;
	}
	rq.url = it->page.follow_urls[k];
	rq.crawl_id = parent->crawl_id;
	rq.depth = parent->depth + 1;
	rq.referrer = it->res->final_url && *it->res->final_url ? it->res->final_url : parent->url;
	rq.fingerprint = it->page.follow_fps[k];
	rq.parent_fingerprint = it->page.fp;
	if (it->page.sitemap == TR_SITEMAP_INDEX) { /* its URLs are sitemaps */
		rq.n_metadata = 1;
		rq.metadata = sitemap_meta;
	}
	publish_request(c, &rq);
}

static void settle_claims(cons *c, const tr_crawl_info *crawl);
static int txn_check(rd_kafka_error_t *e, const char *call);
static int txn_begin(cons *c);
static int txn_abort(cons *c);

struct reap_ctx {
	cons *c;
	const tr_crawl_info *crawl;
};

/* A URL whose lease ran out goes back to the frontier, marked "reaped" so a
 * producer skips it if the first copy finished meanwhile. */
static void republish(uint64_t fp, uint64_t parent, uint32_t depth, const char *url, void *payload)
{
	struct reap_ctx *rc = payload;
	Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT;
	Trawler__V1__CrawlRequest__MetadataEntry meta =
	    TRAWLER__V1__CRAWL_REQUEST__METADATA_ENTRY__INIT;
	Trawler__V1__CrawlRequest__MetadataEntry *metas[2] = {&meta, &sitemap_entry};
	meta.key = (char *)"reaped";
	meta.value = (char *)"1";
	rq.url = (char *)url;
	rq.crawl_id = (char *)rc->crawl->crawl_id;
	rq.depth = depth & ~TR_CRAWL_MARKS;
	rq.render = (depth & TR_CRAWL_RENDER) != 0; /* a seed marked to render */
	rq.fingerprint = fp;
	rq.parent_fingerprint = parent;
	rq.n_metadata = (depth & TR_CRAWL_SITEMAP) ? 2 : 1; /* still a sitemap */
	rq.metadata = metas;
	publish_request(rc->c, &rq);
}

/* Lease reaper: for each crawl this worker knows, one worker of the
 * cluster at a time re-enqueues URLs admitted but unfinished for a lease. */
static void reap(cons *c)
{
	int64_t lease_ms = (int64_t)(c->s->lease * 1000);
	int64_t every = lease_ms / 4 > 1000 ? lease_ms / 4 : 1000;
	int64_t now = tr_mono_ms();
	if (now < c->next_reap)
		return;
	c->next_reap = now + every;
	crawl_get(c, c->s->crawl_id); /* the configured crawl, even if unseen */
	for (int i = 0; i < c->ncrawls && !c->fatal; i++) {
		struct reap_ctx rc = {c, &c->crawls[i]};
		if (!c->crawls[i].crawl_id[0] ||
		    !tr_crawl_reap_lock(c->redis, c->crawls[i].crawl_id, c->s->worker_id, every))
			continue;
		/* claimed URLs are never re-enqueued; those whose message has
		 * committed are marked done here (also without --transactional:
		 * claims left by transactional workers of the same crawl) */
		settle_claims(c, &c->crawls[i]);
		if (c->txn && txn_begin(c) != TR_OK)
			break;
		int n = tr_crawl_reap(c->redis, &c->crawls[i], lease_ms, republish, &rc);
		if (c->txn) {
			/* a failed commit loses the re-enqueued copies; their lease
			 * was renewed, so they come again one lease later */
			int st =
			    txn_check(rd_kafka_commit_transaction(c->kp, -1), "commit_transaction");
			if (st == TXN_OK)
				c->in_txn = false;
			else if (st == TXN_FATAL || txn_abort(c) != TR_OK)
				c->fatal = true;
		} else if (n > 0) {
			rd_kafka_flush(c->kp, 30000);
		}
		if (n > 0) {
			char num[24];
			snprintf(num, sizeof(num), "%d", n);
			tr_log(TR_LOG_WARN, "re-enqueued URLs whose lease ran out", 2, "crawl",
			       c->crawls[i].crawl_id, "count", num);
		}
	}
}

/* A fetch that ended on another URL: remember the target (in scope) so it
 * is deduplicated like any link. */
static void note_redirect(cons *c, item *it)
{
	const Trawler__V1__FetchResult *r = it->res;
	char *canon = NULL, *norm = NULL, key[300];
	if (r->error || !r->n_redirects || !r->final_url || !*r->final_url)
		return;
	if (tr_url_canonicalize(&canon, r->final_url) != TR_OK)
		return;
	if (tr_scope_normalize(c->scope, &norm, canon) == TR_OK &&
	    strcmp(norm, r->request->url) != 0 &&
	    tr_url_host_key(key, sizeof(key), norm) == TR_OK &&
	    tr_scope_check(c->scope, it->crawl, norm, key) == TR_SCOPE_OK) {
		it->redir_url = norm;
		it->redir_fp = tr_url_fingerprint(norm, strlen(norm));
		norm = NULL;
	}
	free(norm);
	free(canon);
}

/* Links admitted per script call: Redis takes at most 65,536 script
 * arguments (6 + 5 per link), so a page with many links takes several. */
#define ADMIT_CHUNK 10000

/* Queue one page's admission scripts (its links, in chunks, then its
 * redirect target). Returns how many commands were queued, or -1. */
static int admit_queue(cons *c, item *it)
{
	int queued = 0;
	for (size_t k = 0; k < it->page.nfollow; k += ADMIT_CHUNK) {
		size_t m = it->page.nfollow - k < ADMIT_CHUNK ? it->page.nfollow - k : ADMIT_CHUNK;
		uint32_t depth = it->res->request->depth + 1;
		if (it->page.sitemap == TR_SITEMAP_INDEX) /* its URLs are sitemaps */
			depth |= TR_CRAWL_SITEMAP;
		if (tr_crawl_admit_append(c->redis, it->crawl, it->page.fp, depth,
					  it->page.follow_fps + k, it->page.follow_urls + k,
					  m) != TR_OK)
			return -1;
		queued++;
	}
	/* a redirect target is seen like any URL, so a later link to it is not
	 * fetched again (admitted here, done with its page) */
	if (it->redir_url) {
		if (tr_crawl_admit_append(c->redis, it->crawl, it->page.fp, it->res->request->depth,
					  &it->redir_fp, &it->redir_url, 1) != TR_OK)
			return -1;
		queued++;
	}
	return queued;
}

/* Read one page's replies, in the order admit_queue() queued them. Stops at
 * a connection reset (TR_EIO); after an error reply (TR_ESTATE) it still
 * reads the rest, so the connection stays in step. */
static int admit_read(cons *c, item *it, int *unread)
{
	int rc = TR_OK;
	for (size_t k = 0; k<it->page.nfollow && * unread> 0; k += ADMIT_CHUNK) {
		size_t m = it->page.nfollow - k < ADMIT_CHUNK ? it->page.nfollow - k : ADMIT_CHUNK;
		int r = tr_crawl_admit_read(c->redis, it->crawl, it->page.fp,
					    it->res->request->depth + 1, it->page.follow_fps + k,
					    it->page.follow_urls + k, m, it->decisions + k);
		(*unread)--;
		if (r == TR_EIO)
			return TR_EIO;
		if (r != TR_OK)
			rc = r;
	}
	if (it->redir_url && *unread > 0) {
		int r =
		    tr_crawl_admit_read(c->redis, it->crawl, it->page.fp, it->res->request->depth,
					&it->redir_fp, &it->redir_url, 1, &it->redir_decision);
		(*unread)--;
		if (r == TR_EIO)
			return TR_EIO;
		if (r != TR_OK)
			rc = r;
	}
	return rc;
}

/* Admit every page's followed links with one pipelined round trip; retry
 * the whole batch after an error reply (e.g. NOSCRIPT after a Redis
 * restart) or a reset connection. */
static int admit_batch(cons *c, item *items, int n)
{
	int rc = TR_OK;
	for (int attempt = 0; attempt < REDIS_RETRIES; attempt++) {
		int unread = 0;
		rc = tr_crawl_prepare(c->redis);
		for (int i = 0; i < n && rc == TR_OK; i++) {
			if (!active(&items[i]))
				continue;
			int q = admit_queue(c, &items[i]);
			if (q < 0)
				rc = TR_EIO;
			else
				unread += q;
		}
		for (int i = 0; i < n && unread > 0; i++) {
			if (!active(&items[i]))
				continue;
			int r = admit_read(c, &items[i], &unread);
			if (r != TR_OK && rc == TR_OK)
				rc = r;
			if (r == TR_EIO)
				break; /* the connection was reset: nothing left to read */
		}
		if (rc == TR_OK)
			return TR_OK;
		tr_log(TR_LOG_WARN, "admitting links failed, retrying", 1, "error",
		       rc == TR_ESTATE ? "error reply (script reloaded)"
				       : tr_redis_error(c->redis));
		usleep(200000u << attempt);
	}
	return rc;
}

/* Mark every page of the batch done, one script call per crawl. */
static int done_batch(cons *c, item *items, int n)
{
	uint64_t fps[2 * BATCH];
	bool failed[2 * BATCH];
	bool handled[BATCH] = {false};
	for (int i = 0; i < n; i++) {
		if (!active(&items[i]) || handled[i])
			continue;
		size_t k = 0;
		for (int j = i; j < n; j++) {
			if (items[j].crawl != items[i].crawl || !active(&items[j]) || handled[j])
				continue;
			handled[j] = true;
			fps[k] = items[j].page.fp;
			failed[k] = items[j].page.failed;
			k++;
			if (items[j].redir_url && (items[j].redir_decision == TR_ADMIT_NEW ||
						   items[j].redir_decision == TR_ADMIT_AGAIN)) {
				fps[k] = items[j].redir_fp;
				failed[k] = false;
				k++;
			}
		}
		int rc = TR_EIO;
		for (int attempt = 0; attempt < REDIS_RETRIES && rc != TR_OK; attempt++) {
			rc = tr_crawl_done(c->redis, items[i].crawl, fps, failed, k, NULL);
			if (rc != TR_OK)
				usleep(200000u << attempt);
		}
		if (rc != TR_OK)
			return rc;
	}
	return TR_OK;
}

struct dlq_ctx {
	cons *c;
	const rd_kafka_message_t *m;
};

/* A handler failed on a page: dead-letter it, the page still counts. */
static void on_handler_error(const char *handler, const char *reason, void *arg)
{
	struct dlq_ctx *d = arg;
	char stage[96];
	snprintf(stage, sizeof(stage), "handler:%s", handler);
	const char *labels[] = {handler};
	tr_metrics_inc(TR_METRIC_HANDLER_ERRORS, labels, 1);
	dead_letter_stage(d->c, d->m, stage, reason);
}

/* The claim of item `it`: its pages message, and whether the fetch failed. */
static void claim_of(const cons *c, const item *it, tr_crawl_claim *cl)
{
	snprintf(cl->topic, sizeof(cl->topic), "%s", c->s->pages_topic);
	cl->partition = it->m->partition;
	cl->offset = it->m->offset;
	cl->failed = it->page.failed;
}

/* Transactional mode: claim each page (or, with `redirects`, each redirect
 * target the page admitted) for its message, one script call per crawl.
 * Without `redirects`, a page that is finished or claimed by another
 * message is marked skip. Returns 0 or TR_EIO (Redis unavailable). */
static int claim_batch(cons *c, item *items, int n, bool redirects)
{
	uint64_t fps[BATCH];
	tr_crawl_claim claims[BATCH];
	unsigned char res[BATCH];
	int idx[BATCH];
	bool handled[BATCH] = {false};
	for (int i = 0; i < n; i++) {
		if (!active(&items[i]) || handled[i])
			continue;
		size_t k = 0;
		for (int j = i; j < n; j++) {
			item *it = &items[j];
			if (it->crawl != items[i].crawl || !active(it) || handled[j])
				continue;
			handled[j] = true;
			if (redirects && !(it->redir_url && (it->redir_decision == TR_ADMIT_NEW ||
							     it->redir_decision == TR_ADMIT_AGAIN)))
				continue;
			claim_of(c, it, &claims[k]);
			if (redirects)
				claims[k].failed = false; /* done with the page, never failed */
			fps[k] = redirects ? it->redir_fp : it->page.fp;
			idx[k++] = j;
		}
		if (!k)
			continue;
		int rc = TR_EIO;
		for (int attempt = 0; attempt < REDIS_RETRIES && rc != TR_OK; attempt++) {
			rc = tr_crawl_claim_pages(c->redis, items[i].crawl, fps, claims, k, res);
			if (rc != TR_OK)
				usleep(200000u << attempt);
		}
		if (rc != TR_OK)
			return rc;
		for (size_t m = 0; m < k && !redirects; m++)
			items[idx[m]].skip = res[m] != TR_CLAIM_MINE;
	}
	return TR_OK;
}

/* Classify (and free) the error of a transactional call, logging it. */
static int txn_check(rd_kafka_error_t *e, const char *call)
{
	int rc;
	if (!e)
		return TXN_OK;
	if (rd_kafka_error_is_fatal(e))
		rc = TXN_FATAL;
	else if (rd_kafka_error_txn_requires_abort(e))
		rc = TXN_ABORT;
	else if (rd_kafka_error_is_retriable(e))
		rc = TXN_RETRY;
	else
		rc = TXN_FATAL; /* neither: librdkafka advises treating it as fatal */
	tr_log(rc == TXN_RETRY ? TR_LOG_WARN : TR_LOG_ERROR, "Kafka transaction call failed", 3,
	       "call", call, "error", rd_kafka_error_string(e), "then",
	       rc == TXN_RETRY	 ? "retry"
	       : rc == TXN_ABORT ? "abort and rewind"
				 : "stop");
	rd_kafka_error_destroy(e);
	return rc;
}

/* Before try `attempt` (from 0) of a call that failed retriably. */
static void txn_backoff(int attempt)
{
	if (attempt > 0)
		usleep(attempt >= 5 ? 4000000u : 250000u << (attempt - 1));
}

static int txn_begin(cons *c)
{
	if (txn_check(rd_kafka_begin_transaction(c->kp), "begin_transaction") != TXN_OK) {
		c->fatal = true;
		return TR_EIO;
	}
	c->in_txn = true;
	return TR_OK;
}

static int txn_abort(cons *c)
{
	int st = TXN_RETRY;
	for (int attempt = 0; attempt < TXN_TRIES && st == TXN_RETRY; attempt++) {
		txn_backoff(attempt);
		st = txn_check(rd_kafka_abort_transaction(c->kp, -1), "abort_transaction");
	}
	c->in_txn = false;
	return st == TXN_OK ? TR_OK : TR_EIO;
}

/* The batch's next offsets (last + 1) per partition, or with `first` its
 * first offsets. Caller destroys the list. */
static rd_kafka_topic_partition_list_t *batch_offsets(cons *c, item *items, int n, bool first)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (int i = 0; i < n; i++) {
		rd_kafka_message_t *m = items[i].m;
		rd_kafka_topic_partition_t *tp =
		    rd_kafka_topic_partition_list_find(l, c->s->pages_topic, m->partition);
		if (!tp) {
			tp = rd_kafka_topic_partition_list_add(l, c->s->pages_topic, m->partition);
			tp->offset = first ? m->offset : m->offset + 1;
		} else if (first ? m->offset < tp->offset : m->offset + 1 > tp->offset) {
			tp->offset = first ? m->offset : m->offset + 1;
		}
	}
	return l;
}

/* After an abort: consume the batch's partitions again from its first
 * offsets, so no later transaction commits offsets past its pages. */
static int rewind_batch(cons *c, item *items, int n)
{
	rd_kafka_topic_partition_list_t *l = batch_offsets(c, items, n, true);
	rd_kafka_error_t *e = rd_kafka_seek_partitions(c->kc, l, 10000);
	int rc = e ? TR_EIO : TR_OK;
	for (int i = 0; i < l->cnt && !e; i++)
		if (l->elems[i].err)
			rc = TR_EIO;
	if (rc != TR_OK)
		tr_log(TR_LOG_ERROR, "cannot rewind the aborted batch", 1, "error",
		       e ? rd_kafka_error_string(e) : "partition seek failed");
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_topic_partition_list_destroy(l);
	return rc;
}

/* Send the batch's offsets into the open transaction and commit it.
 * Returns TR_OK (committed), TR_ESTATE (aborted and rewound: the batch
 * comes again) or TR_EIO (c->fatal set: stop without committing). */
static int txn_commit(cons *c, item *items, int n)
{
	int rc = TR_EIO, st = TXN_RETRY;
	rd_kafka_topic_partition_list_t *l = batch_offsets(c, items, n, false);
	rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(c->kc);
	for (int attempt = 0; attempt < TXN_TRIES && st == TXN_RETRY; attempt++) {
		txn_backoff(attempt);
		st = txn_check(rd_kafka_send_offsets_to_transaction(c->kp, l, gm, 30000),
			       "send_offsets_to_transaction");
	}
	if (st == TXN_OK) {
		fault_crash(c, FAULT_BEFORE_COMMIT);
		st = TXN_RETRY;
		for (int attempt = 0; attempt < TXN_TRIES && st == TXN_RETRY; attempt++) {
			txn_backoff(attempt);
			st =
			    txn_check(rd_kafka_commit_transaction(c->kp, -1), "commit_transaction");
		}
	}
	if (st == TXN_OK) {
		c->in_txn = false;
		rc = TR_OK;
	} else if (st == TXN_ABORT && txn_abort(c) == TR_OK && rewind_batch(c, items, n) == TR_OK) {
		rc = TR_ESTATE;
	} else {
		/* a commit still retrying may yet succeed: the claims say so */
		c->fatal = true;
	}
	rd_kafka_consumer_group_metadata_destroy(gm);
	rd_kafka_topic_partition_list_destroy(l);
	return rc;
}

/* Mark done the claimed pages of `crawl` whose message the group has
 * committed (a consumer died between its commit and Redis done). A claim
 * whose message is not committed stays: Kafka redelivers that message. */
static void settle_claims(cons *c, const tr_crawl_info *crawl)
{
	uint64_t *fps = NULL, *done = NULL;
	tr_crawl_claim *cl = NULL;
	bool *failed = NULL;
	size_t n = 0, k = 0;
	rd_kafka_topic_partition_list_t *l = NULL;
	if (tr_crawl_claims_list(c->redis, crawl, &fps, &cl, &n) != TR_OK || n == 0)
		goto out;
	l = rd_kafka_topic_partition_list_new(16);
	for (size_t i = 0; i < n; i++)
		if (!rd_kafka_topic_partition_list_find(l, cl[i].topic, cl[i].partition))
			rd_kafka_topic_partition_list_add(l, cl[i].topic, cl[i].partition);
	/* with isolation.level=read_committed this waits for (or fails on) a
	 * transaction still pending on the partition: a committed offset read
	 * here is final */
	rd_kafka_resp_err_t e = rd_kafka_committed(c->kc, l, 10000);
	if (e) {
		tr_log(TR_LOG_WARN, "cannot read committed offsets to settle claims", 1, "error",
		       rd_kafka_err2str(e));
		goto out;
	}
	done = calloc(n, sizeof(*done));
	failed = calloc(n, sizeof(*failed));
	if (!done || !failed)
		goto out;
	for (size_t i = 0; i < n; i++) {
		rd_kafka_topic_partition_t *tp =
		    rd_kafka_topic_partition_list_find(l, cl[i].topic, cl[i].partition);
		if (tp && !tp->err && tp->offset > cl[i].offset) {
			done[k] = fps[i];
			failed[k++] = cl[i].failed;
		}
	}
	long long newly = 0;
	if (k && tr_crawl_done(c->redis, crawl, done, failed, k, &newly) == TR_OK && newly > 0) {
		char num[24];
		snprintf(num, sizeof(num), "%lld", newly);
		tr_log(TR_LOG_WARN, "marked done pages whose transaction had committed", 2, "crawl",
		       crawl->crawl_id, "count", num);
	}
out:
	if (l)
		rd_kafka_topic_partition_list_destroy(l);
	free(fps);
	free(cl);
	free(done);
	free(failed);
}

static void settle_all(cons *c)
{
	c->settle_due = false;
	crawl_get(c, c->s->crawl_id); /* the configured crawl, even if unseen */
	for (int i = 0; i < c->ncrawls && !c->fatal; i++)
		if (c->crawls[i].crawl_id[0])
			settle_claims(c, &c->crawls[i]);
}

static int commit_batch(cons *c, item *items, int n)
{
	rd_kafka_topic_partition_list_t *l = batch_offsets(c, items, n, false);
	rd_kafka_resp_err_t e = rd_kafka_commit(c->kc, l, 0);
	rd_kafka_topic_partition_list_destroy(l);
	if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
		/* the batch is done in Redis; a redelivery is harmless */
		tr_log(TR_LOG_WARN, "offset commit failed", 1, "error", rd_kafka_err2str(e));
	}
	return TR_OK;
}

static const char *header_of(const Trawler__V1__FetchResult *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (r->headers[i]->name && strcasecmp(r->headers[i]->name, name) == 0)
			return r->headers[i]->value;
	return NULL;
}

/* --validators: keep the ETag / Last-Modified of whole-page GET answers for
 * the next crawl (validators.h); a 404/410 page is forgotten; a 304 leaves
 * them as they are. One pipelined round trip per batch. A Redis failure
 * here costs only a later full fetch. */
static void remember_validators(cons *c, item *items, int n)
{
	int queued = 0, rc = TR_OK;
	for (int i = 0; i < n && rc == TR_OK; i++) {
		const Trawler__V1__FetchResult *r = items[i].res;
		const Trawler__V1__CrawlRequest *q = r ? r->request : NULL;
		if (!items[i].crawl || !q || r->error || r->partial || q->range ||
		    q->method != TRAWLER__V1__METHOD__METHOD_GET)
			continue;
		if (r->status >= 200 && r->status <= 299)
			rc = tr_validators_append_store(c->redis, q->url, header_of(r, "ETag"),
							header_of(r, "Last-Modified"),
							c->s->validators_ttl, &queued);
		else if (r->status == 404 || r->status == 410)
			rc = tr_validators_append_forget(c->redis, q->url, &queued);
	}
	if (tr_validators_flush(c->redis, queued) != TR_OK || rc != TR_OK)
		tr_log(TR_LOG_WARN, "cannot store validators", 1, "error",
		       tr_redis_error(c->redis));
}

/* Decode, read the crawl and extract every message of the batch into
 * items; returns how many items (dead-lettered ones included). */
static int extract_batch(cons *c, rd_kafka_message_t **msgs, int nmsgs, item *items)
{
	int n = 0;
	for (int i = 0; i < nmsgs; i++) {
		rd_kafka_message_t *m = msgs[i];
		if (c->fatal) { /* the rest is redelivered */
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				tr_log(TR_LOG_WARN, "pages consume error", 1, "error",
				       rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		item *it = &items[n++];
		it->m = m;
		it->res = trawler__v1__fetch_result__unpack(NULL, m->len, m->payload);
		if (!it->res || !it->res->request || !it->res->request->url ||
		    !it->res->request->crawl_id) {
			dead_letter(c, m,
				    it->res ? "fetch result without request"
					    : "not a FetchResult (protobuf decode failed)");
			continue;
		}
		it->crawl = crawl_get(c, it->res->request->crawl_id);
		if (c->fatal)
			continue;
		if (!it->crawl) {
			dead_letter(c, m, "unknown crawl id (not seeded in Redis)");
			continue;
		}
		if (tr_page_process(&it->page, it->res, it->crawl, &c->popts) != TR_OK) {
			c->fatal = true;
			continue;
		}
		note_redirect(c, it);
	}
	return n;
}

/* Run the handlers on every active page. */
static void handle_batch(cons *c, item *items, int n)
{
	for (int i = 0; i < n && !c->fatal; i++) {
		item *it = &items[i];
		if (!active(it))
			continue;
		struct dlq_ctx d = {c, it->m};
		tr_pipeline_process(c->pl, &it->page, it->m->payload, it->m->len, on_handler_error,
				    &d);
		/* handlers may have added links: size the decisions now */
		if (it->page.nfollow &&
		    !(it->decisions = calloc(it->page.nfollow, sizeof(*it->decisions))))
			c->fatal = true;
	}
}

static void process_batch(cons *c, rd_kafka_message_t **msgs, int nmsgs)
{
	item items[BATCH];
	int n = 0;
	memset(items, 0, sizeof(items));

	/* transactional: every message this batch produces (dead letters,
	 * items, links) is in the transaction */
	if (c->txn && txn_begin(c) != TR_OK) {
		for (int i = 0; i < nmsgs; i++)
			rd_kafka_message_destroy(msgs[i]);
		return;
	}
	n = extract_batch(c, msgs, nmsgs, items);
	if (c->fatal)
		goto out;
	c->batches += n > 0;
	/* transactional: a page finished already, or claimed by another
	 * message (a re-enqueued copy), produces nothing here */
	if (c->txn && claim_batch(c, items, n, false) != TR_OK) {
		tr_log(TR_LOG_ERROR, "Redis unavailable: cannot claim pages", 1, "error",
		       tr_redis_error(c->redis));
		c->fatal = true;
		goto out;
	}
	handle_batch(c, items, n);
	if (c->fatal)
		goto out;
	if (admit_batch(c, items, n) != TR_OK) {
		tr_log(TR_LOG_ERROR, "Redis unavailable: cannot admit links", 1, "error",
		       tr_redis_error(c->redis));
		c->fatal = true;
		goto out;
	}
	unsigned long long admitted = 0, seen = 0, lines = 0;
	for (int i = 0; i < n; i++) {
		if (!active(&items[i]))
			continue;
		lines++;
		for (size_t k = 0; k < items[i].page.nfollow; k++) {
			unsigned char d = items[i].decisions[k];
			if (d == TR_ADMIT_NEW || d == TR_ADMIT_AGAIN) {
				publish_link(c, &items[i], k);
				admitted++;
			} else if (d == TR_ADMIT_CAPPED) {
				tr_metrics_limit_hit("pages_per_host");
			} else {
				seen++;
			}
		}
	}
	c->links_new += admitted;
	/* every link must be acknowledged before its page is marked done (in
	 * transactional mode the commit below waits for them) */
	c->delivery_errors = 0;
	if (!c->txn &&
	    (rd_kafka_flush(c->kp, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR || c->delivery_errors)) {
		tr_log(TR_LOG_ERROR, "Kafka did not acknowledge the batch", 0);
		c->fatal = true;
		goto out;
	}
	{ /* every handler's output durable before the pages count as done */
		char err[256];
		if (tr_pipeline_flush(c->pl, err, sizeof(err)) != TR_OK) {
			tr_log(TR_LOG_ERROR, "flushing outputs failed", 1, "error", err);
			c->fatal = true;
			goto out;
		}
	}
	if (c->s->validators)
		remember_validators(c, items, n);
	if (c->txn) {
		/* redirect targets admitted here are done with their page: claimed
		 * too, so a crash after the commit cannot leave them to the reaper */
		if (claim_batch(c, items, n, true) != TR_OK) {
			tr_log(TR_LOG_ERROR, "Redis unavailable: cannot claim pages", 1, "error",
			       tr_redis_error(c->redis));
			c->fatal = true;
			goto out;
		}
		int rc = txn_commit(c, items, n);
		if (rc != TR_OK) /* aborted (the batch comes again) or fatal */
			goto out;
		fault_crash(c, FAULT_AFTER_COMMIT);
	}
	if (done_batch(c, items, n) != TR_OK) {
		/* transactional: committed already; the claims get the pages
		 * marked done by whoever settles them next */
		tr_log(TR_LOG_ERROR, "Redis unavailable: cannot mark pages done", 1, "error",
		       tr_redis_error(c->redis));
		c->fatal = true;
		goto out;
	}
	if (!c->txn)
		commit_batch(c, items, n);
	c->pages += (unsigned long long)n;
	tr_metrics_inc(TR_METRIC_PAGES_PROCESSED, NULL, (double)lines);
	tr_metrics_inc(TR_METRIC_LINKS_ADMITTED, NULL, (double)admitted);
	tr_metrics_inc(TR_METRIC_DEDUP_HITS, NULL, (double)seen);
	const char *sink[] = {"jsonl"};
	tr_metrics_inc(TR_METRIC_ITEMS_WRITTEN, sink, (double)lines);
out:
	for (int i = 0; i < n; i++) {
		tr_page_clear(&items[i].page);
		free(items[i].decisions);
		free(items[i].redir_url);
		if (items[i].res)
			trawler__v1__fetch_result__free_unpacked(items[i].res, NULL);
		rd_kafka_message_destroy(items[i].m);
	}
}

/* Handlers in order: plug-ins, the items and PostgreSQL sinks when enabled,
 * then the pages.jsonl sink (the sinks last, so they see every field the
 * others extracted). */
static int build_pipeline(cons *c, const tr_settings *s)
{
	char err[512], conf[4200];
	int rc = TR_OK;
	if (!(c->pl = tr_pipeline_new()))
		return TR_ENOMEM;
	if (*s->extract && strchr(s->extract, ',')) {
		snprintf(err, sizeof(err), "--extract: the path may not contain a comma");
		rc = TR_EINVAL;
	} else if (*s->extract) { /* the extractors first: plug-ins and sinks see their fields */
		snprintf(conf, sizeof(conf), "file=%s", s->extract);
		rc = tr_pipeline_add(c->pl, tr_pipeline_builtin("xpath"), conf, NULL, err,
				     sizeof(err));
		if (rc == TR_OK)
			rc = tr_pipeline_add(c->pl, tr_pipeline_builtin("json"), conf, NULL, err,
					     sizeof(err));
	}
	for (const char *p = s->plugin; *p && rc == TR_OK;) {
		char path[2048];
		size_t n = strcspn(p, ",");
		snprintf(path, sizeof(path), "%.*s", (int)n, p);
		p += n + (p[n] == ',');
		if (n)
			rc =
			    tr_pipeline_add_plugin(c->pl, path, s->plugin_config, err, sizeof(err));
	}
	if (rc == TR_OK && s->items) {
		snprintf(conf, sizeof(conf), "topic=%s", s->items_topic);
		rc = tr_pipeline_add(c->pl, tr_pipeline_builtin("items"), conf, c->kp, err,
				     sizeof(err));
	}
	if (rc == TR_OK && *s->postgres) {
		if (strchr(s->postgres, ',') || strchr(s->postgres_table, ',')) {
			snprintf(err, sizeof(err),
				 "--postgres: the connection string may not contain commas");
			rc = TR_EINVAL;
		} else if ((size_t)snprintf(conf, sizeof(conf), "conninfo=%s,table=%s", s->postgres,
					    s->postgres_table) >= sizeof(conf)) {
			snprintf(err, sizeof(err), "--postgres: connection string too long");
			rc = TR_EINVAL;
		} else {
			rc = tr_pipeline_add(c->pl, tr_pipeline_builtin("postgres"), conf, NULL,
					     err, sizeof(err));
		}
	}
	if (rc == TR_OK && s->warc) { /* WARC archive, before the jsonl sink */
		if (strchr(s->out, ',')) {
			snprintf(err, sizeof(err),
				 "--warc: the --out path may not contain a comma");
			rc = TR_EINVAL;
		} else {
			snprintf(conf, sizeof(conf), "dir=%s/warc,max_bytes=%ld", s->out,
				 s->warc_max_bytes);
			rc = tr_pipeline_add(c->pl, tr_pipeline_builtin("warc"), conf, NULL, err,
					     sizeof(err));
		}
	}
	snprintf(conf, sizeof(conf), "dir=%s,max_bytes=%ld", s->out, s->jsonl_max_bytes);
	if (rc == TR_OK)
		rc = tr_pipeline_add(c->pl, tr_pipeline_builtin("jsonl"), conf, NULL, err,
				     sizeof(err));
	if (rc != TR_OK)
		tr_log(TR_LOG_ERROR, "cannot set up the processing pipeline", 1, "error", err);
	return rc;
}

/* Batches finish before the next poll, so a revoke has nothing in flight. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	char list[512];
	size_t n = 0;
	list[0] = '\0';
	for (int i = 0; i < parts->cnt && n + 8 < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%d", i ? "," : "",
				      (int)parts->elems[i].partition);
	tr_kafka_default_rebalance(rk, err, parts);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
		((cons *)opaque)->settle_due = true;
	tr_log(TR_LOG_INFO,
	       err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "pages partitions assigned"
							   : "pages partitions revoked",
	       1, "partitions", list);
}

static int setup(cons *c, const tr_settings *s)
{
	char err[512];
	c->s = s;
	c->popts.max_depth = s->max_depth;
	c->popts.max_links = s->max_links;
	c->popts.follow_nofollow = s->follow_nofollow;
	c->popts.sitemaps = s->sitemaps;
	c->popts.sitemap_max_urls = s->sitemap_max_urls;
	c->popts.sitemap_max_bytes = s->sitemap_max_bytes;
	{
		char serr[512];
		tr_scope_opts so = {s->scope,	       s->allow_regex,	s->deny_regex,
				    s->max_url_length, s->strip_params, s->sort_query};
		if (tr_scope_new(&c->scope, &so, serr, sizeof(serr)) != TR_OK) {
			tr_log(TR_LOG_ERROR, "invalid scope settings", 1, "error", serr);
			return TR_EINVAL;
		}
		c->popts.scope = c->scope;
	}
	if (tr_polite_mode_parse(&c->polite, s->politeness) != TR_OK) {
		tr_log(TR_LOG_ERROR,
		       "option politeness: invalid value (accepted: host, domain, ip)", 1, "value",
		       s->politeness);
		return TR_EINVAL;
	}
	c->fault_skip = s->fault_skip_publish;
	c->next_reap = tr_mono_ms() + 1000;
	/* the producer handle first (no I/O yet: the items sink needs it), then
	 * the pipeline, so configuration errors show before any network wait */
	c->txn = s->transactional;
	if (!strcmp(s->fault_crash_point, "before-commit"))
		c->fault_point = FAULT_BEFORE_COMMIT;
	else if (!strcmp(s->fault_crash_point, "after-commit"))
		c->fault_point = FAULT_AFTER_COMMIT;
	if ((*s->fault_crash_point && !c->fault_point) || (c->fault_point && !c->txn)) {
		tr_log(TR_LOG_ERROR, "invalid settings", 1, "error",
		       "--fault-crash-point takes before-commit or after-commit, with "
		       "--transactional");
		return TR_EINVAL;
	}
	char txn_id[512];
	snprintf(txn_id, sizeof(txn_id), "%s.%s", s->group ? s->group : "trawler-consumers",
		 s->worker_id ? s->worker_id : "trawler");
	if (*s->transactional_id)
		snprintf(txn_id, sizeof(txn_id), "%s", s->transactional_id);
	c->kp = tr_kafka_producer_new(s, c->txn ? txn_id : NULL, on_delivery, c, err, sizeof(err));
	if (!c->kp) {
		tr_log(TR_LOG_ERROR, "cannot create Kafka producer", 1, "error", err);
		return TR_EINVAL;
	}
	if (build_pipeline(c, s) != TR_OK)
		return TR_EINVAL;
	if (tr_redis_connect(&c->redis, s->redis, s->connect_check_timeout, err, sizeof(err))) {
		tr_log(TR_LOG_ERROR, "Redis unreachable", 1, "error", err);
		return TR_EIO;
	}
	if (tr_kafka_check(c->kp, s->brokers, s->connect_check_timeout, err, sizeof(err))) {
		tr_log(TR_LOG_ERROR, "Kafka unreachable", 1, "error", err);
		return TR_EIO;
	}
	if (c->txn) {
		/* fences an earlier producer with this transactional.id and aborts
		 * its open transaction (a killed predecessor's batch comes again) */
		int st = TXN_RETRY;
		int64_t until = tr_mono_ms() + (int64_t)(s->connect_check_timeout * 1000);
		while (st == TXN_RETRY && tr_mono_ms() < until)
			st = txn_check(rd_kafka_init_transactions(c->kp, 10000),
				       "init_transactions");
		if (st != TXN_OK)
			return TR_EIO;
		tr_log(TR_LOG_INFO, "transactions initialised", 1, "transactional_id", txn_id);
	}
	/* pages carry bodies: 32 MiB (~2,000 pages of 15 KB) keeps the consumer
	 * fed; 64 MiB grew its RSS with the crawl, 16 MiB or 1000 messages per
	 * partition starved it (bench: 1,700 instead of 2,200 pages/s) */
	c->kc = tr_kafka_consumer_new(s, s->group ? s->group : "trawler-consumers", false, 32768,
				      100000, on_rebalance, c, err, sizeof(err));
	if (!c->kc) {
		tr_log(TR_LOG_ERROR, "cannot create consumer", 1, "error", err);
		return TR_EIO;
	}
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, s->pages_topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(c->kc, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (e) {
		tr_log(TR_LOG_ERROR, "cannot subscribe", 1, "error", rd_kafka_err2str(e));
		return TR_EIO;
	}
	c->cq = rd_kafka_queue_get_consumer(c->kc);
	return TR_OK;
}

static void teardown(cons *c)
{
	/* before the producer some handlers use; after a fatal error the
	 * unflushed output is of pages not marked done: dropped */
	if (c->fatal)
		tr_pipeline_discard(c->pl);
	else
		tr_pipeline_free(c->pl);
	c->pl = NULL;
	/* a batch cut short: abort now rather than leave readers waiting for
	 * transaction.timeout.ms (best effort; the broker aborts it anyway) */
	if (c->in_txn) {
		rd_kafka_error_t *e = rd_kafka_abort_transaction(c->kp, 5000);
		if (e)
			rd_kafka_error_destroy(e);
	}
	if (c->kc) {
		/* revoke here, not inside close (see kafka.h) */
		if (c->cq && tr_kafka_consumer_leave(c->kc, c->cq, TR_LEAVE_TIMEOUT_MS) != TR_OK)
			tr_log(TR_LOG_WARN, "pages partitions still assigned at close", 0);
		rd_kafka_consumer_close(c->kc);
		if (c->cq)
			rd_kafka_queue_destroy(c->cq);
		rd_kafka_destroy(c->kc);
	}
	if (c->kp) {
		rd_kafka_flush(c->kp, 10000);
		rd_kafka_destroy(c->kp);
	}
	for (int i = 0; i < c->ncrawls; i++)
		tr_crawl_info_clear(&c->crawls[i]);
	tr_redis_free(c->redis);
	tr_scope_free(c->scope);
}

int tr_consumer_run(const tr_settings *s)
{
	cons c;
	int rc = 1;
	rd_kafka_message_t *msgs[BATCH];
	int64_t next_check = 0;
	char num[3][24];

	memset(&c, 0, sizeof(c));
	if (tr_lifecycle_signals() != TR_OK || setup(&c, s) != TR_OK)
		goto out;
	tr_log(TR_LOG_INFO, "consumer started", 3, "worker", s->worker_id, "brokers", s->brokers,
	       "topic", s->pages_topic);
	while (!c.fatal && !tr_lifecycle_stopping()) {
		ssize_t n = rd_kafka_consume_batch_queue(c.cq, 50, msgs, BATCH);
		if (n > 0)
			process_batch(&c, msgs, (int)n);
		if (c.settle_due && c.txn && !c.fatal)
			settle_all(&c);
		rd_kafka_poll(c.kp, 0);
		reap(&c);
		tr_metrics_heartbeat();
		int64_t now = tr_mono_ms();
		if (n < BATCH && now >= next_check) {
			tr_crawl_counts cc = {0};
			next_check = now + COMPLETION_CHECK_MS;
			if (tr_crawl_counts_get(c.redis, s->crawl_id, &cc) == TR_OK && cc.exists) {
				const char *crawl[] = {s->crawl_id};
				tr_metrics_set(TR_METRIC_CRAWL_PENDING, crawl, (double)cc.pending);
			}
			if (s->exit_when_done && tr_crawl_is_complete(&cc)) {
				tr_log(TR_LOG_INFO, "crawl complete, stopping", 1, "crawl",
				       s->crawl_id);
				break;
			}
		}
	}
	rc = c.fatal ? 1 : 0;
	snprintf(num[0], 24, "%llu", c.pages);
	snprintf(num[1], 24, "%llu", c.links_new);
	snprintf(num[2], 24, "%llu", c.dead);
	tr_log(TR_LOG_INFO, "consumer stopped", 3, "pages", num[0], "links_published", num[1],
	       "dead_letters", num[2]);
out:
	tr_lifecycle_exit_deadline(s->stop_timeout + TR_TEARDOWN_GRACE_S, rc);
	teardown(&c);
	return rc;
}
