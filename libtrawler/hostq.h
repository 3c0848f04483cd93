/* hostq.h - per-host FIFO queues with politeness: a minimum delay between
 * request starts to one host and a cap on concurrent requests per host.
 *
 * The producer pushes requests by host key and pops whichever host is ready
 * soonest, so a slow, throttled or dead host never stalls the others.
 * Memory: one small record per host with queued or recent work, plus the
 * queued items (the caller bounds the total with tr_hostq_queued()).
 * Not thread-safe.
 */
#ifndef TR_HOSTQ_H
#define TR_HOSTQ_H

#include "common.h"

typedef struct tr_hostq tr_hostq;

/* New queue set: `delay_ms` between starts to one host, at most `max_conns`
 * concurrent per host. Returns NULL on allocation failure. */
tr_hostq *tr_hostq_new(int64_t delay_ms, int max_conns);

/* Free the queue set; `free_item` (may be NULL) is called on queued items. */
void tr_hostq_free(tr_hostq *q, void (*free_item)(void *item));

/* Append `item` to host `key`'s queue (key is copied). Returns 0 or
 * TR_ENOMEM (item not queued, still owned by the caller). */
int tr_hostq_push(tr_hostq *q, const char *key, void *item);

/* Like tr_hostq_push() but at the head of the queue: an item popped and
 * not started after all (e.g. another producer holds the group's slot)
 * keeps its place. */
int tr_hostq_push_front(tr_hostq *q, const char *key, void *item);

/* Pop an item of a host that may start now (`now_ms` monotonic): its
 * connection count is below the cap and its delay has passed. The host is
 * charged a start (connections + 1, next start >= now + delay). Returns the
 * item (ownership to the caller) and its host key (valid until the host is
 * released), or NULL when no host is ready. */
void *tr_hostq_pop_ready(tr_hostq *q, int64_t now_ms, const char **key_out);

/* A started request of host `key` finished: connections - 1. */
void tr_hostq_release(tr_hostq *q, const char *key, int64_t now_ms);

/* A request of `key` actually went on the wire at `now_ms`: the next start
 * is at least one delay after it (a first request waits for its connection,
 * so the send can be well after the pop). */
void tr_hostq_charge_send(tr_hostq *q, const char *key, int64_t now_ms);

/* Undo the start charged by the last tr_hostq_pop_ready() of `key` when no
 * request was sent after all (e.g. robots.txt refused the URL): the
 * connection is released and the previous next-start time restored. */
void tr_hostq_refund(tr_hostq *q, const char *key);

/* Push back the next allowed start of `key` to at least `not_before_ms`
 * (Retry-After, Crawl-delay, backoff). */
void tr_hostq_defer(tr_hostq *q, const char *key, int64_t not_before_ms);

/* Raise a host's delay (e.g. robots Crawl-delay); smaller values are
 * ignored. It applies from the host's last start on. */
void tr_hostq_set_delay(tr_hostq *q, const char *key, int64_t delay_ms);

/* The delay of host `key` (the default for an unknown host). */
int64_t tr_hostq_delay(const tr_hostq *q, const char *key);

/* Monotonic ms of host `key`'s next allowed start (0 when the host has no
 * record): a rendered page's same-host sub-resources wait for it. */
int64_t tr_hostq_next_start_ms(const tr_hostq *q, const char *key);

/* Monotonic ms at which the next queued host becomes ready; INT64_MAX when
 * nothing is queued or every queued host is at its connection cap. */
int64_t tr_hostq_next_ready_ms(const tr_hostq *q);

/* True when host `key` has a record (queued work or recent starts). */
bool tr_hostq_has(const tr_hostq *q, const char *key);

/* Call `fn(key, next_ms, arg)` for every host whose next allowed start
 * (monotonic ms) is after `now_ms`: the politeness state worth handing to
 * another process. */
void tr_hostq_foreach_pending(const tr_hostq *q, int64_t now_ms,
			      void (*fn)(const char *key, int64_t next_ms, void *arg), void *arg);

size_t tr_hostq_queued(const tr_hostq *q); /* items queued, all hosts */
size_t tr_hostq_hosts(const tr_hostq *q);  /* host records held */

/* The (at most) k hosts with the most items queued, deepest first (ties in
 * no particular order), hosts with none left out: their keys (owned by q,
 * valid until its next change) into keys[] and counts into depths[].
 * Returns how many were written. O(hosts * k). */
size_t tr_hostq_deepest(const tr_hostq *q, size_t k, const char *keys[], size_t depths[]);

/* Remove every queued item for which `pred(item, arg)` is true, passing it
 * to `drop(item, arg)`. Started requests are not affected. */
void tr_hostq_drop_if(tr_hostq *q, bool (*pred)(void *item, void *arg),
		      void (*drop)(void *item, void *arg), void *arg);

#endif
