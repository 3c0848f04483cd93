/* deadletter.h - the DeadLetter message (proto/trawler.proto) for a Kafka
 * message that could not be processed. */
#ifndef TR_DEADLETTER_H
#define TR_DEADLETTER_H

#include <librdkafka/rdkafka.h>

#include "common.h"

#define TR_DEADLETTER_MAX_ORIGINAL 65536 /* bytes of the original value kept */

/* Pack a DeadLetter for message `m` consumed from `source_topic`, with
 * `stage` ("producer:decode", "handler:NAME", ...) and `reason`, and count
 * it in trawler_dead_letters_total{stage}. Returns a malloc'd buffer (the
 * caller frees it, or hands it to librdkafka with RD_KAFKA_MSG_F_FREE) and
 * its length in *len, or NULL on allocation failure. */
uint8_t *tr_deadletter_pack(const rd_kafka_message_t *m, const char *source_topic,
			    const char *stage, const char *reason, const char *worker_id,
			    size_t *len);

#endif
