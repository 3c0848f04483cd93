/* sitemap.h - sitemaps.org files (XML <urlset> and <sitemapindex>, also
 * gzip-compressed): their <loc> URLs. */
#ifndef TR_SITEMAP_H
#define TR_SITEMAP_H

#include "common.h"

#define TR_SITEMAP_NONE 0   /* not a sitemap (other XML, HTML, garbage) */
#define TR_SITEMAP_URLSET 1 /* <urlset>: <url><loc> are pages */
#define TR_SITEMAP_INDEX 2  /* <sitemapindex>: <sitemap><loc> are sitemaps */

/* Called once per <loc> value (whitespace trimmed, valid during the call). */
typedef void (*tr_sitemap_loc_cb)(const char *loc, void *payload);

/*
 * Parse the sitemap in `body` (len bytes). A body starting with the gzip
 * magic is inflated first, at most `max_bytes` of it (sitemaps.org allows
 * 50 MiB); what lies past the cap is not read. The XML is read as a
 * stream (libxml2 xmlReader, no network, no entity substitution, no DTD
 * loading); only the root element's local name decides the kind, and only
 * <loc> elements that are children of <url> (urlset) or <sitemap> (index)
 * count. `cb` gets at most `max_urls` locs. Malformed XML: the locs read
 * before the error are kept.
 * Returns the kind (TR_SITEMAP_*; cb is never called for NONE) or
 * TR_ENOMEM. *truncated (may be NULL) is set when a cap or an XML error
 * cut the file short. Thread-safe, no I/O.
 */
int tr_sitemap_parse(const void *body, size_t len, size_t max_bytes, size_t max_urls,
		     tr_sitemap_loc_cb cb, void *payload, bool *truncated);

#endif
