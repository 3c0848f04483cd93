/* validators.h - the validator store for conditional GET on re-crawls: the
 * ETag and Last-Modified of each page fetched with them, kept per site in
 * Redis, outside any crawl's state (so a later crawl finds them):
 *
 *   tr:val:{host:port}  hash: path+query of the URL -> "ETAG\nEPOCH"
 *                       (EPOCH = Last-Modified in Unix seconds; either part
 *                       may be empty), expires --validators-ttl after the
 *                       last write
 *
 * Cost: one hash field per page with a 2xx GET answer, about the length of
 * its path plus the ETag plus ~30 bytes of Redis overhead (measured in
 * docs/guarantees.md), separate from the crawl's dedup keys.
 * Functions do blocking Redis I/O; not thread-safe (one tr_redis).
 */
#ifndef TR_VALIDATORS_H
#define TR_VALIDATORS_H

#include "redis.h"

#define TR_VALIDATORS_MAX_ETAG 512 /* longer ETags are not stored */

/* Look up the validators of canonical `url`. Returns 0 with *etag and
 * *last_modified (malloc'd, NULL when that part is absent; the caller
 * frees both; Last-Modified rendered as an HTTP date), TR_ENOTFOUND, or
 * TR_EIO. Outputs untouched on failure. */
int tr_validators_load(tr_redis *r, const char *url, char **etag, char **last_modified);

/* Queue (pipelined, tr_redis_append_argv) the commands that remember the
 * validators of `url` (etag and last_modified as received, as header
 * values; either may be NULL or unusable: the URL is then listed with an
 * empty value, for tr_validators_scan()). Adds the number of commands
 * queued to *queued, also on failure; read their replies with
 * tr_validators_flush(). Returns 0 or TR_EIO (nothing more can be queued). */
int tr_validators_append_store(tr_redis *r, const char *url, const char *etag,
			       const char *last_modified, long ttl_s, int *queued);

/* Queue forgetting `url` (it answered 404 or 410). Same contract. */
int tr_validators_append_forget(tr_redis *r, const char *url, int *queued);

/* Read the replies of `queued` commands queued above: one round trip for a
 * whole batch. Returns 0 or TR_EIO (an error reply or a reset). */
int tr_validators_flush(tr_redis *r, int queued);

/* Call cb(path_and_query) for each URL of host `host_key` in the store, at
 * most `max`. Returns how many were passed, or TR_EIO. */
long tr_validators_scan(tr_redis *r, const char *host_key, long max,
			void (*cb)(const char *path, void *payload), void *payload);

#endif
