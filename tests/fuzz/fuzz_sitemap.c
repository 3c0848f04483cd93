/* fuzz_sitemap.c - libFuzzer target: sitemap parsing (XML, gzip) on arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sitemap.h"

/*
 * The input is a sitemap body, parsed twice: with generous caps and with
 * tight ones (3 locs, 4 KiB inflated). Checked: nothing crashes or leaks;
 * a non-sitemap never calls back; every loc is non-empty, has no NUL and
 * no surrounding whitespace; the loc cap holds and cutting at it sets the
 * truncated flag; the tight parse yields a prefix of the generous one
 * (same kind when the root element was read).
 */

#define FUZZ_MAX_LOCS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
	size_t n;
	char *loc[FUZZ_MAX_LOCS];
} seen;

static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_sitemap: %s: [%s]\n", what, detail != NULL ? detail : "(null)");
	abort();
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void on_loc(const char *loc, void *payload)
{
	seen *s = payload;
	size_t n = strlen(loc);
	if (!n || space(loc[0]) || space(loc[n - 1]))
		fuzz_fail("loc empty or not trimmed", loc);
	if (s->n < FUZZ_MAX_LOCS)
		s->loc[s->n] = strdup(loc);
	s->n++;
}

static void clear(seen *s)
{
	for (size_t i = 0; i < s->n && i < FUZZ_MAX_LOCS; i++)
		free(s->loc[i]);
	memset(s, 0, sizeof(*s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	seen big, small;
	bool cut_big = false, cut_small = false;
	memset(&big, 0, sizeof(big));
	memset(&small, 0, sizeof(small));
	int kb = tr_sitemap_parse(data, size, 1 << 20, 100000, on_loc, &big, &cut_big);
	int ks = tr_sitemap_parse(data, size, 4096, 3, on_loc, &small, &cut_small);
	if (kb < 0 || ks < 0)
		goto out; /* out of memory */
	if (kb == TR_SITEMAP_NONE && big.n)
		fuzz_fail("locs from a non-sitemap", NULL);
	if (small.n > 3)
		fuzz_fail("loc cap exceeded", NULL);
	if (ks != TR_SITEMAP_NONE && big.n > 3 && !cut_small)
		fuzz_fail("cut at the loc cap without the truncated flag", NULL);
	if (size <= 4096 && ks != kb)
		fuzz_fail("kind depends on the caps", NULL);
	for (size_t i = 0; size <= 4096 && i < small.n && i < big.n && i < FUZZ_MAX_LOCS; i++)
		if (strcmp(small.loc[i], big.loc[i]) != 0)
			fuzz_fail("tight parse is not a prefix", small.loc[i]);
out:
	clear(&big);
	clear(&small);
	return 0;
}
