/* links.c - link, title and robots-meta extraction from HTML (libxml2 HTML parser). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "links.h"
#include "url.h"

#define LINKS_PARSE_OPTIONS                                                                        \
	(HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |       \
	 HTML_PARSE_COMPACT)

/* What the first pass finds; pointers into the document. */
typedef struct links_head {
	const xmlNode *title;	  /* first <title> */
	const xmlNode *base;	  /* first <base> with href */
	const xmlNode *canonical; /* first <link rel=canonical> with href */
	bool nofollow, noindex;
} links_head;

/* The link list being built, with an open-addressing index of URL
 * fingerprints for deduplication. */
typedef struct links_set {
	tr_link *items;
	size_t count, cap, max;
	size_t *slots; /* item index + 1, 0 = empty; size is mask + 1, a power of two */
	size_t mask;
	size_t dropped;
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

/* The value of attribute `name` of element n, or NULL. Usually points into
 * the tree; when libxml2 split the value into several nodes it is built in
 * *owned, which the caller frees with xmlFree(). */
static const char *links_attr(xmlChar **owned, const xmlNode *n, const char *name)
{
	const xmlAttr *a;
	const char *value = NULL;

	*owned = NULL;
	for (a = n->properties; a != NULL; a = a->next) {
		if (!links_name_is(a->name, name))
			continue;
		if (a->children == NULL) {
			value = "";
		} else if (a->children->next == NULL && a->children->type == XML_TEXT_NODE) {
			value =
			    a->children->content != NULL ? (const char *)a->children->content : "";
		} else {
			*owned = xmlNodeListGetString(n->doc, a->children, 1);
			value = *owned != NULL ? (const char *)*owned : "";
		}
		break;
	}
	return value;
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

/* Next node in document order; only elements are descended into. */
static const xmlNode *links_next(const xmlNode *n, const xmlNode *root)
{
	if (n->type == XML_ELEMENT_NODE && n->children != NULL)
		return n->children;
	while (n != NULL && n != root) {
		if (n->next != NULL)
			return n->next;
		n = n->parent;
	}
	return NULL;
}

static bool links_attr_has_token(const xmlNode *n, const char *attr, const char *token)
{
	xmlChar *owned;
	bool found = links_has_token(links_attr(&owned, n, attr), token);

	xmlFree(owned);
	return found;
}

static bool links_attr_present(const xmlNode *n, const char *attr)
{
	xmlChar *owned;
	bool present = links_attr(&owned, n, attr) != NULL;

	xmlFree(owned);
	return present;
}

static void links_head_meta(links_head *head, const xmlNode *n)
{
	xmlChar *owned_name, *owned_content;
	const char *name = links_attr(&owned_name, n, "name");
	const char *content;

	if (name != NULL && links_name_is((const xmlChar *)name, "robots")) {
		content = links_attr(&owned_content, n, "content");
		if (links_has_token(content, "none")) {
			head->nofollow = true;
			head->noindex = true;
		}
		head->nofollow = head->nofollow || links_has_token(content, "nofollow");
		head->noindex = head->noindex || links_has_token(content, "noindex");
		xmlFree(owned_content);
	}
	xmlFree(owned_name);
}

/* First pass: title, base, canonical, robots meta. */
static void links_head_scan(links_head *head, const xmlNode *root)
{
	const xmlNode *n;

	memset(head, 0, sizeof(*head));
	for (n = root->children; n != NULL; n = links_next(n, root)) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (head->title == NULL && links_name_is(n->name, "title")) {
			head->title = n;
		} else if (head->base == NULL && links_name_is(n->name, "base")) {
			if (links_attr_present(n, "href"))
				head->base = n;
		} else if (links_name_is(n->name, "link")) {
			if (head->canonical == NULL && links_attr_present(n, "href") &&
			    links_attr_has_token(n, "rel", "canonical"))
				head->canonical = n;
		} else if (links_name_is(n->name, "meta")) {
			links_head_meta(head, n);
		}
	}
}

/* The text under a <title>, whitespace collapsed, at most
 * TR_LINKS_TITLE_MAX bytes ending on a whole UTF-8 sequence. *out is NULL
 * for an empty title. */
static int links_title(char **out, const xmlNode *title)
{
	int rc = 0;
	char *buf;
	size_t len = 0, i, start;
	bool space = false, full = false;
	const xmlNode *n;

	*out = NULL;
	buf = malloc(TR_LINKS_TITLE_MAX + 1);
	if (buf == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	for (n = title->children; n != NULL && !full; n = links_next(n, title)) {
		const char *s;

		if ((n->type != XML_TEXT_NODE && n->type != XML_CDATA_SECTION_NODE) ||
		    n->content == NULL)
			continue;
		for (s = (const char *)n->content; *s != '\0' && !full; s++) {
			if (links_is_space(*s)) {
				space = len > 0;
				continue;
			}
			if (len + (space ? 1 : 0) >= TR_LINKS_TITLE_MAX) {
				full = true;
				break;
			}
			if (space)
				buf[len++] = ' ';
			space = false;
			buf[len++] = *s;
		}
	}
	if (full && len > 0) {
		/* Drop a UTF-8 sequence cut short: find where the last one starts. */
		start = len - 1;
		for (i = 0; i < 3 && start > 0 && ((unsigned char)buf[start] & 0xc0) == 0x80; i++)
			start--;
		{
			unsigned char lead = (unsigned char)buf[start];
			size_t need = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
			if (len - start < need)
				len = start;
		}
		while (len > 0 && buf[len - 1] == ' ')
			len--;
	}
	if (len == 0)
		goto out;
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
out:
	free(buf);
	return rc;
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
		goto out;
	}
	rc = tr_url_resolve_base(&url, set->base, ref);
	if (rc != 0) {
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

/* One element's candidate link, if it has one. */
static int links_element(links_set *set, const xmlNode *n)
{
	int rc = 0;
	const char *attr = NULL, *ref;
	bool is_link = false;
	unsigned flags = 0;
	xmlChar *owned = NULL;

	switch (links_lower((char)n->name[0])) {
	case 'a':
		if (links_name_is(n->name, "a") || links_name_is(n->name, "area"))
			attr = "href";
		break;
	case 'f':
		if (links_name_is(n->name, "frame"))
			attr = "src";
		break;
	case 'i':
		if (links_name_is(n->name, "iframe"))
			attr = "src";
		break;
	case 'l':
		if (links_name_is(n->name, "link")) {
			attr = "href";
			is_link = true;
		}
		break;
	default:
		break;
	}
	if (attr == NULL)
		goto out;
	ref = links_attr(&owned, n, attr);
	if (ref == NULL)
		goto out;
	if (is_link && !links_attr_has_token(n, "rel", "next") &&
	    !links_attr_has_token(n, "rel", "prev") && !links_attr_has_token(n, "rel", "previous"))
		goto out;
	if (attr[0] == 'h' && links_attr_has_token(n, "rel", "nofollow"))
		flags |= TR_LINK_NOFOLLOW;
	rc = links_set_add(set, ref, flags);
out:
	xmlFree(owned);
	return rc;
}

/* Second pass: the links. */
static int links_collect(links_set *set, const xmlNode *root)
{
	int rc = 0;
	const xmlNode *n;

	for (n = root->children; n != NULL && rc == 0; n = links_next(n, root)) {
		if (n->type == XML_ELEMENT_NODE && n->name != NULL)
			rc = links_element(set, n);
	}
	return rc;
}

/* Resolve the href of element n (may be NULL) against base into *out
 * (NULL when absent or unresolvable). */
static int links_resolve_attr(char **out, const tr_url_base *base, const xmlNode *n)
{
	int rc = 0;
	xmlChar *owned = NULL;
	const char *ref;

	*out = NULL;
	if (n == NULL)
		goto out;
	ref = links_attr(&owned, n, "href");
	if (ref == NULL)
		goto out;
	rc = tr_url_resolve_base(out, base, ref);
	if (rc != TR_ENOMEM)
		rc = 0;
out:
	xmlFree(owned);
	return rc;
}

int tr_links_extract_charset(tr_links *out, const char *html, size_t len, const char *page_url,
			     const char *charset, size_t max_links)
{
	int rc;
	htmlDocPtr doc = NULL;
	tr_url_base *page = NULL, *based = NULL;
	const tr_url_base *base;
	links_head head;
	links_set set;
	tr_links res;
	char *base_url = NULL;

	memset(&res, 0, sizeof(res));
	memset(&set, 0, sizeof(set));
	memset(&head, 0, sizeof(head));
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
	base = page;
	/* NULL for empty or hopeless input: a page without links, not an error. */
	if (len > 0)
		doc = htmlReadMemory(html, (int)len, NULL, charset, LINKS_PARSE_OPTIONS);
	if (doc != NULL)
		links_head_scan(&head, (const xmlNode *)doc);

	rc = links_resolve_attr(&base_url, page, head.base);
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
	rc = links_resolve_attr(&res.canonical, base, head.canonical);
	if (rc == 0 && head.title != NULL)
		rc = links_title(&res.title, head.title);
	if (rc != 0)
		goto out;
	res.meta_nofollow = head.nofollow;
	res.meta_noindex = head.noindex;

	set.max = max_links;
	set.base = base;
	if (doc != NULL)
		rc = links_collect(&set, (const xmlNode *)doc);
	if (rc != 0)
		goto out;
	free(set.slots);
	set.slots = NULL;
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
	free(base_url);
	tr_url_base_free(based);
	tr_url_base_free(page);
	if (doc != NULL)
		xmlFreeDoc(doc);
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

void tr_links_global_init(void)
{
	xmlInitParser();
}

void tr_links_global_cleanup(void)
{
	xmlCleanupParser();
}
