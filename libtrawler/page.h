/* page.h - what the consumer makes of one fetch result: the extracted
 * links, the ones to follow (scope, depth), and its pages.jsonl line. */
#ifndef TR_PAGE_H
#define TR_PAGE_H

#include "buf.h"
#include "crawlstate.h"
#include "links.h"
#include "scope.h"
#include "trawler.pb-c.h"

typedef struct tr_page_opts {
	const tr_scope *scope;	/* NULL: the seeds' host:port, no query rules */
	long max_depth;		/* links of pages at this depth are not followed */
	long max_links;		/* links taken from one page */
	bool follow_nofollow;	/* also follow rel=nofollow links and meta-nofollow pages */
	bool sitemaps;		/* follow the <loc> URLs of sitemaps (sitemap.h) */
	long sitemap_max_urls;	/* locs taken from one sitemap */
	long sitemap_max_bytes; /* inflated bytes read from one gzip sitemap */
} tr_page_opts;

#define TR_PAGE_MAX_FIELD_VALUES 1000 /* values over all fields of one page */
#define TR_PAGE_MAX_VALUE_BYTES 65536 /* one field value; longer ones are cut */

typedef struct tr_field {
	char *name;
	char **values;
	size_t count, cap;
	bool list; /* rendered as a JSON array even with one value */
} tr_field;

typedef struct tr_page {
	const Trawler__V1__FetchResult *res; /* borrowed */
	uint64_t fp;			     /* fingerprint of the requested URL */
	bool failed;			     /* transport failure (no HTTP response) */
	bool is_html;
	int sitemap;		/* TR_SITEMAP_* when the page is a sitemap that was read */
	bool sitemap_truncated; /* a sitemap cap or an XML error cut it short */
	tr_links links;		/* every link on the page (HTML 2xx only) */
	size_t nfollow;		/* links to admit: in scope and within depth */
	size_t follow_cap;
	char **follow_urls;	    /* canonical URLs (owned copies) */
	uint64_t *follow_fps;	    /* their fingerprints */
	const tr_crawl_info *crawl; /* borrowed, for scoping extra links */
	const tr_scope *scope;	    /* borrowed */
	long max_depth;
	size_t offsite, denied, too_long, nofollow; /* links not followed, by reason */
	tr_field *fields;			    /* extracted by handlers, in insertion order */
	size_t nfields, fields_cap, nvalues;
} tr_page;

/* True when the path of `url` ends in ".EXT" for an EXT in the comma-separated
 * list `exts` (case-insensitive): such links are checked with HEAD. */
bool tr_page_wants_head(const char *url, const char *exts);

/* True for HTML content types (text/html, application/xhtml+xml). */
bool tr_page_is_html_type(const char *content_type);

/* Analyse `res` for crawl `crawl`: extract links of a 2xx HTML page, pick
 * those to follow. With o->sitemaps, a 2xx body of a request queued as a
 * sitemap, or with an XML content type, that is a sitemaps.org <urlset> or
 * <sitemapindex> (gzip too) has its <loc> URLs followed instead (scope and
 * depth apply; at most o->sitemap_max_urls; an index's URLs are sitemaps). Returns 0 (pg filled;
 * release with tr_page_clear()) or TR_ENOMEM (pg left empty). Malformed HTML is parsed as far as
 * possible and never fails. Pure computation, thread-safe. */
int tr_page_process(tr_page *pg, const Trawler__V1__FetchResult *res, const tr_crawl_info *crawl,
		    const tr_page_opts *o);

/* Add a value to field `name` (copied; cut at TR_PAGE_MAX_VALUE_BYTES at a
 * UTF-8 boundary). `list` marks the field as multi-valued. Returns 0,
 * TR_ETOOBIG (TR_PAGE_MAX_FIELD_VALUES reached, nothing added) or
 * TR_ENOMEM. */
int tr_page_add_field(tr_page *pg, const char *name, const char *value, bool list);
const tr_field *tr_page_field(const tr_page *pg, const char *name);

/* Follow one more URL found on the page: resolved against the page's final
 * URL, kept if in scope, within depth and not already listed. Returns 0
 * (added or filtered out), TR_EINVAL (not an http(s) URL) or TR_ENOMEM. */
int tr_page_add_link(tr_page *pg, const char *ref);

/* Append the page's pages.jsonl line (with the trailing newline) to `line`.
 * Returns 0 or a tr_buf error (line then holds a partial line: reset it). */
int tr_page_jsonl(tr_buf *line, const tr_page *pg);

void tr_page_clear(tr_page *pg);

#endif
