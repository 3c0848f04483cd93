/* robots.c - robots.txt parser and matcher (RFC 9309), with Crawl-delay and Sitemap. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "robots.h"

#define ROBOTS_PATH_STACK 2048 /* normalized paths up to this many bytes need no malloc */

typedef enum robots_key {
	ROBOTS_KEY_UNKNOWN,
	ROBOTS_KEY_AGENT,
	ROBOTS_KEY_ALLOW,
	ROBOTS_KEY_DISALLOW,
	ROBOTS_KEY_DELAY,
	ROBOTS_KEY_SITEMAP,
} robots_key;

/* The keys understood, with the misspellings Google's parser accepts. */
static const struct {
	const char *name;
	robots_key key;
} robots_keys[] = {
    {"user-agent", ROBOTS_KEY_AGENT},  {"useragent", ROBOTS_KEY_AGENT},
    {"user agent", ROBOTS_KEY_AGENT},  {"allow", ROBOTS_KEY_ALLOW},
    {"disallow", ROBOTS_KEY_DISALLOW}, {"dissallow", ROBOTS_KEY_DISALLOW},
    {"dissalow", ROBOTS_KEY_DISALLOW}, {"disalow", ROBOTS_KEY_DISALLOW},
    {"diasllow", ROBOTS_KEY_DISALLOW}, {"disallaw", ROBOTS_KEY_DISALLOW},
    {"crawl-delay", ROBOTS_KEY_DELAY}, {"crawldelay", ROBOTS_KEY_DELAY},
    {"crawl delay", ROBOTS_KEY_DELAY}, {"sitemap", ROBOTS_KEY_SITEMAP},
    {"site-map", ROBOTS_KEY_SITEMAP},
};

typedef struct robots_rule {
	uint32_t off;  /* the normalized pattern is at pat + off, its KMP table at fail + off */
	uint32_t plen; /* normalized length, without the anchoring '$' */
	uint32_t len;  /* match length: bytes as written in the file */
	bool allow;
	bool anchored; /* the pattern ended with '$' */
} robots_rule;

/* The merged rules of the groups naming one agent. */
typedef struct robots_set {
	robots_rule *rules; /* sorted longest first, allow before disallow (robots_rule_cmp) */
	size_t nrules;
	size_t rules_cap;
	char *pat; /* normalized patterns back to back, runs of '*' collapsed */
	size_t pat_len;
	size_t pat_cap;
	uint16_t *fail; /* per pattern byte: KMP failure value within its '*'-free piece */
	size_t fail_cap;
	int64_t delay_ms; /* -1: none */
	bool found;	  /* some group names this agent */
} robots_set;

typedef enum robots_mode {
	ROBOTS_MODE_RULES,
	ROBOTS_MODE_ALLOW_ALL,
	ROBOTS_MODE_DISALLOW_ALL,
} robots_mode;

struct tr_robots {
	robots_mode mode;
	robots_set set; /* the groups used (ROBOTS_MODE_RULES) */
	char **sitemaps;
	size_t nsitemaps;
	size_t sitemaps_cap;
};

/* Parser state across lines. */
typedef struct robots_parser {
	const char *token; /* the crawler's product token, token_len bytes */
	size_t token_len;
	bool in_agents; /* the last group line was a user-agent line */
	bool to_own;	/* the current group names the crawler */
	bool to_star;	/* the current group names "*" */
} robots_parser;

static const char robots_hex[] = "0123456789ABCDEF";

static int robots_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3986 2.3 unreserved. */
static bool robots_is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Bytes url.h's canonical form percent-encodes (rule 10). */
static bool robots_must_encode(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || (c != '\0' && strchr("\"<>\\^`{|}[]", c) != NULL);
}

static unsigned char robots_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool robots_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return false;
	for (i = 0; i < alen; i++)
		if (robots_lower((unsigned char)a[i]) != robots_lower((unsigned char)b[i]))
			return false;
	return true;
}

static bool robots_is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the product token at the start of s (n bytes): up to the first
 * '/', space or tab. */
static size_t robots_token_len(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && s[i] != '/' && !robots_is_space(s[i]))
		i++;
	return i;
}

/* Percent-normalize n bytes of src into dst, which has room for 3 * n bytes
 * (see robots.h). Returns the bytes written. '$' becomes %24 (a pattern's
 * anchoring '$' is stripped before); '*' stays in a pattern, where it is
 * the wildcard, and becomes %2A in a path, so that a pattern's %2A is a
 * literal '*'. */
static size_t robots_norm(char *dst, const char *src, size_t n, bool pattern)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, w = 0;
	int hi, lo;
	unsigned char c;

	while (i < n) {
		c = s[i];
		if (c == '%' && n - i >= 3 && (hi = robots_hexval(s[i + 1])) >= 0 &&
		    (lo = robots_hexval(s[i + 2])) >= 0) {
			c = (unsigned char)(hi * 16 + lo);
			i += 3;
			if (robots_is_unreserved(c)) {
				dst[w++] = (char)c;
				continue;
			}
		} else {
			i++;
			if (c != '%' && c != '$' && (c != '*' || pattern) &&
			    !robots_must_encode(c)) {
				dst[w++] = (char)c;
				continue;
			}
		}
		dst[w++] = '%';
		dst[w++] = robots_hex[c >> 4];
		dst[w++] = robots_hex[c & 15];
	}
	return w;
}

/* Make room for `need` elements of `elem` bytes in the array p that holds
 * *cap. Returns the array, maybe moved, with *cap updated; NULL when out of
 * memory (p and *cap are then unchanged, p still the caller's). */
static void *robots_grow(void *p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap == 0 ? 16 : *cap;
	void *np = p;

	if (need <= *cap)
		goto out;
	while (ncap < need)
		ncap *= 2;
	np = realloc(p, ncap * elem);
	if (np == NULL)
		goto out;
	*cap = ncap;
out:
	return np;
}

static void robots_set_free(robots_set *set)
{
	free(set->rules);
	free(set->pat);
	free(set->fail);
	memset(set, 0, sizeof(*set));
	set->delay_ms = -1;
}

/* KMP failure values of the '*'-free piece p[0..m) into fail[0..m). */
static void robots_kmp_table(uint16_t *fail, const char *p, size_t m)
{
	size_t q, k = 0;

	if (m > 0)
		fail[0] = 0;
	for (q = 1; q < m; q++) {
		while (k > 0 && p[q] != p[k])
			k = fail[k - 1];
		if (p[q] == p[k])
			k++;
		fail[q] = (uint16_t)k;
	}
}

/* Add an allow or disallow rule with the pattern v (n bytes as written,
 * trimmed) to set. Empty, too long and over-the-cap rules are skipped.
 * Returns 0 or TR_ENOMEM (set unchanged but possibly grown). */
static int robots_set_add(robots_set *set, bool allow, const char *v, size_t n)
{
	int rc = 0;
	robots_rule *rule, *rules;
	char *pat, *p;
	uint16_t *fail;
	size_t w, i, m, start;

	if (n > TR_ROBOTS_MAX_PATTERN)
		tr_metrics_limit_hit("robots_rule_bytes");
	else if (n > 0 && set->nrules >= TR_ROBOTS_MAX_RULES)
		tr_metrics_limit_hit("robots_rules");
	if (n == 0 || n > TR_ROBOTS_MAX_PATTERN || set->nrules >= TR_ROBOTS_MAX_RULES)
		goto out;
	rules = robots_grow(set->rules, &set->rules_cap, set->nrules + 1, sizeof(*rules));
	if (rules == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	set->rules = rules;
	pat = robots_grow(set->pat, &set->pat_cap, set->pat_len + 3 * n, 1);
	if (pat == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	set->pat = pat;
	fail = robots_grow(set->fail, &set->fail_cap, set->pat_len + 3 * n, sizeof(*fail));
	if (fail == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	set->fail = fail;

	rule = &set->rules[set->nrules];
	rule->off = (uint32_t)set->pat_len;
	rule->len = (uint32_t)n; /* the match length counts the '$' too */
	rule->allow = allow;
	rule->anchored = v[n - 1] == '$';
	p = set->pat + set->pat_len;
	m = robots_norm(p, v, rule->anchored ? n - 1 : n, true);
	/* Collapse runs of '*': "a**b" matches what "a*b" matches. */
	for (i = 0, w = 0; i < m; i++)
		if (p[i] != '*' || w == 0 || p[w - 1] != '*')
			p[w++] = p[i];
	m = w;
	rule->plen = (uint32_t)m;
	for (start = 0, i = 0; i <= m; i++) {
		if (i == m || p[i] == '*') {
			robots_kmp_table(set->fail + set->pat_len + start, p + start, i - start);
			if (i < m)
				set->fail[set->pat_len + i] = 0;
			start = i + 1;
		}
	}
	set->pat_len += m;
	set->nrules++;
out:
	return rc;
}

/* Crawl-delay value v (n bytes, trimmed): a non-negative decimal number of
 * seconds. Returns milliseconds, capped at TR_ROBOTS_MAX_DELAY_MS, or -1
 * when v is not such a number. */
static int64_t robots_delay_ms(const char *v, size_t n)
{
	const int64_t max_secs = TR_ROBOTS_MAX_DELAY_MS / 1000;
	int64_t ms = -1, secs = 0, frac = 0;
	size_t i = 0, digits = 0, fdigits = 0;

	for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++)
		if (secs <= max_secs)
			secs = secs * 10 + (v[i] - '0');
	if (i < n && v[i] == '.') {
		for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++, fdigits++)
			if (fdigits < 3)
				frac = frac * 10 + (v[i] - '0');
	}
	if (i != n || digits + fdigits == 0)
		goto out;
	for (; fdigits < 3; fdigits++)
		frac *= 10;
	ms = secs > max_secs ? TR_ROBOTS_MAX_DELAY_MS + 1 : secs * 1000 + frac;
	if (ms > TR_ROBOTS_MAX_DELAY_MS) {
		tr_metrics_limit_hit("robots_crawl_delay");
		ms = TR_ROBOTS_MAX_DELAY_MS;
	}
out:
	return ms;
}

/* Keep the sitemap URL v (n bytes, trimmed) when it qualifies (robots.h).
 * Returns 0 or TR_ENOMEM (r unchanged). */
static int robots_add_sitemap(tr_robots *r, const char *v, size_t n)
{
	int rc = 0;
	size_t i;
	char *copy = NULL, **grown;

	if (n > TR_ROBOTS_MAX_SITEMAP_LEN || (n > 0 && r->nsitemaps >= TR_ROBOTS_MAX_SITEMAPS))
		tr_metrics_limit_hit("robots_sitemaps");
	if (n == 0 || n > TR_ROBOTS_MAX_SITEMAP_LEN || r->nsitemaps >= TR_ROBOTS_MAX_SITEMAPS)
		goto out;
	if (!(n > 7 && robots_ieq(v, 7, "http://", 7)) &&
	    !(n > 8 && robots_ieq(v, 8, "https://", 8)))
		goto out;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] == 0x7f)
			goto out;
	for (i = 0; i < r->nsitemaps; i++)
		if (strlen(r->sitemaps[i]) == n && memcmp(r->sitemaps[i], v, n) == 0)
			goto out;
	grown = robots_grow(r->sitemaps, &r->sitemaps_cap, r->nsitemaps + 1, sizeof(*grown));
	if (grown == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	r->sitemaps = grown;
	copy = malloc(n + 1);
	if (copy == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	memcpy(copy, v, n);
	copy[n] = '\0';
	r->sitemaps[r->nsitemaps++] = copy; /* now owned by r */
out:
	return rc;
}

static robots_key robots_key_of(const char *k, size_t n)
{
	robots_key key = ROBOTS_KEY_UNKNOWN;
	size_t i;

	for (i = 0; i < TR_ARRAY_LEN(robots_keys) && key == ROBOTS_KEY_UNKNOWN; i++)
		if (robots_ieq(k, n, robots_keys[i].name, strlen(robots_keys[i].name)))
			key = robots_keys[i].key;
	return key;
}

/* Handle one line (s, n bytes, without its line end). sets[0] collects the
 * groups naming the crawler, sets[1] the "*" groups. Returns 0 or
 * TR_ENOMEM. */
static int robots_line(robots_parser *p, tr_robots *r, robots_set sets[2], const char *s, size_t n)
{
	int rc = 0;
	const char *hash, *colon, *k, *ke, *v, *ve;
	size_t tlen;
	int64_t ms;
	robots_key key;

	hash = memchr(s, '#', n);
	if (hash != NULL)
		n = (size_t)(hash - s);
	colon = memchr(s, ':', n);
	if (colon == NULL)
		goto out;
	for (k = s, ke = colon; k < ke && robots_is_space(*k); k++)
		;
	while (ke > k && robots_is_space(ke[-1]))
		ke--;
	for (v = colon + 1, ve = s + n; v < ve && robots_is_space(*v); v++)
		;
	while (ve > v && robots_is_space(ve[-1]))
		ve--;
	key = robots_key_of(k, (size_t)(ke - k));

	switch (key) {
	case ROBOTS_KEY_AGENT:
		/* RFC 9309 2.1: consecutive user-agent lines open one group. */
		if (!p->in_agents) {
			p->in_agents = true;
			p->to_own = false;
			p->to_star = false;
		}
		tlen = robots_token_len(v, (size_t)(ve - v));
		if (tlen == 1 && *v == '*') {
			p->to_star = true;
			sets[1].found = true;
		} else if (p->token_len > 0 && robots_ieq(v, tlen, p->token, p->token_len)) {
			p->to_own = true;
			sets[0].found = true;
		}
		break;
	case ROBOTS_KEY_ALLOW:
	case ROBOTS_KEY_DISALLOW:
		p->in_agents = false;
		if (p->to_own)
			rc = robots_set_add(&sets[0], key == ROBOTS_KEY_ALLOW, v, (size_t)(ve - v));
		if (rc == 0 && p->to_star)
			rc = robots_set_add(&sets[1], key == ROBOTS_KEY_ALLOW, v, (size_t)(ve - v));
		break;
	case ROBOTS_KEY_DELAY:
		p->in_agents = false;
		ms = robots_delay_ms(v, (size_t)(ve - v));
		if (ms >= 0 && p->to_own && sets[0].delay_ms < 0)
			sets[0].delay_ms = ms;
		if (ms >= 0 && p->to_star && sets[1].delay_ms < 0)
			sets[1].delay_ms = ms;
		break;
	case ROBOTS_KEY_SITEMAP:
		rc = robots_add_sitemap(r, v, (size_t)(ve - v));
		break;
	case ROBOTS_KEY_UNKNOWN:
		break;
	}
out:
	return rc;
}

/* Longest pattern first; on equal lengths allow first (RFC 9309 2.2.2). */
static int robots_rule_cmp(const void *a, const void *b)
{
	const robots_rule *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return (int)y->allow - (int)x->allow;
}

/* How many bytes of a body of len bytes to read: at most
 * TR_ROBOTS_MAX_BYTES, without the line that limit cuts. */
static size_t robots_usable_len(const char *body, size_t len)
{
	bool cut;

	if (len > TR_ROBOTS_MAX_BYTES) {
		tr_metrics_limit_hit("robots_size");
		cut = body[TR_ROBOTS_MAX_BYTES] != '\n' && body[TR_ROBOTS_MAX_BYTES] != '\r';
		len = TR_ROBOTS_MAX_BYTES;
		while (cut && len > 0 && body[len - 1] != '\n' && body[len - 1] != '\r')
			len--;
	}
	return len;
}

static tr_robots *robots_new(robots_mode mode)
{
	tr_robots *r = calloc(1, sizeof(*r));

	if (r != NULL) {
		r->mode = mode;
		r->set.delay_ms = -1;
	}
	return r;
}

int tr_robots_parse(tr_robots **out, const char *body, size_t len, const char *product_token)
{
	int rc = 0;
	tr_robots *r = NULL;
	robots_set sets[2];
	robots_parser p = {.token = product_token};
	const char *s, *e, *eol;
	size_t i;

	memset(sets, 0, sizeof(sets));
	sets[0].delay_ms = -1;
	sets[1].delay_ms = -1;
	if (out == NULL || (body == NULL && len > 0)) {
		rc = TR_EINVAL;
		goto out;
	}
	if (body == NULL)
		body = ""; /* no arithmetic on NULL */
	r = robots_new(ROBOTS_MODE_RULES);
	if (r == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	if (product_token != NULL)
		p.token_len = robots_token_len(product_token, strlen(product_token));
	if (p.token_len == 1 && product_token[0] == '*')
		p.token_len = 0;

	s = body;
	e = body + robots_usable_len(body, len);
	if (e - s >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	while (s < e && rc == 0) {
		for (eol = s; eol < e && *eol != '\n' && *eol != '\r'; eol++)
			;
		rc = robots_line(&p, r, sets, s, (size_t)(eol - s));
		s = eol;
		if (s < e && *s == '\r')
			s++;
		if (s < e && *s == '\n')
			s++; /* the LF alone, or the LF of a CRLF */
	}
	if (rc != 0)
		goto out;

	/* RFC 9309 2.2.1: the crawler's own groups, else the "*" ones. */
	i = sets[0].found ? 0 : 1;
	r->set = sets[i];
	memset(&sets[i], 0, sizeof(sets[i])); /* now owned by r */
	if (r->set.nrules > 1)
		qsort(r->set.rules, r->set.nrules, sizeof(*r->set.rules), robots_rule_cmp);
	*out = r;
	r = NULL;
out:
	robots_set_free(&sets[0]);
	robots_set_free(&sets[1]);
	tr_robots_free(r);
	return rc;
}

tr_robots *tr_robots_new_allow_all(void)
{
	return robots_new(ROBOTS_MODE_ALLOW_ALL);
}

tr_robots *tr_robots_new_disallow_all(void)
{
	return robots_new(ROBOTS_MODE_DISALLOW_ALL);
}

/* Find the '*'-free piece needle (m bytes, KMP table fail) in hay (n
 * bytes), leftmost. Returns true and sets *end to the offset just after the
 * occurrence; false when there is none. O(n + m). */
static bool robots_find(size_t *end, const char *hay, size_t n, const char *needle, size_t m,
			const uint16_t *fail)
{
	bool found = m == 0;
	size_t i, k = 0;

	*end = 0;
	for (i = 0; i < n && !found; i++) {
		while (k > 0 && hay[i] != needle[k])
			k = fail[k - 1];
		if (hay[i] == needle[k])
			k++;
		if (k == m) {
			found = true;
			*end = i + 1;
		}
	}
	return found;
}

/*
 * Whether the rule matches the normalized path (n bytes). The pattern is
 * pieces separated by '*': the first must start the path, the others are
 * found leftmost one after the other (the earliest end leaves the most room
 * for the rest, so greedy is exact), and an anchored last one must end the
 * path. Linear in n + pattern length: no backtracking at all.
 */
static bool robots_rule_matches(const robots_set *set, const robots_rule *rule, const char *path,
				size_t n)
{
	const char *pat = set->pat + rule->off, *star;
	const uint16_t *fail = set->fail + rule->off;
	size_t m = rule->plen, piece, pos, j, end;
	bool match = false;

	star = memchr(pat, '*', m);
	piece = star != NULL ? (size_t)(star - pat) : m;
	if (piece > n || memcmp(path, pat, piece) != 0)
		goto out;
	if (star == NULL) {
		match = !rule->anchored || piece == n;
		goto out;
	}
	pos = piece;
	j = piece + 1;
	for (;;) {
		star = memchr(pat + j, '*', m - j);
		piece = (star != NULL ? (size_t)(star - pat) : m) - j;
		if (star == NULL && rule->anchored) {
			match = n - pos >= piece && memcmp(path + n - piece, pat + j, piece) == 0;
			goto out;
		}
		if (!robots_find(&end, path + pos, n - pos, pat + j, piece, fail + j))
			goto out;
		if (star == NULL) {
			match = true;
			goto out;
		}
		pos += end;
		j += piece + 1;
	}
out:
	return match;
}

bool tr_robots_allowed(const tr_robots *r, const char *path)
{
	char stack[ROBOTS_PATH_STACK], *heap = NULL, *norm = stack;
	size_t n, nn, i;
	bool allowed = false;

	if (r == NULL)
		goto out;
	n = path != NULL ? strcspn(path, "#") : 0;
	if (n == 0) {
		path = "/";
		n = 1;
	}
	if (n > sizeof(stack) / 3) {
		heap = malloc(3 * n);
		if (heap == NULL)
			goto out;
		norm = heap;
	}
	nn = robots_norm(norm, path, n, false);
	/* RFC 9309 2.2.2: /robots.txt is implicitly allowed. */
	if (nn >= 11 && memcmp(norm, "/robots.txt", 11) == 0 && (nn == 11 || norm[11] == '?')) {
		allowed = true;
		goto out;
	}
	allowed = r->mode != ROBOTS_MODE_DISALLOW_ALL;
	if (r->mode != ROBOTS_MODE_RULES)
		goto out;
	/* Sorted longest first, allow first on ties: the first match decides. */
	for (i = 0; i < r->set.nrules; i++) {
		if (robots_rule_matches(&r->set, &r->set.rules[i], norm, nn)) {
			allowed = r->set.rules[i].allow;
			break;
		}
	}
out:
	free(heap);
	return allowed;
}

int64_t tr_robots_crawl_delay_ms(const tr_robots *r)
{
	return r != NULL ? r->set.delay_ms : -1;
}

size_t tr_robots_sitemaps(const tr_robots *r, const char *const **out)
{
	size_t n = r != NULL ? r->nsitemaps : 0;

	if (out != NULL)
		*out = n > 0 ? (const char *const *)r->sitemaps : NULL;
	return n;
}

void tr_robots_free(tr_robots *r)
{
	size_t i;

	if (r == NULL)
		return;
	robots_set_free(&r->set);
	for (i = 0; i < r->nsitemaps; i++)
		free(r->sitemaps[i]);
	free(r->sitemaps);
	free(r);
}
