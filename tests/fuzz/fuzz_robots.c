/* fuzz_robots.c - libFuzzer target: robots.txt parsing and matching on arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "robots.h"

/*
 * Two modes, chosen by the first byte.
 *
 * 0xFF: a structured rule set checked against a reference matcher. The rest
 * is chunks separated by NUL bytes; a chunk whose first byte is even is a
 * rule (allow when bit 1 is set) whose pattern maps the other bytes onto
 * "/ab*$", an odd one a path mapping them onto "/ab*" after a leading '/'.
 * The verdict for every path must be the longest-match verdict computed by
 * brute force.
 *
 * Anything else: the whole input is a robots.txt body, parsed for
 * "trawler" and for no product token, then queried with fixed paths and
 * with paths made from the input's values. Checked: nothing crashes,
 * /robots.txt is always allowed, the delay and sitemaps keep their bounds,
 * a fragment or percent-encoding unreserved bytes never changes a verdict,
 * a leading BOM changes nothing.
 */

#define FUZZ_MAX_PATHS 64
#define FUZZ_PATH_MAX 512
#define FUZZ_REF_RULES 8
#define FUZZ_REF_LEN 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_robots: %s: [%s]\n", what, detail != NULL ? detail : "(null)");
	abort();
}

/* Reference matcher by dynamic programming: does pat ('/', 'a', 'b', '*',
 * a final '$' anchors, any other '$' is literal) match a prefix of path (all
 * of it when anchored)? m <= FUZZ_REF_LEN, n <= FUZZ_REF_LEN + 1. */
static bool fuzz_ref_match(const char *pat, size_t m, const char *path, size_t n)
{
	bool row[FUZZ_REF_LEN + 2], next[FUZZ_REF_LEN + 2], anchored = m > 0 && pat[m - 1] == '$';
	bool ok = false;
	size_t i, j;

	if (anchored)
		m--;
	/* row[j]: pat[0..i) matches path[0..j) exactly. */
	for (j = 0; j <= n; j++)
		row[j] = j == 0;
	for (i = 0; i < m; i++) {
		for (j = 0; j <= n; j++) {
			if (pat[i] == '*')
				next[j] = row[j] || (j > 0 && next[j - 1]);
			else
				next[j] = j > 0 && row[j - 1] && path[j - 1] == pat[i];
		}
		memcpy(row, next, sizeof(row));
	}
	for (j = 0; j <= n && !ok; j++)
		ok = row[j] && (!anchored || j == n);
	return ok;
}

static void fuzz_reference(const uint8_t *data, size_t size)
{
	char pats[FUZZ_REF_RULES][FUZZ_REF_LEN + 1], path[FUZZ_REF_LEN + 2];
	bool allows[FUZZ_REF_RULES];
	char body[FUZZ_REF_RULES * (FUZZ_REF_LEN + 16) + 32];
	size_t nrules = 0, npaths, n, i, j, len, best, start, end;
	bool want, best_allow;
	tr_robots *r = NULL;

	/* Rules first: collect them all, then check the paths. */
	for (start = 0; start < size && nrules < FUZZ_REF_RULES; start = end + 1) {
		for (end = start; end < size && data[end] != 0; end++)
			;
		if (end == start || (data[start] & 1) != 0)
			continue;
		len = end - start - 1 < FUZZ_REF_LEN ? end - start - 1 : FUZZ_REF_LEN;
		for (i = 0; i < len; i++)
			pats[nrules][i] = "/ab*$"[data[start + 1 + i] % 5];
		pats[nrules][len] = '\0';
		allows[nrules] = (data[start] & 2) != 0;
		if (len > 0)
			nrules++;
	}
	n = (size_t)snprintf(body, sizeof(body), "User-agent: *\n");
	for (i = 0; i < nrules; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s: %s\n",
				      allows[i] ? "Allow" : "Disallow", pats[i]);
	if (tr_robots_parse(&r, body, n, "trawler") != 0)
		return;
	for (start = 0, npaths = 0; start < size && npaths < FUZZ_MAX_PATHS; start = end + 1) {
		for (end = start; end < size && data[end] != 0; end++)
			;
		if (end == start || (data[start] & 1) == 0)
			continue;
		npaths++;
		len = end - start - 1 < FUZZ_REF_LEN ? end - start - 1 : FUZZ_REF_LEN;
		path[0] = '/';
		for (i = 0; i < len; i++)
			path[i + 1] = "/ab*"[data[start + 1 + i] % 4];
		path[len + 1] = '\0';
		best = 0;
		best_allow = true;
		for (j = 0; j < nrules; j++) {
			size_t plen = strlen(pats[j]);
			if (!fuzz_ref_match(pats[j], plen, path, len + 1))
				continue;
			if (plen > best || (plen == best && allows[j])) {
				best_allow = plen > best ? allows[j] : true;
				best = plen;
			}
		}
		want = best == 0 || best_allow;
		if (tr_robots_allowed(r, path) != want) {
			fprintf(stderr, "robots.txt:\n%s", body);
			fuzz_fail(want ? "disallowed, reference allows"
				       : "allowed, reference denies",
				  path);
		}
	}
	tr_robots_free(r);
}

static bool fuzz_is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Verdict invariants for one path (NUL-terminated, at most FUZZ_PATH_MAX). */
static void fuzz_path(const tr_robots *r, const char *path)
{
	char alt[3 * FUZZ_PATH_MAX + 16];
	bool v = tr_robots_allowed(r, path);
	size_t i, n = 0;

	if (tr_robots_allowed(r, path) != v)
		fuzz_fail("verdict not deterministic", path);
	if (strchr(path, '#') == NULL) {
		snprintf(alt, sizeof(alt), "%s#frag", path);
		if (tr_robots_allowed(r, alt) != v)
			fuzz_fail("a fragment changed the verdict", path);
	}
	/* Percent-encoding unreserved bytes changes nothing (when no '%' can
	 * combine with the new bytes). */
	if (strchr(path, '%') == NULL && strchr(path, '#') == NULL) {
		for (i = 0; path[i] != '\0'; i++) {
			unsigned char c = (unsigned char)path[i];
			if (fuzz_is_unreserved(c) && (i % 2) == 0)
				n += (size_t)snprintf(alt + n, sizeof(alt) - n, "%%%02x", c);
			else
				alt[n++] = (char)c;
		}
		alt[n] = '\0';
		if (tr_robots_allowed(r, alt) != v)
			fuzz_fail("percent-encoding unreserved bytes changed the verdict", path);
	}
}

/* Paths made from the input: each line's value after ':', and raw chunks. */
static size_t fuzz_make_paths(char paths[][FUZZ_PATH_MAX + 1], const uint8_t *data, size_t size)
{
	size_t count = 0, start, end, v, n;

	for (start = 0; start < size && count < FUZZ_MAX_PATHS; start = end + 1) {
		for (end = start; end < size && data[end] != '\n' && data[end] != '\r'; end++)
			;
		for (v = start; v < end && data[v] != ':'; v++)
			;
		v = v < end ? v + 1 : start;
		while (v < end && (data[v] == ' ' || data[v] == '\t'))
			v++;
		n = 0;
		if (v == end || data[v] != '/')
			paths[count][n++] = '/';
		for (; v < end && n < FUZZ_PATH_MAX; v++) {
			char c = (char)data[v];
			if (c == '\0' || c == '#')
				break;
			/* '*' and '$' as written are wildcard and anchor: read them
			 * as bytes a path would have. */
			paths[count][n++] = c == '*' ? 'x' : c == '$' ? '-' : c;
		}
		paths[count][n] = '\0';
		count++;
	}
	return count;
}

static void fuzz_check(const tr_robots *r, const uint8_t *data, size_t size,
		       char paths[][FUZZ_PATH_MAX + 1], size_t npaths)
{
	static const char *const fixed[] = {"/",     "/robots.txt",   "/a", "/a/b?c=d", "/%7Ea",
					    "/x*y$", "/\xe3\x83\x84", ""};
	const char *const *maps = NULL;
	size_t i, j, nmaps, len;
	int64_t delay;

	if (!tr_robots_allowed(r, "/robots.txt") || !tr_robots_allowed(r, "/robots.txt?x=1"))
		fuzz_fail("/robots.txt disallowed", NULL);
	delay = tr_robots_crawl_delay_ms(r);
	if (delay < -1 || delay > TR_ROBOTS_MAX_DELAY_MS)
		fuzz_fail("crawl-delay out of bounds", NULL);
	nmaps = tr_robots_sitemaps(r, &maps);
	if (nmaps > TR_ROBOTS_MAX_SITEMAPS || (nmaps > 0) != (maps != NULL))
		fuzz_fail("sitemap count", NULL);
	for (i = 0; i < nmaps; i++) {
		len = strlen(maps[i]);
		if (len > TR_ROBOTS_MAX_SITEMAP_LEN ||
		    !((len > 7 && strncasecmp(maps[i], "http://", 7) == 0) ||
		      (len > 8 && strncasecmp(maps[i], "https://", 8) == 0)))
			fuzz_fail("bad sitemap", maps[i]);
		if (memmem(data, size, maps[i], len) == NULL)
			fuzz_fail("sitemap not in the input", maps[i]);
		for (j = 0; j < i; j++)
			if (strcmp(maps[i], maps[j]) == 0)
				fuzz_fail("duplicate sitemap", maps[i]);
	}
	for (i = 0; i < TR_ARRAY_LEN(fixed); i++)
		fuzz_path(r, fixed[i]);
	(void)tr_robots_allowed(r, NULL);
	for (i = 0; i < npaths; i++)
		fuzz_path(r, paths[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char paths[FUZZ_MAX_PATHS][FUZZ_PATH_MAX + 1];
	tr_robots *r = NULL, *bom = NULL, *any = NULL;
	uint8_t *with_bom = NULL;
	size_t npaths, i;

	if (size > 0 && data[0] == 0xFF) {
		fuzz_reference(data + 1, size - 1);
		return 0;
	}
	npaths = fuzz_make_paths(paths, data, size);
	if (tr_robots_parse(&r, (const char *)data, size, "trawler") != 0)
		goto out;
	fuzz_check(r, data, size, paths, npaths);
	if (tr_robots_parse(&any, (const char *)data, size, NULL) == 0)
		fuzz_check(any, data, size, paths, npaths);

	/* A leading BOM is skipped: same verdicts and delay. */
	if (size + 3 <= TR_ROBOTS_MAX_BYTES &&
	    !(size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)) {
		with_bom = malloc(size + 3);
		if (with_bom == NULL)
			goto out;
		memcpy(with_bom, "\xef\xbb\xbf", 3);
		if (size > 0)
			memcpy(with_bom + 3, data, size);
		if (tr_robots_parse(&bom, (const char *)with_bom, size + 3, "trawler") != 0)
			goto out;
		if (tr_robots_crawl_delay_ms(bom) != tr_robots_crawl_delay_ms(r) ||
		    tr_robots_sitemaps(bom, NULL) != tr_robots_sitemaps(r, NULL))
			fuzz_fail("a BOM changed the delay or sitemaps", NULL);
		for (i = 0; i < npaths; i++)
			if (tr_robots_allowed(bom, paths[i]) != tr_robots_allowed(r, paths[i]))
				fuzz_fail("a BOM changed a verdict", paths[i]);
	}
out:
	tr_robots_free(r);
	tr_robots_free(any);
	tr_robots_free(bom);
	free(with_bom);
	return 0;
}
