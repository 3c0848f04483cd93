/* links.c - link, title and robots-meta extraction from HTML (libxml2 HTML parser). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>

#include "htmlinput.h"
#include "links.h"
#include "metrics.h"
#include "utf8.h"
#include "url.h"

/*
 * The parser runs in SAX mode: start-element and text callbacks record what
 * we need, and no tree is built. On a 15 KB page that is about 40% less CPU
 * than building the tree and walking it (tree building and freeing cost more
 * than the walk saves). Candidates are only recorded during the parse and
 * resolved after it, because a <base href> applies to links before it too.
 */

#define LINKS_PARSE_OPTIONS                                                                        \
	(HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |       \
	 HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC)

/* A candidate link: its raw reference is at arena + off. */
typedef struct links_cand {
	size_t off;
	unsigned flags;
} links_cand;

typedef enum { TITLE_NONE = 0, TITLE_IN, TITLE_DONE } links_title_state;

/* What the callbacks collect during one parse. */
typedef struct links_state {
	htmlParserCtxtPtr ctxt;
	int rc; /* first failure (TR_ENOMEM); the parser is stopped then */

	char *arena; /* raw references, NUL-separated */
	size_t arena_len, arena_cap;
	links_cand *cands;
	size_t ncands, cands_cap;

	char *base_href;      /* first <base href> */
	char *canonical_href; /* first <link rel=canonical href> */
	bool nofollow, noindex;

	links_title_state title_state;
	char title[TR_LINKS_TITLE_MAX + 1];
	size_t title_len;
	bool title_space, title_full;
} links_state;

/* The link list being built, with an open-addressing index of URL
 * fingerprints for deduplication. */
typedef struct links_set {
	tr_link *items;
	size_t count, cap, max;
	size_t *slots; /* item index + 1, 0 = empty; size is mask + 1, a power of two */
	size_t mask;
	size_t dropped;
	bool capped; /* a link came after max (counted once per page) */
	const tr_url_base *base;
} links_set;

static char links_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool links_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* ASCII case-insensitive comparison with a lowercase literal. */
static bool links_name_is(const xmlChar *name, const char *want)
{
	const char *s = (const char *)name;

	if (s == NULL)
		return false;
	while (*s != '\0' && *want != '\0' && links_lower(*s) == *want) {
		s++;
		want++;
	}
	return *s == '\0' && *want == '\0';
}

/* The value of attribute `name` in a SAX attribute list, "" for an
 * attribute without a value, NULL when absent. */
static const char *links_attr(const xmlChar **atts, const char *name)
{
	size_t i;

	for (i = 0; atts != NULL && atts[i] != NULL; i += 2) {
		if (links_name_is(atts[i], name))
			return atts[i + 1] != NULL ? (const char *)atts[i + 1] : "";
	}
	return NULL;
}

/* Whether the whitespace/comma separated token list s contains token
 * (ASCII case-insensitive). */
static bool links_has_token(const char *s, const char *token)
{
	size_t tlen = strlen(token);
	bool found = false;

	while (s != NULL && *s != '\0' && !found) {
		size_t i, n = 0;

		while (*s != '\0' && (links_is_space(*s) || *s == ','))
			s++;
		while (s[n] != '\0' && !links_is_space(s[n]) && s[n] != ',')
			n++;
		if (n == tlen) {
			found = true;
			for (i = 0; i < n && found; i++)
				found = links_lower(s[i]) == token[i];
		}
		s += n;
	}
	return found;
}

static void links_fail(links_state *st, int rc)
{
	if (st->rc == 0) {
		st->rc = rc;
		xmlStopParser(st->ctxt);
	}
}

static void links_keep(links_state *st, char **dst, const char *value)
{
	if (*dst != NULL)
		return;
	*dst = strdup(value);
	if (*dst == NULL)
		links_fail(st, TR_ENOMEM);
}

/* Record one candidate reference (copied). */
static void links_candidate(links_state *st, const char *ref, unsigned flags)
{
	size_t n = strlen(ref) + 1;

	if (st->ncands == st->cands_cap) {
		size_t cap = st->cands_cap == 0 ? 64 : st->cands_cap * 2;
		links_cand *c = realloc(st->cands, cap * sizeof(*c));
		if (c == NULL) {
			links_fail(st, TR_ENOMEM);
			return;
		}
		st->cands = c;
		st->cands_cap = cap;
	}
	if (n > st->arena_cap - st->arena_len) {
		size_t cap = st->arena_cap == 0 ? 4096 : st->arena_cap;
		char *a;
		while (cap - st->arena_len < n)
			cap *= 2;
		a = realloc(st->arena, cap);
		if (a == NULL) {
			links_fail(st, TR_ENOMEM);
			return;
		}
		st->arena = a;
		st->arena_cap = cap;
	}
	memcpy(st->arena + st->arena_len, ref, n);
	st->cands[st->ncands].off = st->arena_len;
	st->cands[st->ncands].flags = flags;
	st->ncands++;
	st->arena_len += n;
}

static void links_on_link(links_state *st, const xmlChar **atts)
{
	const char *href = links_attr(atts, "href");
	const char *rel = links_attr(atts, "rel");

	if (href == NULL || rel == NULL)
		return;
	if (links_has_token(rel, "canonical"))
		links_keep(st, &st->canonical_href, href);
	if (links_has_token(rel, "next") || links_has_token(rel, "prev") ||
	    links_has_token(rel, "previous"))
		links_candidate(st, href, links_has_token(rel, "nofollow") ? TR_LINK_NOFOLLOW : 0);
}

static void links_on_meta(links_state *st, const xmlChar **atts)
{
	const char *name = links_attr(atts, "name");
	const char *content;

	if (name == NULL || !links_name_is((const xmlChar *)name, "robots"))
		return;
	content = links_attr(atts, "content");
	if (links_has_token(content, "none")) {
		st->nofollow = true;
		st->noindex = true;
	}
	st->nofollow = st->nofollow || links_has_token(content, "nofollow");
	st->noindex = st->noindex || links_has_token(content, "noindex");
}

static void links_on_start(void *ctx, const xmlChar *name, const xmlChar **atts)
{
	links_state *st = ((htmlParserCtxtPtr)ctx)->_private;
	const char *ref;

	if (name == NULL || st->rc != 0)
		return;
	switch (links_lower((char)name[0])) {
	case 'a':
		if (links_name_is(name, "a") || links_name_is(name, "area")) {
			ref = links_attr(atts, "href");
			if (ref != NULL)
				links_candidate(st, ref,
						links_has_token(links_attr(atts, "rel"), "nofollow")
						    ? TR_LINK_NOFOLLOW
						    : 0);
		}
		break;
	case 'b':
		if (links_name_is(name, "base") && (ref = links_attr(atts, "href")) != NULL)
			links_keep(st, &st->base_href, ref);
		break;
	case 'f':
	case 'i':
		if ((links_name_is(name, "frame") || links_name_is(name, "iframe")) &&
		    (ref = links_attr(atts, "src")) != NULL)
			links_candidate(st, ref, 0);
		break;
	case 'l':
		if (links_name_is(name, "link"))
			links_on_link(st, atts);
		break;
	case 'm':
		if (links_name_is(name, "meta"))
			links_on_meta(st, atts);
		break;
	case 't':
		if (st->title_state == TITLE_NONE && links_name_is(name, "title"))
			st->title_state = TITLE_IN;
		break;
	default:
		break;
	}
}

static void links_on_end(void *ctx, const xmlChar *name)
{
	links_state *st = ((htmlParserCtxtPtr)ctx)->_private;

	if (st->title_state == TITLE_IN && links_name_is(name, "title"))
		st->title_state = TITLE_DONE;
}

/* Title text, whitespace collapsed as it arrives, capped. */
static void links_on_text(void *ctx, const xmlChar *ch, int len)
{
	links_state *st = ((htmlParserCtxtPtr)ctx)->_private;
	int i;

	if (st->title_state != TITLE_IN || st->title_full)
		return;
	for (i = 0; i < len; i++) {
		char c = (char)ch[i];
		if (links_is_space(c)) {
			st->title_space = st->title_len > 0;
			continue;
		}
		if (st->title_len + (st->title_space ? 1 : 0) >= TR_LINKS_TITLE_MAX) {
			st->title_full = true;
			break;
		}
		if (st->title_space)
			st->title[st->title_len++] = ' ';
		st->title_space = false;
		st->title[st->title_len++] = c;
	}
}

/* The collected title as a malloc'd string, NULL when empty. A title cut
 * at the cap loses a trailing partial UTF-8 sequence. */
static int links_title(char **out, links_state *st)
{
	int rc = 0;
	size_t len = st->title_len, start, i, need;
	unsigned char lead;

	*out = NULL;
	if (st->title_full && len > 0) {
		start = len - 1;
		for (i = 0; i < 3 && start > 0 && ((unsigned char)st->title[start] & 0xc0) == 0x80;
		     i++)
			start--;
		lead = (unsigned char)st->title[start];
		need = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
		if (len - start < need)
			len = start;
		while (len > 0 && st->title[len - 1] == ' ')
			len--;
	}
	if (len == 0)
		goto out;
	*out = tr_utf8_clean(st->title, len); /* a declared charset can still lie */
	if (*out == NULL)
		rc = TR_ENOMEM;
out:
	return rc;
}

/* Parse the document, filling st. */
static int links_parse(links_state *st, const char *html, size_t len, const char *charset)
{
	int rc = 0;
	htmlParserCtxtPtr ctxt = NULL;
	htmlDocPtr doc;
	char *owned = NULL;

	if (len == 0)
		goto out;
	rc = tr_html_prepare(&html, &len, charset, &owned);
	if (rc != 0)
		goto out;
	ctxt = htmlNewParserCtxt();
	if (ctxt == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	/* Only our callbacks: no tree, no error output. */
	memset(ctxt->sax, 0, sizeof(*ctxt->sax));
	ctxt->sax->startElement = links_on_start;
	ctxt->sax->endElement = links_on_end;
	ctxt->sax->characters = links_on_text;
	ctxt->sax->ignorableWhitespace = links_on_text;
	ctxt->sax->initialized = 1;
	ctxt->_private = st;
	st->ctxt = ctxt;
	/* A NULL result is normal here: no tree is built. */
	doc = htmlCtxtReadMemory(ctxt, html, (int)len, NULL, "UTF-8", LINKS_PARSE_OPTIONS);
	if (doc != NULL)
		xmlFreeDoc(doc);
	rc = st->rc;
out:
	st->ctxt = NULL;
	if (ctxt != NULL)
		htmlFreeParserCtxt(ctxt);
	free(owned);
	return rc;
}

static void links_state_free(links_state *st)
{
	free(st->arena);
	free(st->cands);
	free(st->base_href);
	free(st->canonical_href);
}

static void links_set_free(links_set *set)
{
	size_t i;

	for (i = 0; i < set->count; i++)
		free(set->items[i].url);
	free(set->items);
	free(set->slots);
	set->items = NULL;
	set->slots = NULL;
	set->count = 0;
	set->cap = 0;
}

/* Make room for one more item (items and index). */
static int links_set_grow(links_set *set)
{
	int rc = 0;
	size_t cap, size, i;
	tr_link *items;
	size_t *slots;

	if (set->count < set->cap)
		goto out;
	cap = set->cap == 0 ? 32 : set->cap * 2;
	if (cap > set->max)
		cap = set->max;
	items = realloc(set->items, cap * sizeof(*items));
	if (items == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	set->items = items;
	set->cap = cap;
	for (size = 64; size < cap * 2; size *= 2)
		;
	if (set->slots != NULL && size == set->mask + 1)
		goto out;
	slots = calloc(size, sizeof(*slots));
	if (slots == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	free(set->slots);
	set->slots = slots;
	set->mask = size - 1;
	for (i = 0; i < set->count; i++) {
		const char *u = set->items[i].url;
		size_t s = (size_t)tr_url_fingerprint(u, strlen(u)) & set->mask;
		while (slots[s] != 0)
			s = (s + 1) & set->mask;
		slots[s] = i + 1;
	}
out:
	return rc;
}

/* Resolve and add one candidate. Only TR_ENOMEM is an error. */
static int links_set_add(links_set *set, const char *ref, unsigned flags)
{
	int rc = 0;
	char *url = NULL;
	size_t len, s;

	if (set->count >= set->max) {
		set->dropped++;
		set->capped = set->max > 0;
		goto out;
	}
	rc = tr_url_resolve_base(&url, set->base, ref);
	if (rc != 0) {
		if (rc == TR_ETOOBIG)
			tr_metrics_limit_hit("url_length");
		if (rc != TR_ENOMEM) {
			set->dropped++;
			rc = 0;
		}
		goto out;
	}
	rc = links_set_grow(set);
	if (rc != 0)
		goto out;
	len = strlen(url);
	for (s = (size_t)tr_url_fingerprint(url, len) & set->mask; set->slots[s] != 0;
	     s = (s + 1) & set->mask) {
		tr_link *l = &set->items[set->slots[s] - 1];
		if (strcmp(l->url, url) == 0) {
			if ((flags & TR_LINK_NOFOLLOW) == 0)
				l->flags &= ~TR_LINK_NOFOLLOW;
			goto out;
		}
	}
	set->items[set->count].url = url;
	set->items[set->count].flags = flags;
	set->count++;
	set->slots[s] = set->count;
	url = NULL;
out:
	free(url);
	return rc;
}

/* Resolve an optional reference; *out is NULL when absent or unresolvable. */
static int links_resolve_opt(char **out, const tr_url_base *base, const char *ref)
{
	int rc = 0;

	*out = NULL;
	if (ref != NULL)
		rc = tr_url_resolve_base(out, base, ref);
	if (rc != TR_ENOMEM)
		rc = 0;
	return rc;
}

int tr_links_extract_charset(tr_links *out, const char *html, size_t len, const char *page_url,
			     const char *charset, size_t max_links)
{
	int rc;
	tr_url_base *page = NULL, *based = NULL;
	const tr_url_base *base;
	links_state *st = NULL;
	links_set set;
	tr_links res;
	char *base_url = NULL;
	size_t i;

	memset(&res, 0, sizeof(res));
	memset(&set, 0, sizeof(set));
	if (out == NULL || page_url == NULL || (html == NULL && len > 0)) {
		rc = TR_EINVAL;
		goto out;
	}
	if (len > INT_MAX) {
		rc = TR_ETOOBIG;
		goto out;
	}
	rc = tr_url_base_new(&page, page_url);
	if (rc != 0)
		goto out;
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = links_parse(st, html, len, charset);
	if (rc != 0)
		goto out;

	base = page;
	rc = links_resolve_opt(&base_url, page, st->base_href);
	if (rc == 0 && base_url != NULL) {
		rc = tr_url_base_new(&based, base_url);
		if (rc == 0)
			base = based;
		else if (rc != TR_ENOMEM)
			rc = 0;
	}
	if (rc != 0)
		goto out;
	res.base = strdup(tr_url_base_url(base));
	if (res.base == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	rc = links_resolve_opt(&res.canonical, base, st->canonical_href);
	if (rc == 0)
		rc = links_title(&res.title, st);
	if (rc != 0)
		goto out;
	res.meta_nofollow = st->nofollow;
	res.meta_noindex = st->noindex;

	set.max = max_links;
	set.base = base;
	for (i = 0; i < st->ncands && rc == 0; i++)
		rc = links_set_add(&set, st->arena + st->cands[i].off, st->cands[i].flags);
	if (rc != 0)
		goto out;
	if (set.capped)
		tr_metrics_limit_hit("links_per_page");
	if (st->title_full)
		tr_metrics_limit_hit("title");
	res.items = set.items;
	res.count = set.count;
	res.dropped = set.dropped;
	set.items = NULL;
	set.count = 0;
	*out = res;
	memset(&res, 0, sizeof(res));
out:
	links_set_free(&set);
	tr_links_free(&res);
	if (st != NULL)
		links_state_free(st);
	free(st);
	free(base_url);
	tr_url_base_free(based);
	tr_url_base_free(page);
	return rc;
}

int tr_links_extract(tr_links *out, const char *html, size_t len, const char *page_url,
		     size_t max_links)
{
	return tr_links_extract_charset(out, html, len, page_url, NULL, max_links);
}

void tr_links_free(tr_links *links)
{
	size_t i;

	if (links == NULL)
		return;
	for (i = 0; i < links->count; i++)
		free(links->items[i].url);
	free(links->items);
	free(links->title);
	free(links->base);
	free(links->canonical);
	memset(links, 0, sizeof(*links));
}

/* libxml2 prints encoding and I/O errors straight to stderr, which would
 * break one-event-per-line logs; parse errors are expected on the web. */
static void links_quiet(void *ctx, const char *msg, ...)
{
	TR_UNUSED(ctx);
	TR_UNUSED(msg);
}

void tr_links_global_init(void)
{
	xmlInitParser();
	xmlSetGenericErrorFunc(NULL, links_quiet);
}

void tr_links_global_cleanup(void)
{
	xmlCleanupParser();
}
