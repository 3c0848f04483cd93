/* fuzz_url.c - libFuzzer target: URL resolution, canonicalization and host keys on arbitrary bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

/*
 * The input is a reference resolved against a fixed base, a URL
 * canonicalized on its own, and a base for a fixed reference. When it holds
 * a NUL byte, the bytes before it are also used as the base for the bytes
 * after it. Every URL that comes back must be a canonical fixed point.
 */

#define FUZZ_BASE "http://Fuzz.Example:80/a/b/c.html?q=1#frag"
#define FUZZ_REF "../x/./%7Ey%2e%2e/z?k=v#f"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what, const char *url)
{
	fprintf(stderr, "fuzz_url: %s: [%s]\n", what, url != NULL ? url : "(null)");
	abort();
}

/* Properties every canonical URL has. */
static void fuzz_check_canonical(const char *url)
{
	char *again = NULL, key[TR_URL_MAX_LEN + 16];
	size_t i, len = strlen(url);
	int rc;

	if (len > TR_URL_MAX_LEN)
		fuzz_fail("longer than TR_URL_MAX_LEN", url);
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		fuzz_fail("not http(s)", url);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			fuzz_fail("character not allowed in a canonical URL", url);
	}
	rc = tr_url_canonicalize(&again, url);
	if (rc != 0 || strcmp(again, url) != 0)
		fuzz_fail("canonicalization is not idempotent", url);
	free(again);
	again = NULL;
	if (!tr_url_is_http(url))
		fuzz_fail("tr_url_is_http rejects a canonical URL", url);
	rc = tr_url_host_key(key, sizeof(key), url);
	if (rc != 0)
		fuzz_fail("tr_url_host_key rejects a canonical URL", url);
	{
		char fast[sizeof(key)];
		if (tr_url_host_key_canonical(fast, sizeof(fast), url) != 0 ||
		    strcmp(fast, key) != 0)
			fuzz_fail("tr_url_host_key_canonical differs from tr_url_host_key", url);
	}
	/* A fragment-only reference is the URL itself. */
	rc = tr_url_resolve(&again, url, "#x");
	if (rc != 0 || strcmp(again, url) != 0)
		fuzz_fail("\"#x\" does not resolve to the base", url);
	free(again);
	(void)tr_url_fingerprint(url, len);
}

static void fuzz_resolve(const char *base, const char *ref)
{
	char *out = NULL, *via = NULL;
	tr_url_base *b = NULL;
	int rc = tr_url_resolve(&out, base, ref), rc2;

	if (rc == 0)
		fuzz_check_canonical(out);
	else if (out != NULL)
		fuzz_fail("output written on failure", ref);
	/* The parsed-base API must agree with the one-shot one. */
	rc2 = tr_url_base_new(&b, base);
	if (rc2 == 0) {
		rc2 = tr_url_resolve_base(&via, b, ref);
		if (rc2 != rc || (rc == 0 && strcmp(out, via) != 0))
			fuzz_fail("tr_url_resolve_base disagrees with tr_url_resolve", ref);
		fuzz_check_canonical(tr_url_base_url(b));
	} else if (rc == 0) {
		fuzz_fail("base rejected but resolve succeeded", base);
	}
	tr_url_base_free(b);
	free(out);
	free(via);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, *out = NULL, key[64];
	size_t n;

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	fuzz_resolve(FUZZ_BASE, s);
	fuzz_resolve(s, FUZZ_REF);
	if (tr_url_canonicalize(&out, s) == 0)
		fuzz_check_canonical(out);
	free(out);
	(void)tr_url_host_key(key, sizeof(key), s);
	(void)tr_url_is_http(s);
	n = strlen(s);
	if (n < size)
		fuzz_resolve(s, s + n + 1);
	(void)tr_url_fingerprint(s, size);
	free(s);
	return 0;
}
