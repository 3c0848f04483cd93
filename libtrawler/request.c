/* request.c - CrawlRequest hygiene: unknown fields dropped. */
#include <stdlib.h>

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
