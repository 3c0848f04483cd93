/* kafka.c - librdkafka client set-up, reachability check, topic creation. */
#include <stdio.h>
#include <string.h>

#include "kafka.h"
#include <json-c/json.h>
#include <stdlib.h>

#include "log.h"
#include "metrics.h"

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	tr_log(level <= 3   ? TR_LOG_ERROR
	       : level <= 5 ? TR_LOG_WARN
			    : TR_LOG_DEBUG,
	       "librdkafka", 2, "facility", fac, "detail", buf);
}

/* Could the value of Kafka property k be a secret (never shown)? */
static bool secret_property(const char *k)
{
	static const char *const marks[] = {"password", "secret", "jaas", ".pem",
					    "oauthbearer.config"};
	bool secret = false;
	for (size_t i = 0; i < TR_ARRAY_LEN(marks); i++)
		secret = secret || strstr(k, marks[i]) != NULL;
	return secret;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
	char e[256];
	if (rd_kafka_conf_set(conf, k, v, e, sizeof(e)) != RD_KAFKA_CONF_OK) {
		if (secret_property(k)) /* librdkafka's reason may quote the value */
			snprintf(err, errlen, "kafka option %s rejected (value not shown)", k);
		else
			snprintf(err, errlen, "kafka option %s=%s rejected: %s", k, v, e);
		return TR_EINVAL;
	}
	return TR_OK;
}

/* Common configuration; pass-through options are applied last. */
static rd_kafka_conf_t *base_conf(const tr_settings *s, const char *const *kv, size_t nkv,
				  char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char maxmsg[32];
	snprintf(maxmsg, sizeof(maxmsg), "%d", TR_KAFKA_MAX_MESSAGE + 1024 * 1024);
	if (conf_set(conf, "bootstrap.servers", s->brokers, err, errlen) ||
	    conf_set(conf, "client.id", s->worker_id ? s->worker_id : "trawler", err, errlen) ||
	    conf_set(conf, "message.max.bytes", maxmsg, err, errlen) ||
	    conf_set(conf, "log.connection.close", "false", err, errlen) ||
	    conf_set(conf, "socket.connection.setup.timeout.ms", "5000", err, errlen))
		goto fail;
	for (size_t i = 0; i + 1 < nkv; i += 2)
		if (conf_set(conf, kv[i], kv[i + 1], err, errlen))
			goto fail;
	for (int i = 0; i < s->kafka_count; i++)
		if (conf_set(conf, s->kafka_keys[i], s->kafka_values[i], err, errlen))
			goto fail;
	rd_kafka_conf_set_log_cb(conf, kafka_log);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

rd_kafka_t *tr_kafka_producer_new(const tr_settings *s, const char *txn_id,
				  void (*dr_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *),
				  void *opaque, char *err, size_t errlen)
{
	static const char *const kv[] = {
	    "enable.idempotence",
	    "true",
	    "acks",
	    "all",
	    "linger.ms",
	    "5",
	    "compression.type",
	    "lz4",
	    "batch.size",
	    "1000000",
	    "queue.buffering.max.messages",
	    "500000",
	    "queue.buffering.max.kbytes", /* unacknowledged output held in memory */
	    "65536",
	    "message.copy.max.bytes", /* reference payloads, never copy them */
	    "0",
	};
	rd_kafka_conf_t *conf = base_conf(s, kv, TR_ARRAY_LEN(kv), err, errlen);
	rd_kafka_t *rk = NULL;
	char e[512];
	if (!conf)
		return NULL;
	/* set after the kafka.* pass-through: the transactional.id is the
	 * consumer's (--transactional-id), it would fence a shared one */
	if (txn_id && conf_set(conf, "transactional.id", txn_id, err, errlen)) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	if (dr_cb)
		rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_opaque(conf, opaque);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e));
	if (!rk) {
		snprintf(err, errlen, "cannot create Kafka producer: %s", e);
		rd_kafka_conf_destroy(conf);
	}
	return rk; /* conf now owned by rk */
}

/* librdkafka statistics: export each partition's consumer lag. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
	struct json_object *root = json_tokener_parse(json), *topics = NULL;
	TR_UNUSED(rk);
	TR_UNUSED(len);
	TR_UNUSED(opaque);
	if (root && json_object_object_get_ex(root, "topics", &topics)) {
		json_object_object_foreach(topics, tname, tobj)
		{
			struct json_object *parts = NULL;
			if (!json_object_object_get_ex(tobj, "partitions", &parts))
				continue;
			json_object_object_foreach(parts, pname, pobj)
			{
				struct json_object *lag = NULL;
				if (strcmp(pname, "-1") == 0 ||
				    !json_object_object_get_ex(pobj, "consumer_lag", &lag))
					continue;
				long long v = json_object_get_int64(lag);
				const char *labels[] = {tname, pname};
				if (v >= 0)
					tr_metrics_set(TR_METRIC_KAFKA_LAG, labels, (double)v);
			}
		}
	}
	json_object_put(root);
	return 0; /* json is freed by librdkafka */
}

rd_kafka_t *tr_kafka_consumer_new(const tr_settings *s, const char *group, bool auto_commit,
				  int prefetch_kb, int prefetch_msgs,
				  void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
						       rd_kafka_topic_partition_list_t *, void *),
				  void *opaque, char *err, size_t errlen)
{
	char prefetch[24];
	char min_msgs[24];
	char fetch_max[24];
	long long fetch_bytes = (long long)prefetch_kb * 1024;
	if (fetch_bytes > TR_KAFKA_MAX_MESSAGE + 1024 * 1024)
		fetch_bytes = TR_KAFKA_MAX_MESSAGE + 1024 * 1024;
	snprintf(prefetch, sizeof(prefetch), "%d", prefetch_kb);
	snprintf(min_msgs, sizeof(min_msgs), "%d", prefetch_msgs);
	snprintf(fetch_max, sizeof(fetch_max), "%lld", fetch_bytes);
	const char *kv[] = {
	    "group.id",
	    group,
	    "enable.auto.offset.store",
	    "false",
	    "enable.auto.commit",
	    auto_commit ? "true" : "false",
	    "auto.commit.interval.ms",
	    "1000",
	    "auto.offset.reset",
	    "earliest",
	    "enable.partition.eof",
	    "false",
	    "session.timeout.ms",
	    "10000",
	    "heartbeat.interval.ms",
	    "1000",
	    "max.poll.interval.ms",
	    "300000",
	    "fetch.wait.max.ms",
	    "50",
	    "queued.max.messages.kbytes",
	    prefetch,
	    "queued.min.messages", /* per partition */
	    min_msgs,
	    /* librdkafka 2.0 backs a partition's fetching off by this much when
	     * the prefetch caps above are reached (2.1 added fetch.queue.backoff.ms):
	     * the default 500 ms starved the consumers once prefetch was bounded */
	    "fetch.error.backoff.ms",
	    "20",
	    /* one Fetch response is allocated whole, and librdkafka sizes
	     * fetch.max.bytes as max(prefetch, message.max.bytes): with the
	     * 33 MiB of base_conf() a frontier backlog spread over many
	     * partitions arrived as one 16 MiB+ buffer. A larger message still
	     * comes through (the broker always returns the first batch, KIP-74),
	     * and a kafka.message.max.bytes pass-through raises both. */
	    "message.max.bytes",
	    fetch_max,
	    "partition.assignment.strategy",
	    "range,roundrobin",
	    /* librdkafka's default, pinned: transactional consumers' outputs
	     * (frontier, items) are read only once committed, and committed
	     * offsets are read only when stable (no transaction pending) */
	    "isolation.level",
	    "read_committed",
	};
	rd_kafka_conf_t *conf = base_conf(s, kv, TR_ARRAY_LEN(kv), err, errlen);
	rd_kafka_t *rk = NULL;
	char e[512];
	if (!conf)
		return NULL;
	if (rebalance_cb)
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
	if (s->metrics_port > 0 && rd_kafka_conf_set(conf, "statistics.interval.ms", "5000", e,
						     sizeof(e)) == RD_KAFKA_CONF_OK)
		rd_kafka_conf_set_stats_cb(conf, on_stats);
	rd_kafka_conf_set_opaque(conf, opaque);
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
	if (!rk) {
		snprintf(err, errlen, "cannot create Kafka consumer: %s", e);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

rd_kafka_t *tr_kafka_reader_new(const tr_settings *s, char *err, size_t errlen)
{
	static const char *const kv[] = {
	    "group.id",
	    "trawlerctl-reader", /* never joined: assign() only */
	    "enable.auto.commit",
	    "false",
	    "enable.auto.offset.store",
	    "false",
	    "enable.partition.eof",
	    "true",
	    "isolation.level",
	    "read_committed",
	};
	rd_kafka_conf_t *conf = base_conf(s, kv, TR_ARRAY_LEN(kv), err, errlen);
	rd_kafka_t *rk = NULL;
	char e[512];
	if (!conf)
		return NULL;
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e));
	if (!rk) {
		snprintf(err, errlen, "cannot create Kafka consumer: %s", e);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

int tr_kafka_check(rd_kafka_t *rk, const char *brokers, double timeout_s, char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, (int)(timeout_s * 1000));
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		snprintf(err, errlen, "Kafka at %s unreachable within %.0f s: %s", brokers,
			 timeout_s, rd_kafka_err2str(e));
		return TR_EIO;
	}
	rd_kafka_metadata_destroy(md);
	return TR_OK;
}

int tr_kafka_create_topics(rd_kafka_t *rk, const char *const *topics, int ntopics, int partitions,
			   double timeout_s, char *err, size_t errlen)
{
	int rc = TR_OK;
	char maxmsg[32], e[256];
	rd_kafka_NewTopic_t *nt[16];
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *opts =
	    rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_event_t *ev = NULL;
	if (ntopics > 16)
		ntopics = 16;
	snprintf(maxmsg, sizeof(maxmsg), "%d", TR_KAFKA_MAX_MESSAGE + 1024 * 1024);
	rd_kafka_AdminOptions_set_operation_timeout(opts, (int)(timeout_s * 1000), e, sizeof(e));
	rd_kafka_AdminOptions_set_request_timeout(opts, (int)(timeout_s * 1000), e, sizeof(e));
	for (int i = 0; i < ntopics; i++) {
		nt[i] = rd_kafka_NewTopic_new(topics[i], partitions, 1, e, sizeof(e));
		rd_kafka_NewTopic_set_config(nt[i], "max.message.bytes", maxmsg);
	}
	rd_kafka_CreateTopics(rk, nt, (size_t)ntopics, opts, q);
	ev = rd_kafka_queue_poll(q, (int)(timeout_s * 1000) + 2000);
	if (!ev) {
		snprintf(err, errlen, "Kafka: topic creation timed out");
		rc = TR_EIO;
		goto out;
	}
	if (rd_kafka_event_error(ev)) {
		snprintf(err, errlen, "Kafka: topic creation failed: %s",
			 rd_kafka_event_error_string(ev));
		rc = TR_EIO;
		goto out;
	}
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	size_t n = 0;
	const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
		if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			snprintf(err, errlen, "Kafka: cannot create topic %s: %s",
				 rd_kafka_topic_result_name(tr[i]),
				 rd_kafka_topic_result_error_string(tr[i]));
			rc = TR_EIO;
		}
	}
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (int i = 0; i < ntopics; i++)
		rd_kafka_NewTopic_destroy(nt[i]);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_queue_destroy(q);
	return rc;
}

int tr_kafka_delete_topics(rd_kafka_t *rk, const char *const *topics, int ntopics, double timeout_s,
			   char *err, size_t errlen)
{
	int rc = TR_OK;
	char e[256];
	rd_kafka_DeleteTopic_t *dt[16];
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *opts =
	    rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
	rd_kafka_event_t *ev = NULL;
	if (ntopics > 16)
		ntopics = 16;
	rd_kafka_AdminOptions_set_operation_timeout(opts, (int)(timeout_s * 1000), e, sizeof(e));
	rd_kafka_AdminOptions_set_request_timeout(opts, (int)(timeout_s * 1000), e, sizeof(e));
	for (int i = 0; i < ntopics; i++)
		dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
	rd_kafka_DeleteTopics(rk, dt, (size_t)ntopics, opts, q);
	ev = rd_kafka_queue_poll(q, (int)(timeout_s * 1000) + 2000);
	if (!ev || rd_kafka_event_error(ev)) {
		snprintf(err, errlen, "Kafka: topic deletion failed: %s",
			 ev ? rd_kafka_event_error_string(ev) : "timed out");
		rc = TR_EIO;
		goto out;
	}
	const rd_kafka_DeleteTopics_result_t *res = rd_kafka_event_DeleteTopics_result(ev);
	size_t n = 0;
	const rd_kafka_topic_result_t **tr = rd_kafka_DeleteTopics_result_topics(res, &n);
	for (size_t i = 0; i < n; i++) {
		rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
		if (te && te != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
			snprintf(err, errlen, "Kafka: cannot delete topic %s: %s",
				 rd_kafka_topic_result_name(tr[i]),
				 rd_kafka_topic_result_error_string(tr[i]));
			rc = TR_EIO;
		}
	}
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	for (int i = 0; i < ntopics; i++)
		rd_kafka_DeleteTopic_destroy(dt[i]);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_queue_destroy(q);
	return rc;
}

static int assigned_count(rd_kafka_t *rk)
{
	rd_kafka_topic_partition_list_t *parts = NULL;
	int n = -1; /* unknown: keep serving */
	if (rd_kafka_assignment(rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts)
		n = parts->cnt;
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	return n;
}

int tr_kafka_consumer_leave(rd_kafka_t *rk, rd_kafka_queue_t *q, int timeout_ms)
{
	int64_t deadline = tr_mono_ms() + timeout_ms;
	rd_kafka_message_t *msgs[64];
	int rc = TR_ETIMEDOUT;
	rd_kafka_unsubscribe(rk);
	while (rc != TR_OK && tr_mono_ms() < deadline) {
		ssize_t n = rd_kafka_consume_batch_queue(q, 20, msgs, TR_ARRAY_LEN(msgs));
		for (ssize_t i = 0; i < n; i++)
			rd_kafka_message_destroy(msgs[i]);
		if (assigned_count(rk) == 0)
			rc = TR_OK;
	}
	return rc;
}

void tr_kafka_default_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
				rd_kafka_topic_partition_list_t *parts)
{
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
		rd_kafka_assign(rk, parts);
	else
		rd_kafka_assign(rk, NULL);
}
