/* request.h - hygiene for CrawlRequest messages read from the frontier. */
#ifndef TR_REQUEST_H
#define TR_REQUEST_H

#include "common.h"
#include "trawler.pb-c.h"

/* Drop the unknown fields protobuf-c kept while unpacking `req` (and its
 * range and metadata entries). protobuf-c re-packs unknown fields, and one
 * written with an odd tag (field 0) re-packs into bytes that no longer
 * decode, which would spoil the FetchResult that embeds the request.
 * Frontier input is not trusted. Frees with the default allocator (the one
 * of unpack(NULL, ...)). */
void tr_request_drop_unknown(Trawler__V1__CrawlRequest *req);

/* The value of metadata entry `key` of `req` (owned by req), or NULL. */
const char *tr_request_meta(const Trawler__V1__CrawlRequest *req, const char *key);

/* True when `req` was queued as a sitemap (metadata "sitemap" = "1": from
 * robots.txt or a sitemap index, --sitemaps). */
bool tr_request_is_sitemap(const Trawler__V1__CrawlRequest *req);

#endif
