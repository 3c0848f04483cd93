/* links.h - link, title and robots-meta extraction from HTML (libxml2 HTML parser). */
#ifndef TR_LINKS_H
#define TR_LINKS_H

#include "common.h"

#define TR_LINK_NOFOLLOW (1u << 0) /* every occurrence on the page had rel=nofollow */

#define TR_LINKS_TITLE_MAX 1024 /* bytes; longer titles are cut at a UTF-8 boundary */

typedef struct tr_link {
	char *url;	/* canonical absolute http(s) URL (url.h rules) */
	unsigned flags; /* TR_LINK_* */
} tr_link;

typedef struct tr_links {
	tr_link *items;	    /* resolved, canonical, deduplicated within the page, document order */
	size_t count;	    /* number of items, <= max_links */
	char *title;	    /* first <title>'s text, whitespace-collapsed and trimmed, UTF-8;
			       NULL if there is none or it is empty */
	char *base;	    /* effective base URL, canonical: the first <base href> resolved
			       against the page URL, or the page URL itself */
	char *canonical;    /* first <link rel=canonical href> resolved, or NULL */
	bool meta_nofollow; /* a <meta name=robots> says nofollow (or none) */
	bool meta_noindex;  /* a <meta name=robots> says noindex (or none) */
	size_t dropped;	    /* candidates not added: unresolvable, empty, non-http(s), or seen
			       after max_links links had been added */
} tr_links;

/* Call once per process before extracting (xmlInitParser()), from one
 * thread. */
void tr_links_global_init(void);
/* Call once at exit, after every extraction has finished and from one
 * thread (xmlCleanupParser(): it also frees libxml2 state other modules
 * may share). */
void tr_links_global_cleanup(void);

/*
 * Parse len bytes of HTML fetched from page_url and extract its links:
 * <a href>, <area href>, <link rel=next|prev|previous href>, <frame src>,
 * <iframe src>. Each is resolved against the effective base (first
 * <base href>, resolved against page_url), canonicalized (see url.h) and
 * added once, in document order, until max_links links are in (0: none);
 * a repeated URL keeps its first position and loses TR_LINK_NOFOLLOW unless
 * all its occurrences had rel=nofollow. Candidates that do not resolve to an
 * http(s) URL, or come after the cap, are only counted in out->dropped.
 *
 * Encoding (see tr_html_sniff() in htmlinput.h): a BOM decides; else the
 * charset passed to tr_links_extract_charset(); else a document that is
 * entirely valid UTF-8 is read as UTF-8; else the <meta charset> /
 * http-equiv in its first 4 KiB; else windows-1252 (as browsers do). The
 * document is converted to UTF-8 before libxml2 sees it: an invalid byte
 * sequence in any charset becomes U+FFFD and everything after it is still
 * read. Strings come back as UTF-8; non-ASCII in references is
 * percent-encoded as UTF-8.
 * Any byte sequence is accepted: malformed HTML and binary junk yield
 * whatever libxml2's recovering parser finds, possibly nothing; NUL bytes
 * are read as spaces.
 *
 * Returns 0 and fills *out, which the caller releases with
 * tr_links_free(); TR_EINVAL when out or page_url is NULL, html is NULL
 * with len > 0, or page_url is not an absolute http(s) URL; TR_ETOOBIG when
 * len exceeds INT_MAX or page_url TR_URL_MAX_LEN; TR_ENOMEM. On failure
 * *out is untouched and nothing is left allocated. Memory use is bounded by
 * a small multiple of len. Thread-safe after tr_links_global_init(); no
 * I/O.
 */
int tr_links_extract(tr_links *out, const char *html, size_t len, const char *page_url,
		     size_t max_links);

/* tr_links_extract() with the document's encoding as the caller knows it
 * (e.g. the charset of the HTTP Content-Type, "ISO-8859-1"); NULL or an
 * encoding iconv does not know means "detect". */
int tr_links_extract_charset(tr_links *out, const char *html, size_t len, const char *page_url,
			     const char *charset, size_t max_links);

/* Free what tr_links_extract() stored and zero *links. NULL is a no-op;
 * freeing a zeroed struct is a no-op. */
void tr_links_free(tr_links *links);

#endif
