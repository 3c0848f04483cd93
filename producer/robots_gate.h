/* robots_gate.h - the producer's robots.txt gate: per-host rules fetched
 * once per TTL, shared cluster-wide through a Redis cache, consulted before
 * every request. Not thread-safe (the producer's loop thread only). */
#ifndef TR_ROBOTS_GATE_H
#define TR_ROBOTS_GATE_H

#include "producer_int.h"

typedef enum {
	GATE_ALLOW,  /* fetch it */
	GATE_DENY,   /* disallowed: report, do not fetch */
	GATE_PARKED, /* held until the host's robots.txt is known (gate owns the job) */
	GATE_FETCH   /* held; the caller must start the robots.txt fetch now */
} gate_verdict;

/* New gate; NULL on allocation failure. */
struct robots_gate *robots_gate_new(const char *user_agent);
void robots_gate_free(struct robots_gate *g);

/* Decide for job `j` (just popped, its host charged a start). On
 * GATE_PARKED and GATE_FETCH the gate owns j. `deny_msg` receives the
 * reason on GATE_DENY. Does Redis I/O when the host is unknown. */
gate_verdict robots_gate_check(prod *p, job *j, int64_t now_ms, const char **deny_msg);

/* Is `url` (of host `host_key`) allowed, without fetching anything? 1
 * allowed, 0 disallowed, -1 not known (robots.txt neither in memory nor in
 * the Redis cache). For a rendered page's sub-resources. Does Redis I/O
 * for a host not seen before. */
int robots_gate_peek(prod *p, const char *host_key, const char *url, int64_t now_ms);

/* A new job that fetches the robots.txt of host `host_key`, modelled on
 * `like` (same scheme and authority). NULL on failure. */
job *robots_gate_fetch_job(const job *like);

/* The robots.txt fetch of a host finished (res may be a transport error):
 * update the rules, the cache and Crawl-delay, and requeue parked jobs. */
void robots_gate_done(prod *p, const job *rj, const Trawler__V1__FetchResult *res, int64_t now_ms);

/* Jobs parked in the gate (for backpressure). */
size_t robots_gate_parked(const struct robots_gate *g);

/* Free every parked job (revoke, stop). */
void robots_gate_drop_parked(struct robots_gate *g);

#endif
