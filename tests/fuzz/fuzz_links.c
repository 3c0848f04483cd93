/* fuzz_links.c - libFuzzer target: link extraction from arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "links.h"
#include "url.h"

/*
 * The whole input is the document. Its first byte also picks max_links and
 * the declared charset, so that one corpus exercises the cap and the
 * encodings; '<' (the usual first byte) picks max 1000 and no charset.
 */

#define FUZZ_PAGE "http://fuzz.example/dir/page.html?q=1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_charsets[] = {
    "UTF-8", "ISO-8859-1", "windows-1252", "UTF-16LE", "UTF-16BE", "Shift_JIS", "x-bogus", NULL,
};
static const size_t fuzz_max[] = {1000, 0, 3, 50};

static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_links: %s: [%s]\n", what, detail != NULL ? detail : "(null)");
	abort();
}

static void fuzz_check(const tr_links *l, size_t max_links)
{
	size_t i, j;
	char *again = NULL;

	if (l->count > max_links)
		fuzz_fail("more links than max_links", "");
	if (l->base == NULL || !tr_url_is_http(l->base))
		fuzz_fail("bad base", l->base);
	if (l->title != NULL && (l->title[0] == '\0' || strlen(l->title) > TR_LINKS_TITLE_MAX ||
				 l->title[0] == ' ' || l->title[strlen(l->title) - 1] == ' '))
		fuzz_fail("title empty, too long or not trimmed", l->title);
	if (l->canonical != NULL && !tr_url_is_http(l->canonical))
		fuzz_fail("bad canonical", l->canonical);
	for (i = 0; i < l->count; i++) {
		const char *u = l->items[i].url;
		if (tr_url_canonicalize(&again, u) != 0 || strcmp(again, u) != 0)
			fuzz_fail("link not canonical", u);
		free(again);
		again = NULL;
		for (j = 0; j < i; j++)
			if (strcmp(u, l->items[j].url) == 0)
				fuzz_fail("duplicate link", u);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool initialized;
	unsigned mode = size > 0 ? data[0] : 0;
	size_t max_links = fuzz_max[mode & 3];
	const char *charset = fuzz_charsets[(mode >> 2) & 7];
	tr_links l;
	int rc;

	if (!initialized) {
		tr_links_global_init();
		initialized = true;
	}
	rc = tr_links_extract_charset(&l, (const char *)data, size, FUZZ_PAGE, charset, max_links);
	if (rc == TR_ENOMEM)
		return 0;
	if (rc != 0)
		fuzz_fail("extraction failed", "");
	fuzz_check(&l, max_links);
	tr_links_free(&l);
	return 0;
}
