/* handler_items.c - the Kafka items sink: one trawler.v1.Item per processed
 * page (the public schema in proto/trawler.proto) on the items topic, keyed
 * by host key. Payload: the consumer's rd_kafka_t producer; the consumer
 * waits for every ack (or, with --transactional, for the commit of the
 * batch's transaction, which these items are part of) before it marks pages
 * done, so flush() has nothing left to do. Config: topic=NAME (default trawler.items), all=1 to
 * emit pages without fields too (default: every page with an HTTP response). */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "url.h"

typedef struct items {
	char topic[256];
} items;

static int items_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	items *it = calloc(1, sizeof(*it));
	if (!it)
		return TR_ENOMEM;
	if (!payload) {
		free(it);
		return TR_EINVAL; /* needs the consumer's producer */
	}
	snprintf(it->topic, sizeof(it->topic), "trawler.items");
	tr_pipeline_conf(config, "topic", it->topic, sizeof(it->topic));
	*state = it;
	return TR_OK;
}

static int items_process(void *state, tr_page_view *view, const char **reason, void *payload)
{
	items *it = state;
	rd_kafka_t *rk = payload;
	tr_page *pg = tr_pipeline_page(view);
	const Trawler__V1__FetchResult *r = pg->res;
	Trawler__V1__Item item = TRAWLER__V1__ITEM__INIT;
	Trawler__V1__Item__Field *fv = NULL, **fp = NULL;
	char key[300];
	int rc = TR_OK;

	if (!r->status)
		return TR_OK; /* no HTTP response: nothing to publish */
	item.crawl_id = r->request->crawl_id;
	item.url = r->final_url && *r->final_url ? r->final_url : r->request->url;
	item.status = r->status;
	item.content_type = r->content_type;
	item.depth = r->request->depth;
	item.title = pg->links.title;
	item.fetched_at_ms = r->fetched_at_ms;
	item.link_count = (uint32_t)pg->links.count;
	item.canonical = pg->links.canonical;
	item.n_metadata = r->request->n_metadata;
	item.metadata = (Trawler__V1__Item__MetadataEntry **)r->request->metadata;
	if (pg->nfields) {
		fv = calloc(pg->nfields, sizeof(*fv));
		fp = calloc(pg->nfields, sizeof(*fp));
		if (!fv || !fp) {
			rc = TR_ENOMEM;
			*reason = "out of memory building the item";
			goto out;
		}
		for (size_t i = 0; i < pg->nfields; i++) {
			trawler__v1__item__field__init(&fv[i]);
			fv[i].name = pg->fields[i].name;
			fv[i].n_values = pg->fields[i].count;
			fv[i].values = pg->fields[i].values;
			fp[i] = &fv[i];
		}
		item.n_fields = pg->nfields;
		item.fields = fp;
	}
	if (tr_url_host_key(key, sizeof(key), item.url) != TR_OK)
		snprintf(key, sizeof(key), "invalid");
	size_t len = trawler__v1__item__get_packed_size(&item);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		rc = TR_ENOMEM;
		*reason = "out of memory building the item";
		goto out;
	}
	trawler__v1__item__pack(&item, buf);
	rd_kafka_resp_err_t e;
	while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(it->topic),
				      RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(buf, len),
				      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END)) ==
	       RD_KAFKA_RESP_ERR__QUEUE_FULL)
		rd_kafka_poll(rk, 100);
	if (e) {
		free(buf);
		*reason = rd_kafka_err2str(e);
		rc = TR_EIO;
		goto out;
	}
	const char *sink[] = {"items"};
	tr_metrics_inc(TR_METRIC_ITEMS_WRITTEN, sink, 1);
out:
	free(fv);
	free(fp);
	return rc;
}

static void items_destroy(void *state, void *payload)
{
	free(state);
}

const tr_handler tr_handler_items = {
    TR_HANDLER_ABI_VERSION, "items", items_create, items_process, NULL, items_destroy,
};
