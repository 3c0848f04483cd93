/* wordcount.c - an example trawler-consumer plug-in: counts the words in the
 * text of HTML pages and adds the fields `words` and `h1` (number of <h1>
 * elements). It uses nothing but handler.h, the whole plug-in contract.
 *
 * The rule, deliberately simple so a test can compute the same count
 * independently: scanning the body left to right, skip comments
 * (<!-- ... -->), tags (`<` then a letter, `/`, `!` or `?`, up to `>`),
 * the contents of <script> and <style> (up to </script, </style) and
 * entities (`&` then letters, digits or `#`, then an optional `;`); in
 * what is left a word is a maximal run of ASCII letters and digits, and
 * anything else (punctuation, non-ASCII bytes, a tag) separates words.
 * `h1` counts <h1> start tags outside comments and raw text.
 *
 * Build: cc -shared -fPIC -I libtrawler -o wordcount.so examples/plugin/wordcount.c
 * Use:   ./run.sh --plugin ./wordcount.so URL...
 * Config (trawler-consumer --plugin-config): min_length=N counts only
 * words of at least N characters (default 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

typedef struct wordcount {
	const tr_page_api *api;
	size_t min_length;
} wordcount;

static int is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive: does s[0..n) start with the lower-case ASCII text w? */
static int starts_with(const unsigned char *s, size_t n, const char *w)
{
	size_t k = strlen(w);
	if (n < k)
		return 0;
	for (size_t i = 0; i < k; i++)
		if (lower(s[i]) != (unsigned char)w[i])
			return 0;
	return 1;
}

/* Index of the first `w` in s[from..n) (case-insensitive), or n. */
static size_t find(const unsigned char *s, size_t n, size_t from, const char *w)
{
	for (size_t i = from; i < n; i++)
		if (starts_with(s + i, n - i, w))
			return i;
	return n;
}

/* Is s (just after '<') the tag name `name`, not a longer one? */
static int tag_is(const unsigned char *s, size_t n, const char *name)
{
	size_t k = strlen(name);
	return starts_with(s, n, name) && (n == k || !is_word_byte(s[k]));
}

static int starts_tag(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '/' || c == '!' || c == '?';
}

/* One left-to-right scan of the body; see the rule at the top. */
static void count(const unsigned char *s, size_t n, size_t min_length, unsigned long *words,
		  unsigned long *h1)
{
	size_t i = 0, run = 0;
	*words = *h1 = 0;
	while (i <= n) {
		if (i < n && is_word_byte(s[i])) {
			run++;
			i++;
			continue;
		}
		if (run > 0 && run >= min_length)
			(*words)++; /* anything else ends a word */
		run = 0;
		if (i == n)
			break;
		if (s[i] == '&') { /* entity: &name; &#NN; (the ';' optional) */
			for (i++; i < n && (is_word_byte(s[i]) || s[i] == '#'); i++)
				;
			i += i < n && s[i] == ';';
		} else if (starts_with(s + i, n - i, "<!--")) {
			size_t e = find(s, n, i + 4, "-->");
			i = e < n ? e + 3 : n;
		} else if (s[i] == '<' && i + 1 < n && starts_tag(s[i + 1])) {
			const unsigned char *t = s + i + 1;
			const char *end_tag = tag_is(t, n - i - 1, "script")  ? "</script"
					      : tag_is(t, n - i - 1, "style") ? "</style"
									      : NULL;
			*h1 += (unsigned long)tag_is(t, n - i - 1, "h1");
			size_t e = find(s, n, i, ">");
			i = e < n ? e + 1 : n;
			if (end_tag) /* raw text: skip to the end tag */
				i = find(s, n, i, end_tag);
		} else {
			i++;
		}
	}
}

static int wc_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	wordcount *w = calloc(1, sizeof(*w));
	const char *m = strstr(config, "min_length=");
	(void)payload;
	if (!w)
		return -1;
	w->api = api;
	w->min_length = m ? strtoul(m + strlen("min_length="), NULL, 10) : 1;
	*state = w;
	return 0;
}

static int wc_process(void *state, tr_page_view *page, const char **reason, void *payload)
{
	wordcount *w = state;
	const tr_page_api *a = w->api;
	const char *ct = a->content_type(page);
	unsigned long words, h1;
	char num[32];
	size_t len;

	(void)payload;
	/* text/html only, and only real responses (no transport errors). */
	if (a->status(page) == 0 || !ct || strncmp(ct, "text/html", 9) != 0)
		return 0;
	const uint8_t *body = a->body(page, &len);
	count(body ? body : (const uint8_t *)"", body ? len : 0, w->min_length, &words, &h1);
	snprintf(num, sizeof(num), "%lu", words);
	if (a->add_field(page, "words", num) != 0) {
		*reason = "wordcount: cannot add field words";
		return -1;
	}
	snprintf(num, sizeof(num), "%lu", h1);
	if (a->add_field(page, "h1", num) != 0) {
		*reason = "wordcount: cannot add field h1";
		return -1;
	}
	return 0;
}

static void wc_destroy(void *state, void *payload)
{
	(void)payload;
	free(state);
}

static const tr_handler wordcount_handler = {
    TR_HANDLER_ABI_VERSION, "wordcount", wc_create, wc_process, NULL, wc_destroy,
};

/* The one exported symbol: trawler-consumer dlopens the .so, looks this up
 * by name (TR_HANDLER_ENTRY) and checks abi_version. */
const tr_handler *trawler_handler_v1(void);

const tr_handler *trawler_handler_v1(void)
{
	return &wordcount_handler;
}
