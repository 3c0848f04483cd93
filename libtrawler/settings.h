/* settings.h - every option of every trawler executable, declared once.
 *
 * The table in settings.c is the single source for parsing, defaults,
 * `--help` and docs/options.md (`trawlerctl options-doc`). Precedence:
 * built-in default < config file (--config FILE) < environment (TRAWLER_*)
 * < command-line flags. Keys starting with `kafka.` pass through to
 * librdkafka unchanged (config file or `--kafka.KEY=VALUE`).
 */
#ifndef TR_SETTINGS_H
#define TR_SETTINGS_H

#include <stdio.h>

#include "common.h"

/* Which executables an option applies to. */
#define TR_EXE_PRODUCER 0x1u /* trawler-producer */
#define TR_EXE_CONSUMER 0x2u /* trawler-consumer */
#define TR_EXE_CTL 0x4u	     /* trawlerctl */
#define TR_EXE_WORKERS (TR_EXE_PRODUCER | TR_EXE_CONSUMER)
#define TR_EXE_ALL (TR_EXE_PRODUCER | TR_EXE_CONSUMER | TR_EXE_CTL)

#define TR_SETTINGS_MAX_PASSTHROUGH 64

typedef struct tr_settings {
	/* common */
	char *brokers;
	char *redis;
	char *crawl_id;
	char *frontier_topic;
	char *pages_topic;
	char *items_topic;
	char *dlq_topic;
	char *group;
	char *worker_id;
	char *log_format;
	char *log_level;
	bool exit_when_done;
	double stop_timeout;
	double connect_check_timeout;
	long metrics_port;
	char *metrics_bind;
	/* producer */
	long concurrency;
	double delay;
	long host_connections;
	char *politeness; /* host, domain or ip (polite.h) */
	bool sitemaps;	  /* seed robots.txt Sitemap: URLs and follow sitemaps */
	long sitemap_max_urls;
	long sitemap_max_bytes;
	bool validators;     /* conditional GET with the validator store */
	long validators_ttl; /* seconds a site's validators are kept */
	bool revisit;	     /* trawlerctl seed: also the stored URLs of the seed hosts */
	long revisit_max;
	bool seed_render; /* trawlerctl seed: mark the seeds render (CrawlRequest field 14) */
	char *resolve;	  /* fixed addresses HOST:PORT:ADDR,... */
	double timeout;
	double connect_timeout;
	long low_speed_limit;
	double low_speed_time;
	long max_body;
	char *user_agent;
	bool allow_private;
	long max_redirects;
	long max_queued;
	long max_unacked_mb;
	long max_attempts;
	char *allow_address;
	char *ca_file;
	char *content_types;
	bool robots;
	double robots_ttl;
	double robots_retry;
	double retry_base;
	double retry_max;
	char *render_regex; /* "" = render only requests marked render */
	long render_tabs;
	double render_timeout;
	char *render_wait;
	long render_max_dom;
	char *render_block;
	char *chromium; /* "" = search the usual places */
	/* consumer */
	char *out;
	long max_depth;
	long max_links;
	bool follow_nofollow;
	char *scope;
	char *allow_regex;
	char *deny_regex;
	long max_url_length;
	char *strip_params;
	bool sort_query;
	long max_pages_per_host;
	long dedup_buckets;
	char *head_extensions;
	char *extract; /* rules file for the xpath and json handlers, "" = off */
	char *plugin;
	bool items;
	char *plugin_config;
	char *postgres;
	char *postgres_table;
	long jsonl_max_bytes;
	bool warc;
	long warc_max_bytes;
	double lease;
	long fault_skip_publish;
	bool transactional;
	char *transactional_id;	 /* "" = derived from the group and worker id */
	char *fault_crash_point; /* testing: "", "before-commit" or "after-commit" */
	long fault_crash_batch;
	char *range;
	char *method;
	/* ctl */
	long partitions;
	char *dedup;
	double bloom_capacity;
	double bloom_error;
	double wait_timeout;
	double health_max_age;
	bool watch;
	/* kafka.* pass-through: parallel arrays, owned */
	char *kafka_keys[TR_SETTINGS_MAX_PASSTHROUGH];
	char *kafka_values[TR_SETTINGS_MAX_PASSTHROUGH];
	int kafka_count;
} tr_settings;

/* Load settings for executable `exe` (one TR_EXE_* bit) from defaults, the
 * config file, the environment and argv (in that order of precedence).
 * Non-option arguments are returned in `*positional` (an array of pointers
 * into argv, malloc'd, caller frees the array only) and `*npositional`.
 * `--help` sets *help_out to true and returns 0.
 * Returns 0, or TR_EINVAL with a message naming the option and the accepted
 * range written to `err`. On failure `s` must still be released with
 * tr_settings_free(). Not thread-safe; reads files and the environment. */
int tr_settings_load(tr_settings *s, unsigned exe, int argc, char **argv, char ***positional,
		     int *npositional, bool *help_out, char *err, size_t errlen);

/* Release everything tr_settings_load() allocated. Safe on a zeroed struct. */
void tr_settings_free(tr_settings *s);

/* Print `--help` text for `exe` to `f`. */
void tr_settings_print_help(FILE *f, unsigned exe, const char *usage);

/* Print the options reference (markdown) for every executable to `f`. */
void tr_settings_print_markdown(FILE *f);

#endif
