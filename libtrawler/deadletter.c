/* deadletter.c - DeadLetter messages for unprocessable input. */
#include <stdlib.h>

#include "deadletter.h"
#include "metrics.h"
#include "trawler.pb-c.h"

uint8_t *tr_deadletter_pack(const rd_kafka_message_t *m, const char *source_topic,
			    const char *stage, const char *reason, const char *worker_id,
			    size_t *len)
{
	Trawler__V1__DeadLetter dl = TRAWLER__V1__DEAD_LETTER__INIT;
	dl.reason = (char *)reason;
	dl.stage = (char *)stage;
	dl.source_topic = (char *)source_topic;
	dl.partition = m->partition;
	dl.offset = m->offset;
	dl.original.data = m->payload;
	dl.original.len = m->len > TR_DEADLETTER_MAX_ORIGINAL ? TR_DEADLETTER_MAX_ORIGINAL : m->len;
	if (m->len > TR_DEADLETTER_MAX_ORIGINAL)
		tr_metrics_limit_hit("deadletter_original");
	dl.at_ms = tr_now_ms();
	dl.worker_id = (char *)worker_id;
	*len = trawler__v1__dead_letter__get_packed_size(&dl);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (buf) {
		trawler__v1__dead_letter__pack(&dl, buf);
		const char *labels[] = {stage};
		tr_metrics_inc(TR_METRIC_DEAD_LETTERS, labels, 1);
	}
	return buf;
}
