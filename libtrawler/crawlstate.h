/* crawlstate.h - a crawl's shared state in Redis: URL dedup, the pending
 * count that tells when the crawl is complete, counters and scope.
 *
 * Keys of crawl CID (one hash tag, so one Redis Cluster slot):
 *   tr:{CID}:meta     hash: admitted pending done failed created_ms
 *                     finished_ms dedup_buckets scope
 *   tr:{CID}:s:B      dedup bucket B: set of the low 32 bits of fingerprints
 *                     (intset encoding, ~4.7 bytes per URL while a bucket
 *                     holds <= 512 members: size dedup_buckets to URLs/400)
 *   tr:{CID}:p:B      pending bucket B: hash fingerprint ->
 *                     "parent_fp|admitted_ms|depth|url" of the URLs admitted
 *                     and not yet done (what a lease reaper re-enqueues)
 *   tr:{CID}:claims   hash fingerprint -> "partition|offset|failed|topic":
 *                     the pages message whose Kafka transaction produces the
 *                     URL's outputs (transactional mode, tr_crawl_claim_pages);
 *                     dropped when the URL is marked done
 *   tr:crawls         set of crawl ids
 *
 * Exactness: admitting (SADD seen, HSET pending, pending += new) and marking
 * done (HDEL pending, pending -= removed) are single Lua scripts, so a
 * redelivered page can neither admit a URL twice nor finish one twice. A
 * page that is processed again before it is marked done gets back (as
 * TR_ADMIT_AGAIN) the links it admitted the first time, so a crash between
 * admission and the Kafka produce loses nothing.
 */
#ifndef TR_CRAWLSTATE_H
#define TR_CRAWLSTATE_H

#include "redis.h"

#define TR_ADMIT_SKIP 0	  /* seen before: do not enqueue */
#define TR_ADMIT_NEW 1	  /* first sighting: enqueue */
#define TR_ADMIT_AGAIN 2  /* admitted earlier by this same unfinished parent: enqueue again */
#define TR_ADMIT_CAPPED 3 /* new, but its host reached max_per_host: not enqueued */

#define TR_CRAWL_MAX_SCOPE 1024

typedef struct tr_crawl_counts {
	long long admitted; /* URLs admitted (deduplicated) */
	long long pending;  /* admitted and not yet processed */
	long long done;	    /* processed, failures included */
	long long failed;   /* processed with a transport error */
	long long created_ms, finished_ms;
	long dedup_buckets;
	bool exists;
} tr_crawl_counts;

/* Per-crawl settings every worker needs, read from the meta hash. */
typedef struct tr_crawl_info {
	char crawl_id[101];
	long dedup_buckets;
	int nscope;
	char *scope[TR_CRAWL_MAX_SCOPE]; /* host keys "host:port", owned */
	int64_t loaded_ms;		 /* monotonic time of the read */
	long max_per_host;		 /* admission cap per host, 0 = none (set by the caller) */
	bool bloom;			 /* dedup by Bloom filter instead of exact sets */
	uint64_t bloom_bits;		 /* filter size m (bits) */
	int bloom_k;			 /* hash functions */
} tr_crawl_info;

/* Position of fingerprint `fp` in a crawl's dedup layout. */
typedef struct tr_crawl_slot {
	long bucket;
	int32_t member;
} tr_crawl_slot;
tr_crawl_slot tr_crawl_slot_of(uint64_t fp, long nbuckets);

/* Dedup settings fixed when a crawl is created (first writer wins). */
typedef struct tr_crawl_dedup {
	long buckets;	       /* exact mode buckets, also used for pending entries */
	bool bloom;	       /* Bloom filter instead of exact sets */
	double bloom_capacity; /* expected URLs */
	double bloom_error;    /* target false-positive rate at capacity */
} tr_crawl_dedup;

/* Bloom filter size (bits) and hash count for n URLs at error rate p. */
void tr_crawl_bloom_size(double n, double p, uint64_t *bits, int *k);

/* Create (or extend) crawl `cid`: record creation time and dedup settings
 * (first writer wins) and add `scope` host keys. Returns 0 or TR_EIO. */
int tr_crawl_create(tr_redis *r, const char *cid, const tr_crawl_dedup *dd,
		    const char *const *scope, int nscope);

/* Read a crawl's info. Returns 0, TR_ENOTFOUND (no such crawl) or TR_EIO.
 * On success `info` is filled (release with tr_crawl_info_clear()). The
 * read is re-sent once when the connection was lost and came back. */
int tr_crawl_info_load(tr_redis *r, const char *cid, tr_crawl_info *info);
void tr_crawl_info_clear(tr_crawl_info *info);
bool tr_crawl_in_scope(const tr_crawl_info *info, const char *host_key);

/* Or-ed into the `depth` of tr_crawl_admit*(): the URLs are sitemaps
 * (--sitemaps). The mark is kept with each pending entry, so a lease
 * re-enqueue (tr_crawl_reap) sends them again as sitemaps; the reap
 * callback gets it in its `depth` the same way. */
#define TR_CRAWL_SITEMAP 0x80000000u
/* The same for seeds marked `render` (trawlerctl seed --seed-render): a
 * lease re-enqueue sends them again with render set. */
#define TR_CRAWL_RENDER 0x40000000u
#define TR_CRAWL_MARKS (TR_CRAWL_SITEMAP | TR_CRAWL_RENDER)

/* Admit `n` URLs (canonical `urls[i]`, fingerprint `fps[i]`, all at
 * `depth`, plus TR_CRAWL_SITEMAP for sitemaps, TR_CRAWL_RENDER for seeds to
 * render) found on the page
 * `parent_fp` (0 for seeds). Writes one
 * TR_ADMIT_* per URL to decisions[]. Returns 0 or TR_EIO (then nothing is
 * known about what was admitted; retry the same call). */
int tr_crawl_admit(tr_redis *r, const tr_crawl_info *info, uint64_t parent_fp, uint32_t depth,
		   const uint64_t *fps, char *const *urls, size_t n, unsigned char *decisions);

/* Load the admit script if this process has not (or Redis lost it), so
 * that queueing never has to do a blocking load in the middle of a
 * pipeline. Call before queueing. Returns 0 or TR_EIO. */
int tr_crawl_prepare(tr_redis *r);

/* Pipelined form of tr_crawl_admit(): queue, then read in the same order.
 * admit_read returns 0; TR_ESTATE for an error reply (e.g. NOSCRIPT after a
 * Redis restart: nothing ran): the caller must still read the replies of
 * everything else it queued, then retry the batch (queueing again reloads
 * the script); or TR_EIO when the connection was reset (every queued reply
 * is lost: stop reading, retry the batch). Retrying is safe: a page's links
 * admitted by the failed try come back as TR_ADMIT_AGAIN. */
int tr_crawl_admit_append(tr_redis *r, const tr_crawl_info *info, uint64_t parent_fp,
			  uint32_t depth, const uint64_t *fps, char *const *urls, size_t n);
int tr_crawl_admit_read(tr_redis *r, const tr_crawl_info *info, uint64_t parent_fp, uint32_t depth,
			const uint64_t *fps, char *const *urls, size_t n, unsigned char *decisions);

/* Called for each URL a reap found (url valid during the call); `depth`
 * carries TR_CRAWL_SITEMAP / TR_CRAWL_RENDER when the URL was admitted
 * with that mark. */
typedef void (*tr_crawl_reap_cb)(uint64_t fp, uint64_t parent_fp, uint32_t depth, const char *url,
				 void *payload);

/* Lease reaper: every URL of the crawl admitted (or last re-enqueued) more
 * than `lease_ms` ago and still not done gets a fresh lease time and is
 * passed to `cb`, whose job is to enqueue it again. One script call per
 * dedup bucket. Returns the number found, or TR_EIO. Callers make sure one
 * reaper runs per crawl at a time (tr_crawl_reap_lock). */
int tr_crawl_reap(tr_redis *r, const tr_crawl_info *info, int64_t lease_ms, tr_crawl_reap_cb cb,
		  void *payload);

/* Is fingerprint `fp` still pending (admitted, not done)? Returns 1, 0, or
 * TR_EIO. */
int tr_crawl_is_pending(tr_redis *r, const tr_crawl_info *info, uint64_t fp);

/* Take the crawl's reaper lock for `ttl_ms` (SET NX PX). True when taken. */
bool tr_crawl_reap_lock(tr_redis *r, const char *cid, const char *owner, int64_t ttl_ms);

/* Transactional mode: which pages message produces a URL's outputs. */
typedef struct tr_crawl_claim {
	char topic[250]; /* Kafka topic names have at most 249 characters */
	int32_t partition;
	int64_t offset;
	bool failed; /* the fetch failed (counted as failed when done) */
} tr_crawl_claim;

#define TR_CLAIM_DONE 0	     /* not pending: finished already, produce nothing */
#define TR_CLAIM_MINE 1	     /* claimed by (or already for) this message: process */
#define TR_CLAIM_OTHER 2     /* claimed by another message: it produces the outputs */
#define TR_CLAIM_LEN 300     /* formatted claim, with its terminating NUL */
#define TR_CLAIMS_MAX 100000 /* claims read at once by tr_crawl_claims_list */

/* Claim `n` pending URLs for the pages messages `claims[i]`, one script
 * call: results[i] gets a TR_CLAIM_*. A claim stays until the URL is marked
 * done (tr_crawl_done); while it stays the lease reaper leaves the URL
 * alone, because the claiming message is either not committed yet (Kafka
 * redelivers it and the redelivery claims again, same claim) or committed
 * with the URL's outputs (tr_crawl_claims_list + the group's committed
 * offsets tell, see docs/guarantees.md). Returns 0 or TR_EIO (nothing known;
 * retrying is safe). Does network I/O. */
int tr_crawl_claim_pages(tr_redis *r, const tr_crawl_info *info, const uint64_t *fps,
			 const tr_crawl_claim *claims, size_t n, unsigned char *results);

/* Write claim `c` as "partition|offset|failed|topic" into out (len bytes). */
void tr_crawl_claim_format(char *out, size_t len, const tr_crawl_claim *c);

/* Read up to TR_CLAIMS_MAX claims of a crawl: *fps_out and *claims_out
 * (parallel arrays of *n_out entries, the caller frees both with free()).
 * Returns 0 or TR_EIO/TR_ENOMEM (outputs untouched). Malformed entries are
 * skipped. */
int tr_crawl_claims_list(tr_redis *r, const tr_crawl_info *info, uint64_t **fps_out,
			 tr_crawl_claim **claims_out, size_t *n_out);

/* Mark `n` fingerprints processed (failed[i] true for transport failures)
 * and drop their claims. Idempotent per URL. *newly_done (optional) gets how many were pending.
 * Returns 0 or TR_EIO (retry the same call; it is safe). */
int tr_crawl_done(tr_redis *r, const tr_crawl_info *info, const uint64_t *fps, const bool *failed,
		  size_t n, long long *newly_done);

/* Read a crawl's counters. Returns 0 (counts->exists false when the crawl
 * does not exist) or TR_EIO. */
int tr_crawl_counts_get(tr_redis *r, const char *cid, tr_crawl_counts *counts);

/* True when the crawl exists, admitted something and nothing is pending. */
bool tr_crawl_is_complete(const tr_crawl_counts *c);

/* Memory a crawl takes in Redis, by kind (MEMORY USAGE over its keys). */
typedef struct tr_crawl_memory {
	long long dedup_bytes;	 /* tr:{CID}:s:* or tr:{CID}:bloom */
	long long pending_bytes; /* tr:{CID}:p:* */
	long long other_bytes;	 /* meta, hosts, locks */
	long long keys;
} tr_crawl_memory;
int tr_crawl_memory_get(tr_redis *r, const char *cid, tr_crawl_memory *m);

/* List crawl ids (caller frees each string and the array). Returns the
 * count, or a negative error. */
int tr_crawl_list(tr_redis *r, char ***ids_out);

#endif
