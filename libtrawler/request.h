/* request.h - hygiene for CrawlRequest messages read from the frontier. */
#ifndef TR_REQUEST_H
#define TR_REQUEST_H

#include "trawler.pb-c.h"

/* Drop the unknown fields protobuf-c kept while unpacking `req` (and its
 * range and metadata entries). protobuf-c re-packs unknown fields, and one
 * written with an odd tag (field 0) re-packs into bytes that no longer
 * decode, which would spoil the FetchResult that embeds the request.
 * Frontier input is not trusted. Frees with the default allocator (the one
 * of unpack(NULL, ...)). */
void tr_request_drop_unknown(Trawler__V1__CrawlRequest *req);

#endif
