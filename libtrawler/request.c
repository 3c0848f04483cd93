/* request.c - CrawlRequest hygiene (unknown fields dropped) and metadata lookups. */
#include <stdlib.h>
#include <string.h>

#include "request.h"

static void drop_unknown(ProtobufCMessage *m)
{
	if (!m)
		return;
	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		free(m->unknown_fields[i].data);
	free(m->unknown_fields);
	m->unknown_fields = NULL;
	m->n_unknown_fields = 0;
}

void tr_request_drop_unknown(Trawler__V1__CrawlRequest *req)
{
	if (!req)
		return;
	drop_unknown(&req->base);
	drop_unknown(req->range ? &req->range->base : NULL);
	for (size_t i = 0; i < req->n_metadata; i++)
		drop_unknown(&req->metadata[i]->base);
}

const char *tr_request_meta(const Trawler__V1__CrawlRequest *req, const char *key)
{
	for (size_t i = 0; req && i < req->n_metadata; i++)
		if (req->metadata[i]->key && strcmp(req->metadata[i]->key, key) == 0)
			return req->metadata[i]->value;
	return NULL;
}

bool tr_request_is_sitemap(const Trawler__V1__CrawlRequest *req)
{
	const char *v = tr_request_meta(req, "sitemap");
	return v && strcmp(v, "1") == 0;
}
