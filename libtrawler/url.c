/* url.c - URL resolution and canonicalization on top of libcurl's URL API. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

struct tr_url_base {
	CURLU *h;	 /* the parsed base; only ever read after creation */
	char *canonical; /* its canonical form */
};

/* A bounded output string: never longer than TR_URL_MAX_LEN. */
typedef struct url_sb {
	char buf[TR_URL_MAX_LEN + 1];
	size_t len;
} url_sb;

/* The parts of a parsed URL that the canonical form is built from. Strings
 * are libcurl's (curl_free); absent parts are NULL. */
typedef struct url_parts {
	char *scheme;
	char *host;
	char *port; /* always set: libcurl fills in the default */
	char *user;
	char *password;
	char *zoneid;
	char *path;
	char *query;
} url_parts;

static const char url_hex[] = "0123456789ABCDEF";

static int url_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool url_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 3986 2.3 unreserved. */
static bool url_is_unreserved(unsigned char c)
{
	return url_is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Characters RFC 3986 allows nowhere in a URI (outside an IPv6 literal). */
static bool url_must_encode(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return true;
	switch (c) {
	case '"':
	case '<':
	case '>':
	case '\\':
	case '^':
	case '`':
	case '{':
	case '|':
	case '}':
	case '[':
	case ']':
		return true;
	default:
		return false;
	}
}

static char url_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int url_sb_add(url_sb *sb, const char *s, size_t n)
{
	int rc = 0;

	if (n > TR_URL_MAX_LEN - sb->len) {
		rc = TR_ETOOBIG;
		goto out;
	}
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
out:
	return rc;
}

static int url_sb_adds(url_sb *sb, const char *s)
{
	return url_sb_add(sb, s, strlen(s));
}

static int url_sb_addc(url_sb *sb, char c)
{
	return url_sb_add(sb, &c, 1);
}

static int url_sb_add_pct(url_sb *sb, unsigned char c)
{
	char enc[3] = {'%', url_hex[c >> 4], url_hex[c & 15]};

	return url_sb_add(sb, enc, sizeof(enc));
}

/* Append component s percent-normalized (rule 10). Sets *dot when a "%2E"
 * was decoded (dot segments may have appeared). */
static int url_sb_add_normalized(url_sb *sb, const char *s, bool *dot)
{
	int rc = 0;
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0' && rc == 0) {
		int hi, lo;

		if (*p == '%' && (hi = url_hexval(p[1])) >= 0 && (lo = url_hexval(p[2])) >= 0) {
			unsigned char c = (unsigned char)(hi * 16 + lo);
			if (url_is_unreserved(c)) {
				if (c == '.')
					*dot = true;
				rc = url_sb_addc(sb, (char)c);
			} else {
				rc = url_sb_add_pct(sb, c);
			}
			p += 3;
		} else if (*p == '%' || url_must_encode(*p)) {
			rc = url_sb_add_pct(sb, *p);
			p++;
		} else {
			rc = url_sb_addc(sb, (char)*p);
			p++;
		}
	}
	return rc;
}

/* Rules 1-4. On success *clean is the cleaned, NUL-terminated input: either
 * a pointer into `in` or the malloc'd *owned (caller frees). *fragment_only
 * tells that nothing but a fragment was there (*clean is then ""). */
static int url_clean(char **owned, const char **clean, bool *fragment_only, const char *in)
{
	int rc = 0;
	size_t n, i;
	const char *s, *e, *hash, *query;
	bool rewrite = false;
	char *copy = NULL, *w;

	n = strnlen(in, TR_URL_MAX_LEN + 1);
	if (n > TR_URL_MAX_LEN) {
		rc = TR_ETOOBIG;
		goto out;
	}
	s = in;
	e = in + n;
	while (s < e && (unsigned char)*s <= 0x20)
		s++;
	while (e > s && (unsigned char)e[-1] <= 0x20)
		e--;
	if (s == e) {
		rc = TR_EINVAL;
		goto out;
	}
	hash = memchr(s, '#', (size_t)(e - s));
	if (hash != NULL)
		e = hash;
	rewrite = e != in + n;
	query = memchr(s, '?', (size_t)(e - s));
	if (query == NULL)
		query = e;
	for (i = 0; i < (size_t)(e - s) && !rewrite; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c == 0x7f || (c == '\\' && s + i < query))
			rewrite = true;
	}
	if (!rewrite) {
		*owned = NULL;
		*clean = s;
		*fragment_only = false;
		goto out;
	}

	copy = malloc(3 * (size_t)(e - s) + 1);
	if (copy == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	w = copy;
	for (i = 0; i < (size_t)(e - s); i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c <= 0x20 || c == 0x7f) {
			*w++ = '%';
			*w++ = url_hex[c >> 4];
			*w++ = url_hex[c & 15];
		} else if (c == '\\' && s + i < query) {
			*w++ = '/';
		} else {
			*w++ = (char)c;
		}
	}
	*w = '\0';
	/* Trimming left a first character that is kept, so only a cut at '#'
	 * can leave nothing. */
	*fragment_only = w == copy;
	*owned = copy;
	*clean = copy;
	copy = NULL;
out:
	free(copy);
	return rc;
}

static int url_code(CURLUcode uc)
{
	if (uc == CURLUE_OK)
		return 0;
	if (uc == CURLUE_OUT_OF_MEMORY)
		return TR_ENOMEM;
	return TR_EINVAL;
}

static void url_parts_free(url_parts *p)
{
	curl_free(p->scheme);
	curl_free(p->host);
	curl_free(p->port);
	curl_free(p->user);
	curl_free(p->password);
	curl_free(p->zoneid);
	curl_free(p->path);
	curl_free(p->query);
	memset(p, 0, sizeof(*p));
}

/* Get an optional part: absent is not an error. */
static int url_get_opt(char **out, CURLU *h, CURLUPart what)
{
	int rc = 0;
	CURLUcode uc = curl_url_get(h, what, out, 0);

	if (uc == CURLUE_OK)
		goto out;
	*out = NULL;
	if (uc == CURLUE_OUT_OF_MEMORY)
		rc = TR_ENOMEM;
	else if (uc != CURLUE_NO_USER && uc != CURLUE_NO_PASSWORD && uc != CURLUE_NO_ZONEID &&
		 uc != CURLUE_NO_QUERY)
		rc = TR_EINVAL;
out:
	return rc;
}

/* Check and lowercase a host in place (rule 6). */
static int url_host_fix(char *host)
{
	int rc = 0;
	size_t i, n = strlen(host);

	if (n == 0) {
		rc = TR_EINVAL;
		goto out;
	}
	if (host[0] == '[') {
		if (n < 3 || host[n - 1] != ']') {
			rc = TR_EINVAL;
			goto out;
		}
		for (i = 1; i < n - 1; i++) {
			if (url_hexval((unsigned char)host[i]) < 0 && host[i] != ':' &&
			    host[i] != '.') {
				rc = TR_EINVAL;
				goto out;
			}
			host[i] = url_lower(host[i]);
		}
		goto out;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)host[i];
		if (!url_is_unreserved(c)) {
			rc = TR_EINVAL;
			goto out;
		}
		host[i] = url_lower(host[i]);
	}
out:
	return rc;
}

/* Read and check the parts of a parsed URL (rules 5-8); *port_num is the
 * effective port and *default_port its scheme's default. */
static int url_parts_get(url_parts *p, unsigned *port_num, unsigned *default_port, CURLU *h)
{
	int rc;
	char *end;
	unsigned long port;

	memset(p, 0, sizeof(*p));
	rc = url_code(curl_url_get(h, CURLUPART_SCHEME, &p->scheme, 0));
	if (rc != 0)
		goto out;
	if (strcmp(p->scheme, "http") == 0) {
		*default_port = 80;
	} else if (strcmp(p->scheme, "https") == 0) {
		*default_port = 443;
	} else {
		rc = TR_EINVAL;
		goto out;
	}
	rc = url_code(curl_url_get(h, CURLUPART_HOST, &p->host, 0));
	if (rc == 0)
		rc = url_code(curl_url_get(h, CURLUPART_PORT, &p->port, CURLU_DEFAULT_PORT));
	if (rc == 0)
		rc = url_get_opt(&p->zoneid, h, CURLUPART_ZONEID);
	if (rc != 0)
		goto out;
	if (p->zoneid != NULL) {
		rc = TR_EINVAL;
		goto out;
	}
	rc = url_host_fix(p->host);
	if (rc != 0)
		goto out;
	port = strtoul(p->port, &end, 10);
	if (*end != '\0' || port == 0 || port > 65535) {
		rc = TR_EINVAL;
		goto out;
	}
	*port_num = (unsigned)port;
	rc = url_get_opt(&p->user, h, CURLUPART_USER);
	if (rc == 0)
		rc = url_get_opt(&p->password, h, CURLUPART_PASSWORD);
	if (rc == 0)
		rc = url_code(curl_url_get(h, CURLUPART_PATH, &p->path, 0));
	if (rc == 0)
		rc = url_get_opt(&p->query, h, CURLUPART_QUERY);
out:
	if (rc != 0)
		url_parts_free(p);
	return rc;
}

/* Build the canonical form of a parsed URL into sb. Sets *redo when
 * decoding revealed possible dot segments: sb must then go through libcurl
 * again. */
static int url_build(url_sb *sb, bool *redo, CURLU *h)
{
	int rc;
	url_parts p;
	unsigned port, default_port;
	char num[8];
	bool dot = false, ignored = false;

	sb->len = 0;
	sb->buf[0] = '\0';
	rc = url_parts_get(&p, &port, &default_port, h);
	if (rc != 0)
		goto out;
	rc = url_sb_adds(sb, p.scheme);
	if (rc == 0)
		rc = url_sb_add(sb, "://", 3);
	if (rc == 0 && (p.user != NULL || p.password != NULL)) {
		if (p.user != NULL)
			rc = url_sb_add_normalized(sb, p.user, &ignored);
		if (rc == 0 && p.password != NULL) {
			rc = url_sb_addc(sb, ':');
			if (rc == 0)
				rc = url_sb_add_normalized(sb, p.password, &ignored);
		}
		if (rc == 0)
			rc = url_sb_addc(sb, '@');
	}
	if (rc == 0)
		rc = url_sb_adds(sb, p.host);
	if (rc == 0 && port != default_port) {
		snprintf(num, sizeof(num), ":%u", port);
		rc = url_sb_adds(sb, num);
	}
	if (rc == 0 && p.path[0] != '/')
		rc = url_sb_addc(sb, '/');
	if (rc == 0)
		rc = url_sb_add_normalized(sb, p.path, &dot);
	if (rc == 0 && p.query != NULL && p.query[0] != '\0') {
		rc = url_sb_addc(sb, '?');
		if (rc == 0)
			rc = url_sb_add_normalized(sb, p.query, &ignored);
	}
	*redo = dot;
out:
	url_parts_free(&p);
	return rc;
}

/* Canonicalize a parsed URL into a malloc'd string. With `reparse` (the
 * input held a '%'), the result goes through libcurl once more: libcurl
 * decodes %XX in a host before we see it but normalizes numeric hosts only
 * when parsing ("%32" -> "2", which then parses as "0.0.0.2"). */
static int url_finish(char **out, CURLU *h, bool reparse)
{
	int rc;
	url_sb *sb = NULL;
	CURLU *again = NULL;
	bool redo = false;
	char *s;

	sb = malloc(sizeof(*sb));
	if (sb == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = url_build(sb, &redo, h);
	if (rc == 0 && (redo || reparse)) {
		again = curl_url();
		if (again == NULL) {
			rc = TR_ENOMEM;
			goto out;
		}
		rc = url_code(curl_url_set(again, CURLUPART_URL, sb->buf, 0));
		if (rc == 0)
			rc = url_build(sb, &redo, again);
	}
	if (rc != 0)
		goto out;
	s = malloc(sb->len + 1);
	if (s == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	memcpy(s, sb->buf, sb->len + 1);
	*out = s;
out:
	curl_url_cleanup(again);
	free(sb);
	return rc;
}

/* Parse an absolute URL (after clean-up) into a new handle. *pct tells
 * whether the input held a '%'. */
static int url_parse(CURLU **out, bool *pct, const char *url)
{
	int rc;
	char *owned = NULL;
	const char *clean;
	bool fragment_only = false;
	CURLU *h = NULL;

	if (url == NULL) {
		rc = TR_EINVAL;
		goto out;
	}
	rc = url_clean(&owned, &clean, &fragment_only, url);
	if (rc != 0)
		goto out;
	if (fragment_only) {
		rc = TR_EINVAL;
		goto out;
	}
	h = curl_url();
	if (h == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = url_code(curl_url_set(h, CURLUPART_URL, clean, CURLU_URLENCODE));
	if (rc != 0)
		goto out;
	*pct = strchr(clean, '%') != NULL;
	*out = h;
	h = NULL;
out:
	curl_url_cleanup(h);
	free(owned);
	return rc;
}

int tr_url_canonicalize(char **out, const char *url)
{
	int rc;
	CURLU *h = NULL;
	bool pct = false;

	rc = url_parse(&h, &pct, url);
	if (rc == 0)
		rc = url_finish(out, h, pct);
	curl_url_cleanup(h);
	return rc;
}

int tr_url_base_new(tr_url_base **out, const char *base)
{
	int rc;
	tr_url_base *b;

	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = tr_url_canonicalize(&b->canonical, base);
	if (rc != 0)
		goto out;
	/* Resolve against the canonical form, not the raw input: the two can
	 * differ beyond what url_build() fixes up (see url_finish()). */
	b->h = curl_url();
	if (b->h == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = url_code(curl_url_set(b->h, CURLUPART_URL, b->canonical, 0));
	if (rc != 0)
		goto out;
	*out = b;
	b = NULL;
out:
	tr_url_base_free(b);
	return rc;
}

const char *tr_url_base_url(const tr_url_base *base)
{
	return base->canonical;
}

void tr_url_base_free(tr_url_base *base)
{
	if (base == NULL)
		return;
	curl_url_cleanup(base->h);
	free(base->canonical);
	free(base);
}

int tr_url_resolve_base(char **out, const tr_url_base *base, const char *ref)
{
	int rc;
	char *owned = NULL, *s;
	const char *clean;
	bool fragment_only = false;
	CURLU *h = NULL;

	if (base == NULL || ref == NULL) {
		rc = TR_EINVAL;
		goto out;
	}
	rc = url_clean(&owned, &clean, &fragment_only, ref);
	if (rc != 0)
		goto out;
	if (fragment_only) {
		/* RFC 3986 5.2.2: an empty reference is the base itself; libcurl
		 * would drop the base's last path segment. */
		s = strdup(base->canonical);
		if (s == NULL) {
			rc = TR_ENOMEM;
			goto out;
		}
		*out = s;
		goto out;
	}
	h = curl_url_dup(base->h);
	if (h == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	/* A handle that already holds a URL resolves a relative one against it. */
	rc = url_code(curl_url_set(h, CURLUPART_URL, clean, CURLU_URLENCODE));
	if (rc == 0)
		rc = url_finish(out, h, strchr(clean, '%') != NULL);
out:
	curl_url_cleanup(h);
	free(owned);
	return rc;
}

int tr_url_resolve(char **out, const char *base, const char *ref)
{
	int rc;
	tr_url_base *b = NULL;

	if (ref == NULL) {
		rc = TR_EINVAL;
		goto out;
	}
	rc = tr_url_base_new(&b, base);
	if (rc == 0)
		rc = tr_url_resolve_base(out, b, ref);
out:
	tr_url_base_free(b);
	return rc;
}

int tr_url_host_key(char *out, size_t outlen, const char *url)
{
	int rc;
	CURLU *h = NULL;
	url_parts p;
	unsigned port = 0, default_port;
	int n;
	char *canonical = NULL;

	memset(&p, 0, sizeof(p));
	/* From the canonical form, so that the key is the canonical URL's. */
	rc = tr_url_canonicalize(&canonical, url);
	if (rc != 0)
		goto out;
	h = curl_url();
	if (h == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = url_code(curl_url_set(h, CURLUPART_URL, canonical, 0));
	if (rc == 0)
		rc = url_parts_get(&p, &port, &default_port, h);
	if (rc != 0)
		goto out;
	n = snprintf(NULL, 0, "%s:%u", p.host, port);
	if (n < 0 || (size_t)n >= outlen) {
		rc = TR_ETOOBIG;
		goto out;
	}
	snprintf(out, outlen, "%s:%u", p.host, port);
out:
	url_parts_free(&p);
	curl_url_cleanup(h);
	free(canonical);
	return rc;
}

int tr_url_host_key_canonical(char *out, size_t outlen, const char *canonical)
{
	int rc = TR_EINVAL;
	const char *auth, *end, *at, *host_end, *port = NULL;
	size_t hlen, plen;
	const char *dflt;

	if (strncmp(canonical, "http://", 7) == 0) {
		auth = canonical + 7;
		dflt = "80";
	} else if (strncmp(canonical, "https://", 8) == 0) {
		auth = canonical + 8;
		dflt = "443";
	} else {
		goto out;
	}
	end = strchr(auth, '/'); /* canonical URLs always have a path */
	if (end == NULL)
		goto out;
	at = memchr(auth, '@', (size_t)(end - auth)); /* userinfo has '@' encoded */
	if (at != NULL)
		auth = at + 1;
	if (*auth == '[') {
		host_end = memchr(auth, ']', (size_t)(end - auth));
		if (host_end == NULL)
			goto out;
		host_end++;
	} else {
		host_end = memchr(auth, ':', (size_t)(end - auth));
		if (host_end == NULL)
			host_end = end;
	}
	if (host_end == auth)
		goto out;
	if (host_end < end) {
		if (*host_end != ':' || host_end + 1 == end)
			goto out;
		port = host_end + 1;
	}
	hlen = (size_t)(host_end - auth);
	plen = port ? (size_t)(end - port) : strlen(dflt);
	if (hlen + 1 + plen + 1 > outlen) {
		rc = TR_ETOOBIG;
		goto out;
	}
	memcpy(out, auth, hlen);
	out[hlen] = ':';
	memcpy(out + hlen + 1, port ? port : dflt, plen);
	out[hlen + 1 + plen] = '\0';
	rc = 0;
out:
	return rc;
}

bool tr_url_is_http(const char *url)
{
	char *canonical = NULL;
	bool ok = tr_url_canonicalize(&canonical, url) == 0;

	free(canonical);
	return ok;
}

void tr_url_redact(char *out, size_t outlen, const char *url)
{
	const char *auth = url ? strstr(url, "://") : NULL;
	const char *at = NULL, *colon = NULL;
	if (auth) {
		auth += 3;
		size_t n = strcspn(auth, "/?#"); /* the authority */
		/* the last '@' of the authority ends the user-info */
		for (size_t i = 0; i < n; i++)
			if (auth[i] == '@')
				at = auth + i;
		colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	}
	if (colon)
		snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - url), url, at);
	else
		snprintf(out, outlen, "%s", url ? url : "");
}

uint64_t tr_url_fingerprint(const char *canonical_url, size_t len)
{
	/* FNV-1a 64 (offset basis and prime from the FNV reference)... */
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	const unsigned char *p = (const unsigned char *)canonical_url;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	/* ...then splitmix64's finalizer, so that every input bit reaches every
	 * output bit (FNV alone mixes the high bits poorly). */
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}
