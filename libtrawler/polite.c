/* polite.c - politeness group keys: host:port, registrable domain or IP. */
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <libpsl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "polite.h"
#include "url.h"

#define KEY_MAX 300
#define DNS_TTL_MS 60000
#define DNS_BUCKETS 1024
#define DNS_THREADS 4 /* lookups at once: one slow name does not hold the rest */

enum dns_state { DNS_NONE, DNS_OK, DNS_FAILED };

typedef struct dns_entry {
	char *host;
	char addr[INET6_ADDRSTRLEN];
	long port;	      /* fixed entries: the port they name; cache: -1 */
	int64_t expires;      /* monotonic ms; fixed entries: INT64_MAX */
	enum dns_state state; /* DNS_NONE: first lookup under way */
	bool pending;	      /* a lookup is queued (a refresh keeps the old answer) */
	struct dns_entry *next;
} dns_entry;

/* One lookup for the threads: queued by the loop, answered by a thread. */
typedef struct dns_job {
	struct dns_job *next;
	bool ok;
	char addr[INET6_ADDRSTRLEN];
	char host[];
} dns_job;

/* The lookup threads' side, shared with the resolver under `lock` and
 * freed by whichever of them lets go last (threads are detached: a lookup
 * stuck in the system resolver never holds up tr_polite_resolver_free). */
typedef struct dns_async {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	dns_job *todo, **todo_tail; /* FIFO */
	dns_job *done;
	int pipe[2]; /* a byte per answer: wakes the event loop */
	int refs;
	bool stop;
	tr_polite_lookup_fn lookup;
} dns_async;

struct tr_polite_resolver {
	dns_entry *fixed;
	dns_entry *buckets[DNS_BUCKETS];
	size_t ncached;
	tr_polite_lookup_fn lookup;
	dns_async *async;   /* started at the first tr_polite_key_try() miss */
	size_t outstanding; /* lookups queued and not collected yet */
	bool async_failed;  /* could not start the threads: look up inline */
};

int tr_polite_mode_parse(tr_polite_mode *out, const char *s)
{
	if (!s || !*s || strcmp(s, "host") == 0)
		*out = TR_POLITE_HOST;
	else if (strcmp(s, "domain") == 0)
		*out = TR_POLITE_DOMAIN;
	else if (strcmp(s, "ip") == 0)
		*out = TR_POLITE_IP;
	else
		return TR_EINVAL;
	return TR_OK;
}

/* Split a host key "host:port" into host (brackets of IPv6 removed) and port. */
static void split_key(const char *key, char *host, size_t hostlen, long *port)
{
	const char *colon = strrchr(key, ':');
	size_t n = colon ? (size_t)(colon - key) : strlen(key);
	if (n >= 2 && key[0] == '[' && key[n - 1] == ']')
		snprintf(host, hostlen, "%.*s", (int)(n - 2), key + 1);
	else
		snprintf(host, hostlen, "%.*s", (int)n, key);
	*port = colon ? atol(colon + 1) : 0;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int put(char *out, size_t outlen, const char *s)
{
	size_t n = strlen(s);
	if (n + 1 > outlen)
		return TR_ETOOBIG;
	memcpy(out, s, n + 1);
	return TR_OK;
}

/* The registrable domain of a host key, or its host when it has none. */
static int domain_key(char *out, size_t outlen, const char *hkey)
{
	char host[KEY_MAX];
	long port;
	split_key(hkey, host, sizeof(host), &port);
	const char *rd = is_ip_literal(host) ? NULL : psl_registrable_domain(psl_builtin(), host);
	return put(out, outlen, rd ? rd : host);
}

int tr_polite_frontier_key(char *out, size_t outlen, const char *url, tr_polite_mode mode)
{
	char hkey[KEY_MAX];
	int rc = tr_url_host_key(hkey, sizeof(hkey), url);
	if (rc != TR_OK)
		return rc;
	if (mode == TR_POLITE_DOMAIN)
		return domain_key(out, outlen, hkey);
	return put(out, outlen, hkey);
}

static void entries_free(dns_entry *e)
{
	while (e) {
		dns_entry *next = e->next;
		free(e->host);
		free(e);
		e = next;
	}
}

/* The default lookup: the first address getaddrinfo() returns. */
static bool lookup_first_address(const char *host, char *addr, size_t alen)
{
	struct addrinfo hints, *res = NULL;
	bool ok = false;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return false;
	if (res->ai_family == AF_INET)
		ok = inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr,
			       (socklen_t)alen) != NULL;
	else if (res->ai_family == AF_INET6)
		ok = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, addr,
			       (socklen_t)alen) != NULL;
	freeaddrinfo(res);
	return ok;
}

static void jobs_free(dns_job *j)
{
	while (j) {
		dns_job *next = j->next;
		free(j);
		j = next;
	}
}

static void async_destroy(dns_async *a)
{
	jobs_free(a->todo);
	jobs_free(a->done);
	for (int i = 0; i < 2; i++)
		if (a->pipe[i] >= 0)
			close(a->pipe[i]);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* Let go of a; the last holder frees it. */
static void async_release(dns_async *a)
{
	pthread_mutex_lock(&a->lock);
	bool last = --a->refs == 0;
	pthread_mutex_unlock(&a->lock);
	if (last)
		async_destroy(a);
}

static void *dns_thread(void *arg)
{
	dns_async *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		dns_job *j = a->todo;
		if (!j) {
			pthread_cond_wait(&a->wake, &a->lock);
			continue;
		}
		if (!(a->todo = j->next))
			a->todo_tail = &a->todo;
		pthread_mutex_unlock(&a->lock);
		j->ok = a->lookup(j->host, j->addr, sizeof(j->addr));
		pthread_mutex_lock(&a->lock);
		j->next = a->done;
		a->done = j;
		char c = 1;
		if (write(a->pipe[1], &c, 1) < 0) { /* full: the loop has bytes to read anyway */
		}
	}
	pthread_mutex_unlock(&a->lock);
	async_release(a);
	return NULL;
}

/* Start the lookup threads. Returns false when none could start. */
static bool async_start(tr_polite_resolver *r)
{
	dns_async *a = calloc(1, sizeof(*a));
	int started = 0;
	if (!a)
		return false;
	a->pipe[0] = a->pipe[1] = -1;
	a->todo_tail = &a->todo;
	a->lookup = r->lookup;
	a->refs = 1;
	if (pthread_mutex_init(&a->lock, NULL) != 0) {
		free(a);
		return false;
	}
	if (pthread_cond_init(&a->wake, NULL) != 0) {
		pthread_mutex_destroy(&a->lock);
		free(a);
		return false;
	}
	if (pipe2(a->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
		async_destroy(a);
		return false;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024); /* getaddrinfo + NSS modules: ample */
	for (int i = 0; i < DNS_THREADS; i++) {
		pthread_t t;
		pthread_mutex_lock(&a->lock);
		a->refs++;
		pthread_mutex_unlock(&a->lock);
		if (pthread_create(&t, &attr, dns_thread, a) == 0) {
			started++;
		} else {
			pthread_mutex_lock(&a->lock);
			a->refs--;
			pthread_mutex_unlock(&a->lock);
		}
	}
	pthread_attr_destroy(&attr);
	if (!started) {
		async_destroy(a);
		return false;
	}
	r->async = a;
	return true;
}

void tr_polite_resolver_free(tr_polite_resolver *r)
{
	if (!r)
		return;
	if (r->async) {
		pthread_mutex_lock(&r->async->lock);
		r->async->stop = true;
		pthread_cond_broadcast(&r->async->wake);
		pthread_mutex_unlock(&r->async->lock);
		async_release(r->async);
	}
	entries_free(r->fixed);
	for (size_t i = 0; i < DNS_BUCKETS; i++)
		entries_free(r->buckets[i]);
	free(r);
}

/* One "HOST:PORT:ADDR" item (n bytes at s) into a new fixed entry. */
static int parse_fixed(tr_polite_resolver *r, const char *s, size_t n)
{
	char item[KEY_MAX + INET6_ADDRSTRLEN + 16];
	unsigned char buf[sizeof(struct in6_addr)];
	if (n >= sizeof(item))
		return TR_EINVAL;
	memcpy(item, s, n);
	item[n] = '\0';
	char *c1 = strchr(item, ':');
	char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || !c2 || c1 == item)
		return TR_EINVAL;
	*c1 = *c2 = '\0';
	char *addr = c2 + 1;
	size_t al = strlen(addr);
	if (al >= 2 && addr[0] == '[' && addr[al - 1] == ']') {
		addr[al - 1] = '\0';
		addr++;
	}
	char *end = NULL;
	long port = strtol(c1 + 1, &end, 10);
	if (!end || *end || port <= 0 || port > 65535 ||
	    (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1))
		return TR_EINVAL;
	dns_entry *e = calloc(1, sizeof(*e));
	if (!e || !(e->host = strdup(item))) {
		free(e);
		return TR_ENOMEM;
	}
	for (char *p = e->host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	e->port = port;
	e->expires = INT64_MAX;
	e->next = r->fixed;
	r->fixed = e;
	return TR_OK;
}

int tr_polite_resolver_new(tr_polite_resolver **out, const char *fixed)
{
	int rc = TR_OK;
	tr_polite_resolver *r = calloc(1, sizeof(*r));
	if (!r)
		return TR_ENOMEM;
	r->lookup = lookup_first_address;
	for (const char *p = fixed ? fixed : ""; *p && rc == TR_OK;) {
		size_t n = strcspn(p, ", ");
		if (n)
			rc = parse_fixed(r, p, n);
		p += n + (p[n] != '\0');
	}
	if (rc == TR_OK) {
		*out = r;
		r = NULL;
	}
	tr_polite_resolver_free(r);
	return rc;
}

static unsigned hash_host(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % DNS_BUCKETS;
}

static void cache_clear(tr_polite_resolver *r)
{
	for (size_t i = 0; i < DNS_BUCKETS; i++) {
		entries_free(r->buckets[i]);
		r->buckets[i] = NULL;
	}
	r->ncached = 0;
}

void tr_polite_resolver_set_lookup(tr_polite_resolver *r, tr_polite_lookup_fn fn)
{
	if (!r->async)
		r->lookup = fn ? fn : lookup_first_address;
}

/* The cache entry of host (any state), or NULL. */
static dns_entry *cache_find(tr_polite_resolver *r, const char *host)
{
	dns_entry *e = r->buckets[hash_host(host)];
	while (e && strcmp(e->host, host) != 0)
		e = e->next;
	return e;
}

/* The cache entry of host, created (state DNS_NONE) if missing; NULL when
 * out of memory. */
static dns_entry *cache_get(tr_polite_resolver *r, const char *host)
{
	dns_entry *e = cache_find(r, host);
	if (!e) {
		if (r->ncached >= TR_POLITE_DNS_MAX) {
			tr_metrics_limit_hit("polite_dns_cache");
			cache_clear(r);
		}
		unsigned b = hash_host(host);
		if (!(e = calloc(1, sizeof(*e))) || !(e->host = strdup(host))) {
			free(e);
			return NULL;
		}
		e->port = -1;
		e->next = r->buckets[b];
		r->buckets[b] = e;
		r->ncached++;
	}
	return e;
}

/* Record the answer for host: an address, or a failure (addr NULL). */
static void cache_put(tr_polite_resolver *r, const char *host, const char *addr)
{
	dns_entry *e = cache_get(r, host);
	if (!e)
		return; /* not cached: looked up again next time */
	e->state = addr ? DNS_OK : DNS_FAILED;
	e->pending = false;
	snprintf(e->addr, sizeof(e->addr), "%s", addr ? addr : "");
	e->expires = tr_mono_ms() + DNS_TTL_MS;
}

enum { QUEUE_INLINE, QUEUE_DONE, QUEUE_FULL };

/* Queue a lookup of host for the threads (starting them if needed) and
 * mark its entry pending: QUEUE_DONE. QUEUE_FULL when TR_POLITE_DNS_MAX
 * lookups are outstanding already (ask again after the next collect);
 * QUEUE_INLINE when it cannot (no thread, no memory): look up inline. */
static int async_queue(tr_polite_resolver *r, const char *host)
{
	if (!r->async && !r->async_failed)
		r->async_failed = !async_start(r);
	if (!r->async)
		return QUEUE_INLINE;
	if (r->outstanding >= TR_POLITE_DNS_MAX) {
		tr_metrics_limit_hit("polite_dns_queue");
		return QUEUE_FULL;
	}
	dns_entry *e = cache_get(r, host);
	size_t n = strlen(host) + 1;
	dns_job *j = e ? calloc(1, sizeof(*j) + n) : NULL;
	if (!j)
		return QUEUE_INLINE;
	e->pending = true;
	r->outstanding++;
	memcpy(j->host, host, n);
	pthread_mutex_lock(&r->async->lock);
	*r->async->todo_tail = j;
	r->async->todo_tail = &j->next;
	pthread_cond_signal(&r->async->wake);
	pthread_mutex_unlock(&r->async->lock);
	return QUEUE_DONE;
}

/* The address of host: a fixed entry, the cache, or a lookup: inline when
 * `wait`, else queued for the threads (an expired answer is still given
 * while its refresh runs). Returns 1 (addr written), 0 (host does not
 * resolve) or -1 (the first lookup is under way; only without `wait`). */
static int resolve(tr_polite_resolver *r, const char *host, long port, char *addr, size_t alen,
		   bool wait)
{
	const dns_entry *any = NULL;
	for (const dns_entry *e = r->fixed; e; e = e->next) {
		if (strcmp(e->host, host) != 0)
			continue;
		if (e->port == port) {
			snprintf(addr, alen, "%s", e->addr);
			return 1;
		}
		any = any ? any : e;
	}
	if (any) {
		snprintf(addr, alen, "%s", any->addr);
		return 1;
	}
	const dns_entry *e = cache_find(r, host);
	bool use_cached = e && e->state != DNS_NONE && e->expires > tr_mono_ms();
	if (!use_cached && !wait && ((e && e->pending) || async_queue(r, host) != QUEUE_INLINE)) {
		e = cache_find(r, host); /* queueing may have dropped the cache */
		if (!e || e->state == DNS_NONE)
			return -1;
		use_cached = true; /* expired, refresh under way: still the best answer */
	}
	if (use_cached) {
		snprintf(addr, alen, "%s", e->addr);
		return e->state == DNS_OK;
	}
	char found[INET6_ADDRSTRLEN] = "";
	bool ok = r->lookup(host, found, sizeof(found)) && found[0];
	cache_put(r, host, ok ? found : NULL);
	snprintf(addr, alen, "%s", found);
	return ok;
}

static int polite_key(char *out, size_t outlen, tr_polite_resolver *r, const char *url,
		      tr_polite_mode mode, bool wait)
{
	char hkey[KEY_MAX], host[KEY_MAX], addr[INET6_ADDRSTRLEN];
	long port;
	int rc = tr_url_host_key(hkey, sizeof(hkey), url);
	if (rc != TR_OK)
		return rc;
	if (mode == TR_POLITE_DOMAIN)
		return domain_key(out, outlen, hkey);
	if (mode != TR_POLITE_IP || !r)
		return put(out, outlen, hkey);
	split_key(hkey, host, sizeof(host), &port);
	if (is_ip_literal(host))
		return put(out, outlen, host);
	switch (resolve(r, host, port, addr, sizeof(addr), wait)) {
	case 1:
		return put(out, outlen, addr);
	case 0:
		return put(out, outlen, hkey);
	default:
		return TR_EAGAIN;
	}
}

int tr_polite_key(char *out, size_t outlen, tr_polite_resolver *r, const char *url,
		  tr_polite_mode mode)
{
	return polite_key(out, outlen, r, url, mode, true);
}

int tr_polite_key_try(char *out, size_t outlen, tr_polite_resolver *r, const char *url,
		      tr_polite_mode mode)
{
	return polite_key(out, outlen, r, url, mode, false);
}

int tr_polite_resolver_fd(const tr_polite_resolver *r)
{
	return r && r->async ? r->async->pipe[0] : -1;
}

size_t tr_polite_resolver_collect(tr_polite_resolver *r)
{
	size_t n = 0;
	char buf[64];
	if (!r || !r->async)
		return 0;
	while (read(r->async->pipe[0], buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&r->async->lock);
	dns_job *done = r->async->done;
	r->async->done = NULL;
	pthread_mutex_unlock(&r->async->lock);
	for (dns_job *j = done; j; j = j->next, n++)
		cache_put(r, j->host, j->ok && j->addr[0] ? j->addr : NULL);
	r->outstanding -= n;
	jobs_free(done);
	return n;
}
