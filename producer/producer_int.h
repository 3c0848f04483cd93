/* producer_int.h - trawler-producer's internal types, shared by its files. */
#ifndef TR_PRODUCER_INT_H
#define TR_PRODUCER_INT_H

#include <regex.h>

#include "fetch.h"
#include "hostq.h"
#include "kafka.h"
#include "offsets.h"
#include "polite.h"
#include "redis.h"
#include "settings.h"

#define CONSUME_BATCH 512
#define HOST_KEY_MAX 300
#define COMPLETION_CHECK_MS 500
#define STATS_LOG_MS 10000

/* One consumed crawl request, from the frontier until its result is acked. */
typedef struct job {
	Trawler__V1__CrawlRequest *req;
	int32_t partition;
	int64_t offset;
	uint32_t gen;
	const char *host_key;	/* host:port: robots.txt, result key ("" if none) */
	const char *polite_key; /* politeness group: the hostq key (polite.h) */
	uint64_t slot;		/* per-IP Redis slot held (ipslots.h), 0 = none */
	bool is_robots;		/* the robots.txt fetch of host_key, not a frontier request */
	bool render;		/* loaded in the browser (render.c), not fetched */
	char keys[];		/* host_key and polite_key point here (job_new) */
} job;

/* Delivery token of a produced message (frees with the report). */
typedef struct token {
	int32_t partition;
	int64_t offset;
	uint32_t gen;
} token;

struct robots_gate;
struct tr_render;

typedef struct prod {
	const tr_settings *s;
	rd_kafka_t *kc; /* frontier consumer */
	rd_kafka_queue_t *cq;
	rd_kafka_t *kp; /* pages producer */
	rd_kafka_topic_partition_list_t *assigned;
	bool paused;
	size_t unacked_bytes; /* published, delivery not reported yet */
	uint32_t gen;	      /* bumped at every rebalance: older tokens are stale */
	tr_offsets *offs;
	tr_hostq *hq; /* keyed by politeness group */
	tr_polite_mode polite;
	tr_polite_resolver *resolver; /* ip mode */
	/* ip mode: requests whose host's address is being looked up (the
	 * resolver's threads), in arrival order; they join the host queues
	 * when it is known */
	struct job **dnswait;
	size_t ndnswait, capdnswait;
	uint64_t next_slot;
	tr_fetcher *fetcher;
	tr_redis *redis;
	struct robots_gate *robots;
	struct tr_render *render;
	regex_t render_re; /* --render-regex, when set */
	bool render_re_set;
	int kpipe[2]; /* librdkafka queue wake-ups */
	bool fatal;
	bool revoking; /* draining in-flight work before giving partitions up */
	/* per partition: offsets the previous owner finished above its commit
	 * (from the commit metadata), skipped instead of fetched again */
	struct skipset {
		int64_t (*r)[2];
		size_t n;
	} * skips;
	int32_t nskips;
	unsigned long long consumed, fetched, produced, failed, dead, retries;
} prod;

/* A job for `req` (owned by the job from now on, may be NULL) with copies
 * of the two keys, sized to them: up to --max-queued jobs wait in the host
 * queues, so a job is kept small. Returns NULL on allocation failure (req
 * still the caller's). */
job *job_new(Trawler__V1__CrawlRequest *req, const char *host_key, const char *polite_key);

/* Free a job and its request. */
void job_free(void *p);

/* Append j to a growable array of jobs (*items, *n used, *cap allocated;
 * starts from NULL, 0, 0). Returns TR_OK or TR_ENOMEM (nothing changed). */
int job_list_push(job ***items, size_t *n, size_t *cap, job *j);

/* Publish the one result of a request that was not fetched (bad URL,
 * robots.txt refusal, ...). */
void publish_error(prod *p, job *j, Trawler__V1__FetchError err, const char *msg);

/* Publish a packed CrawlRequest (`value`, malloc'd, ownership moves here)
 * to the frontier under `key`; no frontier offset waits for it. A failed
 * delivery is logged (the lease reaper enqueues the URL again). */
int publish_frontier(prod *p, const char *key, void *value, size_t len);

#endif
