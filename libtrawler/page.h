/* page.h - what the consumer makes of one fetch result: the extracted
 * links, the ones to follow (scope, depth), and its pages.jsonl line. */
#ifndef TR_PAGE_H
#define TR_PAGE_H

#include "buf.h"
#include "crawlstate.h"
#include "links.h"
#include "trawler.pb-c.h"

typedef struct tr_page_opts {
	long max_depth; /* links of pages at this depth are not followed */
	long max_links; /* links taken from one page */
} tr_page_opts;

typedef struct tr_page {
	const Trawler__V1__FetchResult *res; /* borrowed */
	uint64_t fp;       /* fingerprint of the requested URL */
	bool failed;       /* transport failure (no HTTP response) */
	bool is_html;
	tr_links links;    /* every link on the page (HTML 2xx only) */
	size_t nfollow;    /* links to admit: in scope and within depth */
	char **follow_urls;   /* canonical URLs, owned (point into links) */
	uint64_t *follow_fps; /* their fingerprints, owned */
} tr_page;

/* True when the path of `url` ends in ".EXT" for an EXT in the comma-separated
 * list `exts` (case-insensitive): such links are checked with HEAD. */
bool tr_page_wants_head(const char *url, const char *exts);

/* True for HTML content types (text/html, application/xhtml+xml). */
bool tr_page_is_html_type(const char *content_type);

/* Analyse `res` for crawl `crawl`: extract links of a 2xx HTML page, pick
 * those to follow. Returns 0 (pg filled; release with tr_page_clear()) or
 * TR_ENOMEM (pg left empty). Malformed HTML is parsed as far as possible and
 * never fails. Pure computation, thread-safe. */
int tr_page_process(tr_page *pg, const Trawler__V1__FetchResult *res, const tr_crawl_info *crawl,
		    const tr_page_opts *o);

/* Append the page's pages.jsonl line (with the trailing newline) to `line`.
 * Returns 0 or a tr_buf error (line then holds a partial line: reset it). */
int tr_page_jsonl(tr_buf *line, const tr_page *pg);

void tr_page_clear(tr_page *pg);

#endif
