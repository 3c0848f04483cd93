/* test_robots.c - replays tests/data/robots/NAME.{txt,expected} and edge cases of robots.h. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robots.h"

#define MAX_SITEMAPS 256
#define FIXTURE_BUDGET_MS 2000.0 /* one fixture, parse and queries, even with sanitizers */

static int passed, failed;

static void check(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(bool ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf != NULL) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Short form of a path for messages (the pathological ones are long). */
static const char *brief(const char *s, char *buf, size_t size)
{
	if (strlen(s) < size)
		return s;
	snprintf(buf, size, "%.*s...(%zu bytes)", (int)(size - 24), s, strlen(s));
	return buf;
}

/* One "agent:" section of a .expected file: its expected sitemap list. */
typedef struct section {
	char what[256];
	const char *sitemaps[MAX_SITEMAPS];
	size_t nsitemaps;
} section;

static void section_end(section *sec, const tr_robots *r)
{
	const char *const *got = NULL;
	size_t n = tr_robots_sitemaps(r, &got), i;
	bool same = n == sec->nsitemaps;

	if (r == NULL || sec->nsitemaps == 0)
		return;
	for (i = 0; same && i < n; i++)
		same = strcmp(got[i], sec->sitemaps[i]) == 0;
	check(same, sec->what, "sitemaps differ");
	if (!same) {
		for (i = 0; i < sec->nsitemaps; i++)
			printf("  -%s\n", sec->sitemaps[i]);
		for (i = 0; i < n; i++)
			printf("  +%s\n", got[i]);
	}
	sec->nsitemaps = 0;
}

/*
 * NAME.expected: blank lines and '#' comments ignored; "agent: TOKEN"
 * parses NAME.txt for TOKEN (before the first one: "trawler"); then
 * "allow: PATH" / "deny: PATH" (verdicts), "delay: MS" (-1: none),
 * "sitemap: URL" (the exact list, in order, when any is given) and
 * "sitemaps: N" (their number) check that parse.
 */
static void run_fixture(const char *dir, const char *name)
{
	char path[4096], buf[128], *txt = NULL, *expected = NULL, *line, *save = NULL;
	size_t txt_len = 0, exp_len = 0;
	tr_robots *r = NULL;
	section sec;
	double t0 = now_ms(), spent;
	int rc;

	memset(&sec, 0, sizeof(sec));
	snprintf(path, sizeof(path), "%s/robots/%s.txt", dir, name);
	txt = read_file(path, &txt_len);
	snprintf(path, sizeof(path), "%s/robots/%s.expected", dir, name);
	expected = read_file(path, &exp_len);
	if (txt == NULL || expected == NULL) {
		check(false, name, "cannot read %s.txt or %s.expected", name, name);
		goto out;
	}
	for (line = strtok_r(expected, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (starts_with(line, "agent:") || r == NULL) {
			const char *token = starts_with(line, "agent:") ? line + 6 : "trawler";

			while (*token == ' ')
				token++;
			section_end(&sec, r);
			tr_robots_free(r);
			r = NULL;
			snprintf(sec.what, sizeof(sec.what), "%s [agent %s]", name, token);
			rc = tr_robots_parse(&r, txt, txt_len, token);
			if (rc != 0) {
				check(false, sec.what, "tr_robots_parse returned %d", rc);
				goto out;
			}
			if (starts_with(line, "agent:"))
				continue;
		}
		if (starts_with(line, "allow: ")) {
			check(tr_robots_allowed(r, line + 7), sec.what, "want allow: %s",
			      brief(line + 7, buf, sizeof(buf)));
		} else if (starts_with(line, "deny: ")) {
			check(!tr_robots_allowed(r, line + 6), sec.what, "want deny: %s",
			      brief(line + 6, buf, sizeof(buf)));
		} else if (starts_with(line, "delay: ")) {
			long long want = strtoll(line + 7, NULL, 10);
			long long got = (long long)tr_robots_crawl_delay_ms(r);
			check(got == want, sec.what, "delay %lld, want %lld", got, want);
		} else if (starts_with(line, "sitemap: ")) {
			if (sec.nsitemaps < MAX_SITEMAPS)
				sec.sitemaps[sec.nsitemaps++] = line + 9;
		} else if (starts_with(line, "sitemaps: ")) {
			size_t want = strtoul(line + 10, NULL, 10);
			size_t got = tr_robots_sitemaps(r, NULL);
			check(got == want, sec.what, "%zu sitemaps, want %zu", got, want);
		} else {
			check(false, sec.what, "bad line in %s.expected: %s", name,
			      brief(line, buf, sizeof(buf)));
		}
	}
	section_end(&sec, r);
	spent = now_ms() - t0;
	check(spent < FIXTURE_BUDGET_MS, name, "took %.0f ms", spent);
out:
	tr_robots_free(r);
	free(txt);
	free(expected);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_fixtures(const char *dir)
{
	char path[4096], *names[1024];
	size_t n = 0, i, len;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/robots", dir);
	d = opendir(path);
	if (d == NULL) {
		check(false, "fixtures", "cannot open %s", path);
		return;
	}
	while ((e = readdir(d)) != NULL && n < TR_ARRAY_LEN(names)) {
		len = strlen(e->d_name);
		if (len > 4 && strcmp(e->d_name + len - 4, ".txt") == 0)
			names[n++] = strndup(e->d_name, len - 4);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	check(n >= 15, "fixtures", "only %zu fixtures", n);
	for (i = 0; i < n; i++) {
		if (names[i] != NULL)
			run_fixture(dir, names[i]);
		free(names[i]);
	}
}

static tr_robots *parse(const char *what, const char *body, size_t len, const char *token)
{
	tr_robots *r = NULL;
	int rc = tr_robots_parse(&r, body, len, token);

	check(rc == 0 && r != NULL, what, "tr_robots_parse returned %d", rc);
	return r;
}

static void run_contract(void)
{
	static char sentinel;
	tr_robots *r = (tr_robots *)(void *)&sentinel, *untouched = r;
	const char *const *maps = (const char *const *)(void *)&sentinel;
	const char *body;
	int rc;

	rc = tr_robots_parse(NULL, "", 0, "trawler");
	check(rc == TR_EINVAL, "NULL out", "rc=%d", rc);
	rc = tr_robots_parse(&r, NULL, 3, "trawler");
	check(rc == TR_EINVAL && r == untouched, "NULL body", "rc=%d, out touched?", rc);

	r = parse("NULL body, len 0", NULL, 0, NULL);
	check(tr_robots_allowed(r, "/x") && tr_robots_crawl_delay_ms(r) == -1 &&
		  tr_robots_sitemaps(r, &maps) == 0 && maps == NULL,
	      "empty file", "not allow-all");
	tr_robots_free(r);

	r = tr_robots_new_allow_all();
	check(r != NULL && tr_robots_allowed(r, "/") && tr_robots_allowed(r, "/a?b") &&
		  tr_robots_crawl_delay_ms(r) == -1 && tr_robots_sitemaps(r, NULL) == 0,
	      "allow all", "wrong answers");
	tr_robots_free(r);
	r = tr_robots_new_disallow_all();
	check(r != NULL && !tr_robots_allowed(r, "/") && !tr_robots_allowed(r, "/a") &&
		  tr_robots_allowed(r, "/robots.txt") && tr_robots_allowed(r, "/robots.txt?x") &&
		  !tr_robots_allowed(r, "/robots.txt.bak") && tr_robots_crawl_delay_ms(r) == -1,
	      "disallow all", "wrong answers");
	tr_robots_free(r);

	check(!tr_robots_allowed(NULL, "/"), "NULL handle", "allowed");
	check(tr_robots_crawl_delay_ms(NULL) == -1 && tr_robots_sitemaps(NULL, NULL) == 0,
	      "NULL handle", "delay or sitemaps");
	tr_robots_free(NULL);

	/* NULL, empty and fragment paths; the token given with a version. */
	body = "User-agent: trawler\nDisallow: /$\nDisallow: /a#b\n";
	r = parse("paths", body, strlen(body), "Trawler/2.0 (+http://x)");
	check(!tr_robots_allowed(r, NULL) && !tr_robots_allowed(r, "") &&
		  !tr_robots_allowed(r, "/#frag") && !tr_robots_allowed(r, "/a#x") &&
		  tr_robots_allowed(r, "/b#/a"),
	      "paths", "wrong answers");
	tr_robots_free(r);
}

/* A body of `rules` "Disallow: /rN" lines (N from 0) then `tail`. */
static char *many_rules(size_t rules, const char *tail, size_t *len)
{
	size_t cap = 32 + rules * 24 + strlen(tail), n = 0, i;
	char *s = malloc(cap);

	if (s == NULL)
		return NULL;
	n += (size_t)snprintf(s + n, cap - n, "User-agent: *\n");
	for (i = 0; i < rules; i++)
		n += (size_t)snprintf(s + n, cap - n, "Disallow: /r%zu$\n", i);
	n += (size_t)snprintf(s + n, cap - n, "%s", tail);
	*len = n;
	return s;
}

static void run_caps(void)
{
	char *body, *line = NULL;
	size_t len = 0, n;
	tr_robots *r;

	/* TR_ROBOTS_MAX_RULES rules are kept, the next one is not. */
	body = many_rules(TR_ROBOTS_MAX_RULES, "Disallow: /last\n", &len);
	if (body != NULL) {
		r = parse("rule cap", body, len, "trawler");
		check(!tr_robots_allowed(r, "/r0") && !tr_robots_allowed(r, "/r9999") &&
			  tr_robots_allowed(r, "/r10000") && tr_robots_allowed(r, "/last"),
		      "rule cap", "wrong answers");
		tr_robots_free(r);
	}
	free(body);

	/* Patterns of TR_ROBOTS_MAX_PATTERN bytes count, longer ones do not. */
	n = TR_ROBOTS_MAX_PATTERN + 128;
	line = malloc(2 * n);
	if (line != NULL) {
		memset(line, 0, 2 * n);
		memcpy(line, "User-agent: *\nDisallow: /", 25);
		memset(line + 25, 'x', TR_ROBOTS_MAX_PATTERN - 1);
		strcat(line, "\nDisallow: /y");
		memset(line + strlen(line), 'y', TR_ROBOTS_MAX_PATTERN - 1);
		r = parse("pattern cap", line, strlen(line), "trawler");
		memmove(line, line + 24, TR_ROBOTS_MAX_PATTERN + 1);
		line[TR_ROBOTS_MAX_PATTERN] = '\0';
		check(!tr_robots_allowed(r, line), "pattern cap", "2048-byte rule ignored");
		memset(line + 1, 'y', TR_ROBOTS_MAX_PATTERN);
		line[TR_ROBOTS_MAX_PATTERN + 1] = '\0';
		check(tr_robots_allowed(r, line), "pattern cap", "2049-byte rule kept");
		tr_robots_free(r);
	}
	free(line);
}

/* The TR_ROBOTS_MAX_BYTES limit at and around line ends. */
static void run_size_limit(void)
{
	size_t max = TR_ROBOTS_MAX_BYTES, n;
	char *body = malloc(max + 64);
	const char *last = "Disallow: /last";
	tr_robots *r;

	if (body == NULL)
		return;
	n = strlen(last);
	memset(body, '#', max + 64);
	memcpy(body, "User-agent: *\n", 14);
	/* The last rule ends exactly at the limit, the body stops there. */
	body[max - n - 1] = '\n';
	memcpy(body + max - n, last, n);
	r = parse("limit, no newline", body, max, "trawler");
	check(!tr_robots_allowed(r, "/last"), "limit, no newline", "last line dropped");
	tr_robots_free(r);
	/* Same, with a longer body whose next byte ends the line. */
	body[max] = '\n';
	r = parse("limit, newline after", body, max + 10, "trawler");
	check(!tr_robots_allowed(r, "/last"), "limit, newline after", "last line dropped");
	tr_robots_free(r);
	/* The limit cuts the line: it is dropped. */
	body[max] = 'x';
	r = parse("limit, cut", body, max + 10, "trawler");
	check(tr_robots_allowed(r, "/last"), "limit, cut", "cut line used");
	tr_robots_free(r);
	/* A CR ends the line at the limit. */
	body[max - 1] = '\r';
	body[max] = '\n';
	body[max - n - 2] = '\n';
	memcpy(body + max - 1 - n, last, n);
	r = parse("limit, CRLF across", body, max + 10, "trawler");
	check(!tr_robots_allowed(r, "/last"), "limit, CRLF across", "last line dropped");
	tr_robots_free(r);
	free(body);
}

/* NUL bytes and other junk in keys, values and agent names. */
static void run_junk(void)
{
	static const char body[] = "User-agent: *\nDisallow: /a\0b\nDis\0allow: /c\n"
				   "Disallow: /\xff\xfe\nUser-agent: tr\0awler\nDisallow: /\n";
	tr_robots *r = parse("NUL bytes", body, sizeof(body) - 1, "trawler");

	check(!tr_robots_allowed(r, "/a%00b") && tr_robots_allowed(r, "/a") &&
		  tr_robots_allowed(r, "/c") && !tr_robots_allowed(r, "/%FF%FE") &&
		  !tr_robots_allowed(r, "/\xff\xfe/x") && tr_robots_allowed(r, "/"),
	      "NUL bytes", "wrong answers");
	tr_robots_free(r);
}

/* Reference matcher: dynamic programming over a pattern of '/', letters,
 * '*' and a final '$' against a path (no percent signs). */
static bool ref_match(const char *pat, const char *path)
{
	size_t m = strlen(pat), n = strlen(path), i, j;
	bool anchored = m > 0 && pat[m - 1] == '$', ok = false;
	bool *row = NULL, *next = NULL;

	if (anchored)
		m--;
	row = calloc(n + 1, sizeof(*row));
	next = calloc(n + 1, sizeof(*next));
	if (row == NULL || next == NULL)
		goto out;
	/* row[j]: pat[0..i) matches path[0..j) exactly. */
	row[0] = true;
	for (i = 0; i < m; i++) {
		for (j = 0; j <= n; j++) {
			if (pat[i] == '*')
				next[j] = row[j] || (j > 0 && next[j - 1]);
			else
				next[j] = j > 0 && row[j - 1] && path[j - 1] == pat[i];
		}
		memcpy(row, next, (n + 1) * sizeof(*row));
	}
	for (j = 0; j <= n && !ok; j++)
		ok = row[j] && (!anchored || j == n);
out:
	free(row);
	free(next);
	return ok;
}

/* Random rule sets against random paths, compared with the reference. */
static void run_differential(void)
{
	static const char pat_chars[] = "/ab*$";
	static const char path_chars[] = "/ab";
	unsigned seed = 42;
	char body[512], pats[4][16], path[24], what[128];
	bool allows[4];
	size_t round, k, i, nrules, len, n, best;
	int mismatches = 0;
	bool want, got, best_allow;
	tr_robots *r;

#define RND() (seed = seed * 1103515245u + 12345u, (seed >> 16) & 0x7fff)
	for (round = 0; round < 3000; round++) {
		nrules = 1 + RND() % 4;
		n = (size_t)snprintf(body, sizeof(body), "User-agent: *\n");
		for (k = 0; k < nrules; k++) {
			len = 1 + RND() % 10;
			pats[k][0] = RND() % 4 == 0 ? '*' : '/';
			for (i = 1; i < len; i++)
				pats[k][i] = pat_chars[RND() % 4];
			if (RND() % 3 == 0)
				pats[k][len++] = '$';
			pats[k][len] = '\0';
			allows[k] = RND() % 2 == 0;
			n += (size_t)snprintf(body + n, sizeof(body) - n, "%s: %s\n",
					      allows[k] ? "Allow" : "Disallow", pats[k]);
		}
		r = parse("differential", body, n, "trawler");
		for (k = 0; k < 8 && r != NULL; k++) {
			len = 1 + RND() % 12;
			path[0] = '/';
			for (i = 1; i < len; i++)
				path[i] = path_chars[RND() % 3];
			path[len] = '\0';
			want = true;
			best = 0;
			best_allow = true;
			for (i = 0; i < nrules; i++) {
				size_t plen = strlen(pats[i]);
				if (!ref_match(pats[i], path))
					continue;
				if (plen > best || (plen == best && allows[i])) {
					best_allow = plen > best ? allows[i] : true;
					best = plen;
				}
			}
			if (best > 0)
				want = best_allow;
			if (strcmp(path, "/robots.txt") == 0)
				want = true;
			got = tr_robots_allowed(r, path);
			if (got != want && mismatches++ < 5) {
				snprintf(what, sizeof(what), "differential %s", path);
				check(false, what, "got %d want %d for:\n%s", got, want, body);
			}
		}
		tr_robots_free(r);
	}
#undef RND
	check(mismatches == 0, "differential", "%d mismatches", mismatches);
}

/* Many pathological rules against a long path: linear, not exponential. */
static void run_hostile(void)
{
	size_t rules = TR_ROBOTS_MAX_RULES, pathlen = 8000, cap, n = 0, i;
	char *body, *path = malloc(pathlen + 2);
	tr_robots *r = NULL;
	double t0, spent;
	bool ok;

	cap = 32 + rules * 64;
	body = malloc(cap);
	if (body == NULL || path == NULL)
		goto out;
	n += (size_t)snprintf(body + n, cap - n, "User-agent: *\n");
	for (i = 0; i < rules; i++)
		n += (size_t)snprintf(body + n, cap - n, "Disallow: /*a*a*a*a*a*a*a*a*a*b%zu\n", i);
	path[0] = '/';
	memset(path + 1, 'a', pathlen);
	path[pathlen + 1] = '\0';
	r = parse("hostile", body, n, "trawler");
	t0 = now_ms();
	ok = tr_robots_allowed(r, path);
	spent = now_ms() - t0;
	check(ok, "hostile", "long path of a's disallowed");
	check(spent < 10000.0, "hostile", "one query took %.0f ms", spent);
	printf("hostile: %zu rules x %zu-byte path: %.1f ms\n", rules, pathlen + 1, spent);
out:
	tr_robots_free(r);
	free(body);
	free(path);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	run_fixtures(dir);
	run_contract();
	run_caps();
	run_size_limit();
	run_junk();
	run_differential();
	run_hostile();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
