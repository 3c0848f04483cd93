/* ipslots.h - cluster-wide politeness per IP address (--politeness ip).
 *
 * In ip mode the frontier stays keyed by host:port (the address is known
 * only after DNS), so requests to one address can be queued in several
 * producers. Each producer schedules them in a local per-address queue
 * (hostq) and, before a start, takes a slot from Redis, where every
 * producer sees the same state, timed by the Redis server's clock:
 *   tr:polite:{ADDR}      next allowed start (ms), expires with the delay
 *   tr:politeconn:{ADDR}  sorted set of requests in flight, scored by a
 *                         lease end (--timeout + 10 s) so a dead producer's
 *                         slots free themselves
 * Redis errors fail open (the local limits still hold) and are logged.
 * Producer loop thread only.
 */
#ifndef TR_IPSLOTS_H
#define TR_IPSLOTS_H

#include "producer_int.h"

/* Try to take a start slot of address `addr` for job j (delay `delay_ms`,
 * at most --host-connections in flight cluster-wide). Returns 0 when taken
 * (j->slot set, release with ipslots_release()), or the ms to wait before
 * asking again. Does Redis I/O. */
int64_t ipslots_acquire(prod *p, job *j, const char *addr, int64_t delay_ms);

/* A request of `addr` went on the wire: the next start, cluster-wide, is at
 * least `delay_ms` from now. */
void ipslots_sent(prod *p, const char *addr, int64_t delay_ms);

/* The request of j finished or never started: free its slot (no-op when j
 * holds none). */
void ipslots_release(prod *p, job *j);

#endif
