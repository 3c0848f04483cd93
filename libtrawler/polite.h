/* polite.h - politeness groups: which requests share one delay and one
 * connection cap. A group is a host:port (default), a registrable domain
 * (libpsl) or a resolved IP address.
 *
 * The frontier key (the Kafka message key of a CrawlRequest) decides which
 * producer owns a request; the politeness key decides which per-group
 * queue it waits in inside that producer. robots.txt stays per host:port
 * whatever the mode (tr_url_host_key()).
 *
 *   mode    frontier key        politeness key
 *   host    host:port           host:port
 *   domain  registrable domain  registrable domain
 *   ip      host:port           the address the host resolves to
 *
 * In domain mode a host without a registrable domain (an IP literal, a
 * public suffix) is its own group: the host without the port, so two ports
 * of one address are one group. In ip mode the address is known only after
 * DNS, so the producer resolves it (tr_polite_key()); requests of one
 * address can then sit in several producers, which coordinate through
 * Redis (producer/ipslots.c).
 */
#ifndef TR_POLITE_H
#define TR_POLITE_H

#include "common.h"

typedef enum {
	TR_POLITE_HOST = 0, /* host:port */
	TR_POLITE_DOMAIN,   /* registrable domain */
	TR_POLITE_IP	    /* resolved address */
} tr_polite_mode;

/* Parse "host", "domain" or "ip". Returns 0 and *out, or TR_EINVAL. */
int tr_polite_mode_parse(tr_polite_mode *out, const char *s);

/* Write the frontier (Kafka) key of the absolute http(s) URL `url` for
 * `mode` into out (outlen bytes with the NUL). Returns 0; TR_EINVAL for a
 * URL tr_url_host_key() rejects; TR_ETOOBIG when out is too small. Out is
 * untouched on failure. Thread-safe, no I/O. */
int tr_polite_frontier_key(char *out, size_t outlen, const char *url, tr_polite_mode mode);

/* A resolver for ip mode: a cache of host -> address (60 s, at most
 * TR_POLITE_DNS_MAX hosts; the whole cache is dropped when full) and fixed
 * entries "HOST:PORT:ADDR,..." (curl's --resolve format, also given to
 * libcurl so both agree). Not thread-safe: one thread calls it (its
 * lookup threads are internal). */
#define TR_POLITE_DNS_MAX 4096
typedef struct tr_polite_resolver tr_polite_resolver;

/* New resolver with the fixed entries of `fixed` ("" or NULL: none).
 * Returns 0 and *out (free with tr_polite_resolver_free()), TR_EINVAL for a
 * malformed list, or TR_ENOMEM. */
int tr_polite_resolver_new(tr_polite_resolver **out, const char *fixed);
void tr_polite_resolver_free(tr_polite_resolver *r);

/* Write the politeness key of `url` into out. Host and domain modes as
 * above (r may be NULL). In ip mode the address of the URL's host: a fixed
 * entry, an IP literal, or the first address getaddrinfo() returns (this
 * blocks for a host not in the cache); when resolution fails the key is
 * host:port (the fetch then reports the DNS error). Returns 0, TR_EINVAL
 * for a bad URL, TR_ETOOBIG; out is untouched on failure. */
int tr_polite_key(char *out, size_t outlen, tr_polite_resolver *r, const char *url,
		  tr_polite_mode mode);

/* The same without blocking, for an event loop. A host whose address is
 * neither fixed nor cached is looked up by the resolver's threads
 * (DNS_THREADS, started at the first such call): returns TR_EAGAIN, and
 * the key is known once tr_polite_resolver_collect() has taken the answer
 * (poll tr_polite_resolver_fd() for it). At most TR_POLITE_DNS_MAX lookups
 * wait to be collected; past that a new name gets TR_EAGAIN without a
 * lookup (counted as limit polite_dns_queue): ask again after a collect. An expired answer is still
 * given while its refresh runs. A failed lookup is cached like an address (the key is then
 * host:port). Otherwise as tr_polite_key(). */
int tr_polite_key_try(char *out, size_t outlen, tr_polite_resolver *r, const char *url,
		      tr_polite_mode mode);

/* Readable when lookups have finished; -1 before the first lookup was
 * queued. Owned by the resolver. */
int tr_polite_resolver_fd(const tr_polite_resolver *r);

/* Take the finished lookups into the cache. Returns how many. */
size_t tr_polite_resolver_collect(tr_polite_resolver *r);

/* The lookup: writes the host's first address as text and returns true,
 * or false when it does not resolve. Called from the resolver's threads. */
typedef bool (*tr_polite_lookup_fn)(const char *host, char *addr, size_t alen);

/* Replace getaddrinfo() (tests); only before the first lookup. NULL
 * restores it. */
void tr_polite_resolver_set_lookup(tr_polite_resolver *r, tr_polite_lookup_fn fn);

#endif
