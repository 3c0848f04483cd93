/* test_url.c - replays tests/data/url/{cases,host_keys}.txt and pins fingerprints. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode the escapes \t \n \r \\ \xHH in place (a field cannot hold a real
 * TAB or newline). */
static void unescape(char *s)
{
	char *w = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] == 't') {
			*w++ = '\t';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'n') {
			*w++ = '\n';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'r') {
			*w++ = '\r';
			s += 2;
		} else if (s[0] == '\\' && s[1] == '\\') {
			*w++ = '\\';
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x' && hexval(s[2]) >= 0 && hexval(s[3]) >= 0) {
			*w++ = (char)(hexval(s[2]) * 16 + hexval(s[3]));
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

/* Split a line into n TAB-separated fields; false when the count differs. */
static bool split(char *line, char **fields, int n)
{
	int i;

	line[strcspn(line, "\r\n")] = '\0';
	for (i = 0; i < n; i++) {
		fields[i] = line;
		line = strchr(line, '\t');
		if (line == NULL)
			break;
		*line++ = '\0';
	}
	return i == n - 1 && line == NULL;
}

static FILE *open_data(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/url/%s", dir, name);
	f = fopen(path, "r");
	if (f == NULL) {
		printf("FAIL cannot open %s\n", path);
		failed++;
	}
	return f;
}

/* One "base<TAB>ref<TAB>expected" case. base "-" means canonicalize ref. */
static void run_case(int lineno, char *base, char *ref, const char *expected)
{
	char *got = NULL, *again = NULL, *via_base = NULL, what[64];
	int rc;
	tr_url_base *b = NULL;

	unescape(base);
	unescape(ref);
	snprintf(what, sizeof(what), "cases.txt:%d", lineno);
	if (strcmp(base, "-") == 0)
		rc = tr_url_canonicalize(&got, ref);
	else
		rc = tr_url_resolve(&got, base, ref);
	if (strcmp(expected, "ERROR") == 0) {
		check(rc == TR_EINVAL && got == NULL, what, "[%s] [%s]: want ERROR, got rc=%d %s",
		      base, ref, rc, got != NULL ? got : "");
		goto out;
	}
	check(rc == 0 && got != NULL && strcmp(got, expected) == 0, what,
	      "[%s] [%s]: want %s, got rc=%d %s", base, ref, expected, rc,
	      got != NULL ? got : "(null)");
	if (rc != 0)
		goto out;
	/* Canonical output is a fixed point. */
	rc = tr_url_canonicalize(&again, got);
	check(rc == 0 && strcmp(again, got) == 0, what, "not idempotent: %s -> rc=%d %s", got, rc,
	      again != NULL ? again : "(null)");
	check(tr_url_is_http(got), what, "canonical URL is not http per tr_url_is_http");
	{ /* the fast host key of the canonical form equals the parsed one */
		char k1[300] = "", k2[300] = "";
		int r1 = tr_url_host_key(k1, sizeof(k1), got);
		int r2 = tr_url_host_key_canonical(k2, sizeof(k2), got);
		check(r1 == r2 && strcmp(k1, k2) == 0, what,
		      "host key of %s: parsed rc=%d %s, canonical rc=%d %s", got, r1, k1, r2, k2);
	}
	/* The parsed-base API agrees with the one-shot one. */
	if (strcmp(base, "-") != 0) {
		rc = tr_url_base_new(&b, base);
		if (rc == 0)
			rc = tr_url_resolve_base(&via_base, b, ref);
		check(rc == 0 && strcmp(via_base, got) == 0, what, "tr_url_resolve_base: rc=%d %s",
		      rc, via_base != NULL ? via_base : "(null)");
	}
out:
	tr_url_base_free(b);
	free(got);
	free(again);
	free(via_base);
}

static void run_cases(const char *dir)
{
	FILE *f = open_data(dir, "cases.txt");
	char line[3 * TR_URL_MAX_LEN], *fields[3];
	int lineno = 0;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!split(line, fields, 3)) {
			check(false, "cases.txt", "malformed line");
			continue;
		}
		run_case(lineno, fields[0], fields[1], fields[2]);
	}
	fclose(f);
}

static void run_host_keys(const char *dir)
{
	FILE *f = open_data(dir, "host_keys.txt");
	char line[4096], *fields[2], key[300], what[64];
	int lineno = 0, rc;

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (!split(line, fields, 2)) {
			check(false, "host_keys.txt", "malformed line");
			continue;
		}
		unescape(fields[0]);
		snprintf(what, sizeof(what), "host_keys.txt:%d", lineno);
		strcpy(key, "untouched");
		rc = tr_url_host_key(key, sizeof(key), fields[0]);
		if (strcmp(fields[1], "ERROR") == 0) {
			check(rc == TR_EINVAL && strcmp(key, "untouched") == 0, what,
			      "%s: want ERROR, got rc=%d %s", fields[0], rc, key);
		} else {
			check(rc == 0 && strcmp(key, fields[1]) == 0, what,
			      "%s: want %s, got rc=%d %s", fields[0], fields[1], rc, key);
		}
	}
	fclose(f);
}

static void run_host_key_small_buffer(void)
{
	char key[8] = "same";
	int rc = tr_url_host_key(key, sizeof(key), "http://example.com/");

	check(rc == TR_ETOOBIG && strcmp(key, "same") == 0, "host_key small buffer",
	      "want TR_ETOOBIG and buffer untouched");
	/* "a.b:80" needs 7 bytes with the NUL. */
	rc = tr_url_host_key(key, 7, "http://a.b/");
	check(rc == 0 && strcmp(key, "a.b:80") == 0, "host_key exact buffer", "%s", key);
}

/* Fingerprints go into Redis: these values must never change. They were
 * computed by an independent implementation of FNV-1a 64 + splitmix64. */
static void run_fingerprints(void)
{
	static const struct {
		const char *url;
		uint64_t want;
	} fps[] = {
	    {"", UINT64_C(0xf52a15e9a9b5e89b)},
	    {"http://example.com/", UINT64_C(0x7193bf4c41ae0ad3)},
	    {"https://example.com/a?b=c", UINT64_C(0xf6297dd958631688)},
	};
	size_t i;

	for (i = 0; i < sizeof(fps) / sizeof(fps[0]); i++) {
		uint64_t got = tr_url_fingerprint(fps[i].url, strlen(fps[i].url));
		check(got == fps[i].want, "fingerprint",
		      "[%s]: want %016" PRIx64 ", got %016" PRIx64, fps[i].url, fps[i].want, got);
	}
	check(tr_url_fingerprint(NULL, 0) == tr_url_fingerprint("", 0), "fingerprint NULL",
	      "NULL with len 0 differs from empty");
	/* Only the first len bytes count. */
	check(tr_url_fingerprint("http://a/x", 8) == tr_url_fingerprint("http://a/y", 8),
	      "fingerprint len", "bytes past len changed the hash");
}

static void run_limits(void)
{
	size_t n = TR_URL_MAX_LEN + 1, i;
	char *big = malloc(n + 1), *got = NULL;
	int rc;

	if (big == NULL) {
		check(false, "limits", "malloc");
		return;
	}
	/* Exactly TR_URL_MAX_LEN is accepted... */
	memcpy(big, "http://a/", 9);
	for (i = 9; i < n - 1; i++)
		big[i] = 'x';
	big[n - 1] = '\0';
	rc = tr_url_canonicalize(&got, big);
	check(rc == 0 && got != NULL && strlen(got) == TR_URL_MAX_LEN, "limits max len",
	      "a URL of TR_URL_MAX_LEN bytes was not accepted");
	free(got);
	got = NULL;
	/* ...one more byte is not, as input or as base. */
	big[n - 1] = 'x';
	big[n] = '\0';
	rc = tr_url_canonicalize(&got, big);
	check(rc == TR_ETOOBIG && got == NULL, "limits canonicalize", "want TR_ETOOBIG");
	rc = tr_url_resolve(&got, "http://a/", big);
	check(rc == TR_ETOOBIG && got == NULL, "limits ref", "want TR_ETOOBIG");
	rc = tr_url_resolve(&got, big, "x");
	check(rc == TR_ETOOBIG && got == NULL, "limits base", "want TR_ETOOBIG");
	/* A short input that grows past the cap when encoded. */
	memcpy(big, "http://a/", 9);
	for (i = 9; i < 4000; i++)
		big[i] = '|';
	big[4000] = '\0';
	rc = tr_url_canonicalize(&got, big);
	check(rc == TR_ETOOBIG && got == NULL, "limits encoded", "want TR_ETOOBIG");
	free(big);
}

static void run_nulls(void)
{
	char *got = NULL;
	tr_url_base *b = NULL;

	check(tr_url_resolve(&got, NULL, "x") == TR_EINVAL && got == NULL, "NULL base", "failed");
	check(tr_url_resolve(&got, "http://a/", NULL) == TR_EINVAL && got == NULL, "NULL ref",
	      "failed");
	check(tr_url_canonicalize(&got, NULL) == TR_EINVAL && got == NULL, "NULL url", "failed");
	check(!tr_url_is_http(NULL), "is_http NULL", "failed");
	check(tr_url_base_new(&b, "mailto:a@b") == TR_EINVAL && b == NULL, "base mailto", "failed");
	check(tr_url_base_new(&b, "/relative") == TR_EINVAL && b == NULL, "base relative",
	      "failed");
	check(tr_url_base_new(&b, "HTTP://Example.COM:80/a/../b#f") == 0, "base new", "failed");
	if (b != NULL)
		check(strcmp(tr_url_base_url(b), "http://example.com/b") == 0, "base url", "%s",
		      tr_url_base_url(b));
	tr_url_base_free(b);
	tr_url_base_free(NULL);
}

/* Passwords never reach a message: the user-info password is masked,
 * whatever else the text is. */
static void run_redact(void)
{
	static const char *const cases[][2] = {
	    {"redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"},
	    {"redis://user:s3cret@h/1", "redis://user:***@h/1"},
	    {"redis://user:p@ss:w@rd@h:1/0", "redis://user:***@h:1/0"},
	    {"redis://user@h:1/0", "redis://user@h:1/0"},
	    {"redis://h:1/0?a=b:c@d", "redis://h:1/0?a=b:c@d"},
	    {"redis://h:notaport/x@y:z", "redis://h:notaport/x@y:z"},
	    {"http://a:b@h/p", "http://a:***@h/p"},
	    {"not a url :x@", "not a url :x@"},
	    {"", ""},
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tr_url_redact(out, sizeof(out), cases[i][0]);
		check(strcmp(out, cases[i][1]) == 0, "redact", "%s -> %s (want %s)", cases[i][0],
		      out, cases[i][1]);
	}
	tr_url_redact(out, sizeof(out), NULL);
	check(out[0] == '\0', "redact NULL", "'%s'", out);
	tr_url_redact(out, 12, "redis://:secretsecret@h/0");
	check(strcmp(out, "redis://:**") == 0, "redact truncated", "'%s'", out);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	run_cases(dir);
	run_host_keys(dir);
	run_host_key_small_buffer();
	run_fingerprints();
	run_limits();
	run_nulls();
	run_redact();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
