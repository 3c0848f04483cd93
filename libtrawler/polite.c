/* polite.c - politeness group keys: host:port, registrable domain or IP. */
#include <arpa/inet.h>
#include <ctype.h>
#include <libpsl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "metrics.h"
#include "polite.h"
#include "url.h"

#define KEY_MAX 300
#define DNS_TTL_MS 60000
#define DNS_BUCKETS 1024

typedef struct dns_entry {
	char *host;
	char addr[INET6_ADDRSTRLEN];
	long port;	 /* fixed entries: the port they name; cache: -1 */
	int64_t expires; /* monotonic ms; fixed entries: INT64_MAX */
	struct dns_entry *next;
} dns_entry;

struct tr_polite_resolver {
	dns_entry *fixed;
	dns_entry *buckets[DNS_BUCKETS];
	size_t ncached;
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

void tr_polite_resolver_free(tr_polite_resolver *r)
{
	if (!r)
		return;
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

/* The first address of host, from the fixed entries, the cache or
 * getaddrinfo(). Returns true and writes addr. */
static bool resolve(tr_polite_resolver *r, const char *host, long port, char *addr, size_t alen)
{
	int64_t now = tr_mono_ms();
	const dns_entry *any = NULL;
	for (const dns_entry *e = r->fixed; e; e = e->next) {
		if (strcmp(e->host, host) != 0)
			continue;
		if (e->port == port) {
			snprintf(addr, alen, "%s", e->addr);
			return true;
		}
		any = any ? any : e;
	}
	if (any) {
		snprintf(addr, alen, "%s", any->addr);
		return true;
	}
	unsigned b = hash_host(host);
	for (dns_entry **pp = &r->buckets[b]; *pp; pp = &(*pp)->next) {
		dns_entry *e = *pp;
		if (strcmp(e->host, host) != 0)
			continue;
		if (e->expires > now) {
			snprintf(addr, alen, "%s", e->addr);
			return true;
		}
		*pp = e->next;
		e->next = NULL;
		entries_free(e);
		r->ncached--;
		break;
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return false;
	char found[INET6_ADDRSTRLEN] = "";
	if (res->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, found,
			  sizeof(found));
	else if (res->ai_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, found,
			  sizeof(found));
	freeaddrinfo(res);
	if (!found[0])
		return false;
	if (r->ncached >= TR_POLITE_DNS_MAX) {
		tr_metrics_limit_hit("polite_dns_cache");
		cache_clear(r);
	}
	dns_entry *e = calloc(1, sizeof(*e));
	if (e && (e->host = strdup(host))) {
		snprintf(e->addr, sizeof(e->addr), "%s", found);
		e->port = -1;
		e->expires = now + DNS_TTL_MS;
		e->next = r->buckets[b];
		r->buckets[b] = e;
		r->ncached++;
	} else {
		free(e);
	}
	snprintf(addr, alen, "%s", found);
	return true;
}

int tr_polite_key(char *out, size_t outlen, tr_polite_resolver *r, const char *url,
		  tr_polite_mode mode)
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
	if (!resolve(r, host, port, addr, sizeof(addr)))
		return put(out, outlen, hkey);
	return put(out, outlen, addr);
}
