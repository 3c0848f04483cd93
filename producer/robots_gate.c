/* robots_gate.c - per-host robots.txt state: in memory for the owner of the
 * host's partition, in Redis (tr:robots:{host:port}) for the cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crawlstate.h"
#include "log.h"
#include "robots.h"
#include "robots_gate.h"
#include "url.h"

#define ROBOTS_BODY_MAX (500 * 1024) /* RFC 9309 2.5: parse at least 500 KiB */
#define TABLE_SIZE 4096

enum { ST_UNKNOWN = 0, ST_FETCHING, ST_READY };

typedef struct entry {
	char *host_key;
	int state;
	tr_robots *rules;
	bool unavailable; /* rules are "disallow all" after repeated 5xx/errors */
	int64_t expires_ms;
	int failures;
	char *sitemap_crawl; /* crawl the Sitemap: URLs were last admitted to */
	job **parked;
	size_t nparked, cap;
	struct entry *next;
} entry;

struct robots_gate {
	entry *table[TABLE_SIZE];
	char token[64]; /* product token matched against User-agent lines */
	size_t parked;
};

static unsigned hash_str(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % TABLE_SIZE;
}

struct robots_gate *robots_gate_new(const char *user_agent)
{
	struct robots_gate *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	size_t n = strcspn(user_agent ? user_agent : "trawler", "/ ");
	if (n == 0 || n >= sizeof(g->token))
		n = 0;
	snprintf(g->token, sizeof(g->token), "%.*s", (int)n, n ? user_agent : "trawler");
	return g;
}

static void entry_drop_parked(struct robots_gate *g, entry *e)
{
	for (size_t i = 0; i < e->nparked; i++)
		job_free(e->parked[i]);
	g->parked -= e->nparked;
	e->nparked = 0;
}

void robots_gate_free(struct robots_gate *g)
{
	if (!g)
		return;
	for (int i = 0; i < TABLE_SIZE; i++) {
		entry *e = g->table[i];
		while (e) {
			entry *next = e->next;
			entry_drop_parked(g, e);
			free(e->parked);
			tr_robots_free(e->rules);
			free(e->host_key);
			free(e->sitemap_crawl);
			free(e);
			e = next;
		}
	}
	free(g);
}

static entry *entry_get(struct robots_gate *g, const char *key)
{
	unsigned h = hash_str(key);
	for (entry *e = g->table[h]; e; e = e->next)
		if (strcmp(e->host_key, key) == 0)
			return e;
	entry *e = calloc(1, sizeof(*e));
	if (!e || !(e->host_key = strdup(key))) {
		free(e);
		return NULL;
	}
	e->next = g->table[h];
	g->table[h] = e;
	return e;
}

static bool park(struct robots_gate *g, entry *e, job *j)
{
	if (job_list_push(&e->parked, &e->nparked, &e->cap, j) != TR_OK)
		return false;
	g->parked++;
	return true;
}

/* Path and query of a canonical URL ("/" when none). */
static const char *path_of(const char *url)
{
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	return p ? p : "/";
}

/* Install rules; a Crawl-delay raises the delay of the host's politeness
 * group `polite_key` (the largest of its hosts' applies). */
static void set_rules(prod *p, entry *e, tr_robots *rules, int64_t now_ms, int64_t ttl_ms,
		      const char *polite_key)
{
	tr_robots_free(e->rules);
	e->rules = rules;
	free(e->sitemap_crawl); /* new rules: their sitemaps are admitted again */
	e->sitemap_crawl = NULL;
	e->state = ST_READY;
	e->expires_ms = now_ms + ttl_ms;
	int64_t cd = tr_robots_crawl_delay_ms(rules);
	if (cd > 0)
		tr_hostq_set_delay(p->hq, polite_key, cd); /* only raises the delay */
}

/* Rules from the cluster cache: "STATUS\n" + body. */
static bool load_cached(prod *p, entry *e, int64_t now_ms, const char *polite_key)
{
	bool ok = false;
	redisReply *rep = tr_redis_cmd(p->redis, "GET tr:robots:{%s}", e->host_key);
	redisReply *ttl = NULL;
	if (!rep || rep->type != REDIS_REPLY_STRING)
		goto out;
	const char *nl = memchr(rep->str, '\n', rep->len);
	if (!nl)
		goto out;
	int status = atoi(rep->str);
	tr_robots *rules = status >= 200 && status < 300 ? NULL : tr_robots_new_allow_all();
	if (!rules && tr_robots_parse(&rules, nl + 1, rep->len - (size_t)(nl + 1 - rep->str),
				      p->robots->token) != TR_OK)
		goto out;
	if (!rules)
		goto out;
	ttl = tr_redis_cmd(p->redis, "PTTL tr:robots:{%s}", e->host_key);
	int64_t left = ttl && ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0
			   ? ttl->integer
			   : (int64_t)(p->s->robots_ttl * 1000);
	e->unavailable = false;
	set_rules(p, e, rules, now_ms, left, polite_key);
	ok = true;
out:
	if (rep)
		freeReplyObject(rep);
	if (ttl)
		freeReplyObject(ttl);
	return ok;
}

/* Publish the admitted sitemap `url` of crawl `cid` as a seed-like request
 * (depth 0) marked "sitemap" (the consumer reads its <loc> URLs). */
static void publish_sitemap(prod *p, const char *cid, char *url, uint64_t fp)
{
	Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT;
	Trawler__V1__CrawlRequest__MetadataEntry meta =
	    TRAWLER__V1__CRAWL_REQUEST__METADATA_ENTRY__INIT;
	Trawler__V1__CrawlRequest__MetadataEntry *metas[1] = {&meta};
	char key[HOST_KEY_MAX];
	meta.key = (char *)"sitemap";
	meta.value = (char *)"1";
	rq.url = url;
	rq.crawl_id = (char *)cid;
	rq.attempt = 1;
	rq.fingerprint = fp;
	rq.enqueued_at_ms = tr_now_ms();
	rq.n_metadata = 1;
	rq.metadata = metas;
	if (tr_polite_frontier_key(key, sizeof(key), url, p->polite) != TR_OK)
		return;
	size_t len = trawler__v1__crawl_request__get_packed_size(&rq);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return;
	trawler__v1__crawl_request__pack(&rq, buf);
	if (publish_frontier(p, key, buf, len) == TR_OK)
		tr_log(TR_LOG_INFO, "sitemap admitted from robots.txt", 2, "crawl", cid, "url",
		       url);
}

/* --sitemaps: admit the file's Sitemap: URLs to crawl `cid` (dedup
 * applies) and publish the new ones to the frontier, marked as sitemaps.
 * In scope: the robots.txt's own host:port or a seed host of the crawl.
 * Once per entry and crawl (again after a robots.txt refresh). */
static void seed_sitemaps(prod *p, entry *e, const char *cid)
{
	const char *const *urls = NULL;
	size_t n = tr_robots_sitemaps(e->rules, &urls), m = 0;
	tr_crawl_info info;
	char *canon[TR_ROBOTS_MAX_SITEMAPS];
	uint64_t fps[TR_ROBOTS_MAX_SITEMAPS];
	unsigned char dec[TR_ROBOTS_MAX_SITEMAPS];
	if (!p->s->sitemaps || !cid || !*cid ||
	    (e->sitemap_crawl && strcmp(e->sitemap_crawl, cid) == 0))
		return;
	free(e->sitemap_crawl);
	e->sitemap_crawl = strdup(cid);
	if (!n || tr_crawl_info_load(p->redis, cid, &info) != TR_OK)
		return;
	for (size_t i = 0; i < n && m < TR_ROBOTS_MAX_SITEMAPS; i++) {
		char key[HOST_KEY_MAX];
		char *c = NULL;
		if (tr_url_canonicalize(&c, urls[i]) != TR_OK)
			continue;
		if (tr_url_host_key(key, sizeof(key), c) != TR_OK ||
		    (strcmp(key, e->host_key) != 0 && !tr_crawl_in_scope(&info, key))) {
			free(c);
			continue;
		}
		canon[m] = c;
		fps[m] = tr_url_fingerprint(c, strlen(c));
		m++;
	}
	if (m &&
	    tr_crawl_admit(p->redis, &info, 0, TR_CRAWL_SITEMAP, fps, canon, m, dec) != TR_OK) {
		tr_log(TR_LOG_WARN, "cannot admit sitemaps (tried again later)", 1, "host",
		       e->host_key);
		memset(dec, TR_ADMIT_SKIP, sizeof(dec));
		free(e->sitemap_crawl);
		e->sitemap_crawl = NULL;
	}
	for (size_t i = 0; i < m; i++) {
		if (dec[i] == TR_ADMIT_NEW || dec[i] == TR_ADMIT_AGAIN)
			publish_sitemap(p, cid, canon[i], fps[i]);
		free(canon[i]);
	}
	tr_crawl_info_clear(&info);
}

gate_verdict robots_gate_check(prod *p, job *j, int64_t now_ms, const char **deny_msg)
{
	struct robots_gate *g = p->robots;
	entry *e = entry_get(g, j->host_key);
	if (!e)
		return GATE_ALLOW; /* out of memory: fail open rather than lose work */
	if (e->state == ST_READY && now_ms >= e->expires_ms && e->nparked == 0)
		e->state = ST_UNKNOWN;
	if (e->state == ST_UNKNOWN && e->failures == 0)
		load_cached(p, e, now_ms, j->polite_key);
	if (e->state == ST_READY) {
		seed_sitemaps(p, e, j->req->crawl_id);
		if (tr_robots_allowed(e->rules, path_of(j->req->url)))
			return GATE_ALLOW;
		*deny_msg = e->unavailable ? "robots.txt unavailable (server error or no answer)"
					   : "disallowed by robots.txt";
		return GATE_DENY;
	}
	if (!park(g, e, j))
		return GATE_ALLOW;
	if (e->state == ST_FETCHING)
		return GATE_PARKED;
	e->state = ST_FETCHING;
	return GATE_FETCH;
}

int robots_gate_peek(prod *p, const char *host_key, const char *url, int64_t now_ms)
{
	entry *e = entry_get(p->robots, host_key);
	if (!e)
		return -1;
	if (e->state == ST_UNKNOWN && e->failures == 0) {
		char pk[HOST_KEY_MAX]; /* a Crawl-delay applies to the host's group */
		int krc = tr_polite_key_try(pk, sizeof(pk), p->resolver, url, p->polite);
		if (krc == TR_EAGAIN) /* ip mode: the group is known after the lookup */
			return -1;
		if (krc != TR_OK)
			snprintf(pk, sizeof(pk), "%s", host_key);
		load_cached(p, e, now_ms, pk);
	}
	if (e->state != ST_READY) /* a stale READY still answers: better than none */
		return -1;
	return tr_robots_allowed(e->rules, path_of(url)) ? 1 : 0;
}

job *robots_gate_fetch_job(const job *like)
{
	job *rj = job_new(NULL, like->host_key, like->polite_key);
	Trawler__V1__CrawlRequest *req = malloc(sizeof(*req));
	const char *url = like->req->url;
	const char *slash = strstr(url, "://");
	slash = slash ? strchr(slash + 3, '/') : NULL;
	size_t n = slash ? (size_t)(slash - url) : strlen(url);
	char *robots_url = malloc(n + sizeof("/robots.txt"));
	char *cid = strdup(like->req->crawl_id ? like->req->crawl_id : "");
	if (!rj || !req || !robots_url || !cid) {
		free(rj);
		free(req);
		free(robots_url);
		free(cid);
		return NULL;
	}
	memcpy(robots_url, url, n);
	memcpy(robots_url + n, "/robots.txt", sizeof("/robots.txt"));
	trawler__v1__crawl_request__init(req);
	req->url = robots_url;
	req->crawl_id = cid;
	req->attempt = 1;
	rj->req = req; /* freed by free_unpacked with the default allocator */
	rj->partition = -1;
	rj->offset = -1;
	rj->is_robots = true;
	return rj;
}

void robots_gate_done(prod *p, const job *rj, const Trawler__V1__FetchResult *res, int64_t now_ms)
{
	struct robots_gate *g = p->robots;
	entry *e = entry_get(g, rj->host_key);
	tr_robots *rules = NULL;
	int64_t ttl_ms = (int64_t)(p->s->robots_ttl * 1000);
	if (!e)
		return;
	if (!res->error && res->status >= 200 && res->status < 300) {
		if (tr_robots_parse(&rules, (const char *)res->body.data, res->body.len,
				    p->robots->token) != TR_OK)
			rules = NULL;
	} else if (!res->error && res->status >= 400 && res->status < 500) {
		rules = tr_robots_new_allow_all(); /* RFC 9309 2.3.1.3 */
	}
	if (rules) {
		/* cache for the cluster: "STATUS\n" + body (capped) */
		size_t blen = res->body.len > ROBOTS_BODY_MAX ? ROBOTS_BODY_MAX : res->body.len;
		char head[16];
		int hl = snprintf(head, sizeof(head), "%u\n", res->status);
		char *val = malloc((size_t)hl + blen + 1);
		if (val) {
			memcpy(val, head, (size_t)hl);
			if (blen)
				memcpy(val + hl, res->body.data, blen);
			const char *argv[] = {"SET", NULL, val, "PX", NULL};
			size_t lens[5];
			char key[HOST_KEY_MAX + 20], px[24];
			snprintf(key, sizeof(key), "tr:robots:{%s}", rj->host_key);
			snprintf(px, sizeof(px), "%lld", (long long)ttl_ms);
			argv[1] = key;
			argv[4] = px;
			for (int i = 0; i < 5; i++)
				lens[i] = i == 2 ? (size_t)hl + blen : strlen(argv[i]);
			redisReply *rep = tr_redis_argv(p->redis, 5, argv, lens);
			if (rep)
				freeReplyObject(rep);
			free(val);
		}
		e->failures = 0;
		e->unavailable = false;
		set_rules(p, e, rules, now_ms, ttl_ms, rj->polite_key);
	} else {
		/* 5xx or no answer: RFC 9309 2.3.1.4, assume complete disallow;
		 * retry later, and give up after --max-attempts tries */
		e->failures++;
		char st[16];
		snprintf(st, sizeof(st), "%u", res->status);
		tr_log(TR_LOG_WARN, "robots.txt unavailable", 3, "host", rj->host_key, "status", st,
		       "error", res->error ? tr_fetch_error_name(res->error) : NULL);
		if (e->failures >= p->s->max_attempts) {
			e->unavailable = true;
			e->failures = 0;
			set_rules(p, e, tr_robots_new_disallow_all(), now_ms,
				  (int64_t)(p->s->robots_retry * 1000), rj->polite_key);
		} else {
			e->state = ST_UNKNOWN;
			tr_hostq_defer(p->hq, rj->polite_key,
				       now_ms + (int64_t)(p->s->robots_retry * 1000));
		}
	}
	/* parked jobs go back to their host queue and pass the gate again */
	for (size_t i = 0; i < e->nparked; i++)
		if (tr_hostq_push(p->hq, e->parked[i]->polite_key, e->parked[i]) != TR_OK)
			job_free(e->parked[i]);
	g->parked -= e->nparked;
	e->nparked = 0;
}

size_t robots_gate_parked(const struct robots_gate *g)
{
	return g ? g->parked : 0;
}

void robots_gate_drop_parked(struct robots_gate *g)
{
	if (!g)
		return;
	for (int i = 0; i < TABLE_SIZE; i++)
		for (entry *e = g->table[i]; e; e = e->next) {
			entry_drop_parked(g, e);
			if (e->state == ST_FETCHING)
				e->state = ST_UNKNOWN;
		}
}
