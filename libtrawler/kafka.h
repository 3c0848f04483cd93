/* kafka.h - librdkafka set-up shared by trawler's executables: client
 * configuration from settings, a start-up reachability check, topic
 * creation. */
#ifndef TR_KAFKA_H
#define TR_KAFKA_H

#include <librdkafka/rdkafka.h>

#include "settings.h"

/* Largest message trawler produces (a FetchResult with a capped body). */
#define TR_KAFKA_MAX_MESSAGE (32 * 1024 * 1024)

/* New producer: idempotent, acks=all, lz4, small linger; transactional
 * with transactional.id `txn_id` unless it is NULL (the caller then runs
 * rd_kafka_init_transactions() and produces only inside transactions).
 * `dr_cb` gets each delivery report (called from rd_kafka_poll/flush on
 * the caller's thread). Returns NULL with a message in err on failure. */
rd_kafka_t *tr_kafka_producer_new(const tr_settings *s, const char *txn_id,
				  void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
				  void *opaque, char *err, size_t errlen);

/* New consumer in `group`, isolation.level=read_committed: manual offset
 * store (enable.auto.offset.store=false) with auto commit of stored offsets
 * when `auto_commit`, else no auto commit at all; at most `prefetch_kb` KiB
 * and `prefetch_msgs` messages per partition fetched ahead.
 * `rebalance_cb` may be NULL. Returns NULL with a message in err on
 * failure. */
rd_kafka_t *tr_kafka_consumer_new(const tr_settings *s, const char *group, bool auto_commit,
				  int prefetch_kb, int prefetch_msgs,
				  void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
						       rd_kafka_topic_partition_list_t *, void *),
				  void *opaque, char *err, size_t errlen);

/* New consumer for reading a topic through once with assign() (never
 * joins its group, never commits): read_committed (kafka.isolation.level
 * overrides it), a partition-EOF event at each partition's end. Returns
 * NULL with a message in err on failure. */
rd_kafka_t *tr_kafka_reader_new(const tr_settings *s, char *err, size_t errlen);

/* Ask the cluster for metadata within timeout_s. Returns 0 or TR_EIO with
 * "Kafka at BROKERS unreachable ..." in err. Does network I/O. */
int tr_kafka_check(rd_kafka_t *rk, const char *brokers, double timeout_s, char *err, size_t errlen);

/* Create topics that do not exist yet (existing ones are left alone).
 * Returns 0 or TR_EIO with a message in err. */
int tr_kafka_create_topics(rd_kafka_t *rk, const char *const *topics, int ntopics, int partitions,
			   double timeout_s, char *err, size_t errlen);

/* Delete topics (missing ones are ignored). Returns 0 or TR_EIO with a
 * message in err. */
int tr_kafka_delete_topics(rd_kafka_t *rk, const char *const *topics, int ntopics, double timeout_s,
			   char *err, size_t errlen);

/* Leave the consumer group before rd_kafka_consumer_close(): unsubscribe,
 * then serve q (the consumer queue, so the rebalance callback runs here)
 * until nothing is assigned, for at most timeout_ms. Messages that arrive
 * meanwhile are destroyed unprocessed; their offsets are not stored, so
 * they are delivered again to the next owner.
 * Why: in librdkafka 2.0.2, close() serves a pending revoke by calling the
 * rebalance callback while the group terminates, and an rd_kafka_assign()
 * made there can wait forever (a worker hung in CI). After this call close()
 * has nothing left to revoke. Returns 0, or TR_ETIMEDOUT when partitions are
 * still assigned at the deadline (close() then revokes them itself). */
int tr_kafka_consumer_leave(rd_kafka_t *rk, rd_kafka_queue_t *q, int timeout_ms);

/* Default rebalance handling for eager assignors: assign/unassign. */
void tr_kafka_default_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
				rd_kafka_topic_partition_list_t *parts);

#endif
