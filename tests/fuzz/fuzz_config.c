/* fuzz_config.c - libFuzzer target: the option loader (tr_settings_load) on
 * arbitrary configuration files and command lines. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "settings.h"

/*
 * Every input is used two ways:
 *  1. written to a temporary file and loaded with `--config FILE` by each
 *     executable kind (producer, consumer, trawlerctl);
 *  2. split at newlines into at most FUZZ_MAX_ARGS command-line arguments
 *     (arguments that mention "config" are left out, so no other file is
 *     ever read) and loaded the same way.
 * The process environment's TRAWLER_* variables are removed first, so the
 * defaults, the file and the flags alone decide.
 * Checked: no crash, leak or sanitizer report; a failure always has a
 * message; a success has every string option set, the numbers within their
 * documented ranges, a valid crawl id, and at most
 * TR_SETTINGS_MAX_PASSTHROUGH kafka.* pairs, none NULL.
 */

#define FUZZ_MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_path[64];

static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_config: %s: [%.300s]\n", what, detail != NULL ? detail : "(null)");
	abort();
}

static void fuzz_cleanup(void)
{
	if (fuzz_path[0])
		unlink(fuzz_path);
}

/* Remove every TRAWLER_* variable (TRAWLER_CONFIG included). */
static void fuzz_clean_env(void)
{
	extern char **environ;
	char name[256];
	bool again = true;

	while (again) {
		again = false;
		for (char **e = environ; e != NULL && *e != NULL; e++) {
			size_t n = strcspn(*e, "=");
			if (strncmp(*e, "TRAWLER_", 8) == 0 && n < sizeof(name)) {
				memcpy(name, *e, n);
				name[n] = '\0';
				unsetenv(name);
				again = true; /* environ changed under us: rescan */
				break;
			}
		}
	}
}

static void fuzz_init(void)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	fuzz_clean_env();
	snprintf(fuzz_path, sizeof(fuzz_path), "%s/fuzz_config.XXXXXX",
		 dir != NULL && *dir && strlen(dir) < 40 ? dir : "/tmp");
	if ((fd = mkstemp(fuzz_path)) < 0)
		fuzz_fail("mkstemp", fuzz_path);
	close(fd);
	atexit(fuzz_cleanup);
}

#define IN_RANGE(v, lo, hi) ((v) >= (lo) && (v) <= (hi))

static void fuzz_check(const tr_settings *s, const char *what)
{
	const char *const strings[] = {
	    s->brokers,	       s->redis,	 s->crawl_id,	   s->frontier_topic,
	    s->pages_topic,    s->items_topic,	 s->dlq_topic,	   s->log_format,
	    s->log_level,      s->metrics_bind,	 s->user_agent,	   s->allow_address,
	    s->ca_file,	       s->content_types, s->out,	   s->scope,
	    s->allow_regex,    s->deny_regex,	 s->strip_params,  s->head_extensions,
	    s->extract,	       s->plugin,	 s->plugin_config, s->postgres,
	    s->postgres_table, s->range,	 s->method,	   s->dedup};
	size_t i, n;

	for (i = 0; i < TR_ARRAY_LEN(strings); i++)
		if (strings[i] == NULL)
			fuzz_fail("string option left NULL", what);
	n = strlen(s->crawl_id);
	if (n < 1 || n > 100 ||
	    strspn(s->crawl_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				"0123456789-_.") != n)
		fuzz_fail("crawl id accepted", s->crawl_id);
	if (!IN_RANGE(s->stop_timeout, 0.1, 3600) ||
	    !IN_RANGE(s->connect_check_timeout, 0.5, 600) || !IN_RANGE(s->metrics_port, 0, 65535) ||
	    !IN_RANGE(s->concurrency, 1, 10000) || !IN_RANGE(s->delay, 0, 3600) ||
	    !IN_RANGE(s->host_connections, 1, 1000) || !IN_RANGE(s->timeout, 0.1, 3600) ||
	    !IN_RANGE(s->connect_timeout, 0.1, 600) ||
	    !IN_RANGE(s->low_speed_limit, 0, 100000000) || !IN_RANGE(s->low_speed_time, 1, 3600) ||
	    !IN_RANGE(s->max_body, 1024, 30000000) || !IN_RANGE(s->robots_ttl, 1, 2592000) ||
	    !IN_RANGE(s->robots_retry, 0.1, 86400) || !IN_RANGE(s->max_redirects, 0, 100) ||
	    !IN_RANGE(s->max_queued, 10, 10000000) || !IN_RANGE(s->max_attempts, 1, 100) ||
	    !IN_RANGE(s->retry_base, 0, 3600) || !IN_RANGE(s->retry_max, 0, 86400) ||
	    !IN_RANGE(s->max_depth, 0, 1000000) || !IN_RANGE(s->max_url_length, 0, 8192) ||
	    !IN_RANGE(s->max_pages_per_host, 0, 1000000000) ||
	    !IN_RANGE(s->max_links, 0, 1000000) || !IN_RANGE(s->dedup_buckets, 1, 16777216) ||
	    !IN_RANGE(s->jsonl_max_bytes, 0, 1099511627776L) ||
	    !IN_RANGE(s->warc_max_bytes, 0, 1099511627776L) || !IN_RANGE(s->lease, 1, 604800) ||
	    !IN_RANGE(s->fault_skip_publish, 0, 1000000) || !IN_RANGE(s->partitions, 1, 1000) ||
	    !IN_RANGE(s->bloom_capacity, 1000, 4e9) || !IN_RANGE(s->bloom_error, 1e-9, 0.5) ||
	    !IN_RANGE(s->wait_timeout, 0, 1e9))
		fuzz_fail("a number outside its range", what);
	if (!IN_RANGE(s->kafka_count, 0, TR_SETTINGS_MAX_PASSTHROUGH))
		fuzz_fail("kafka.* count", what);
	for (i = 0; i < (size_t)s->kafka_count; i++)
		if (s->kafka_keys[i] == NULL || s->kafka_values[i] == NULL)
			fuzz_fail("kafka.* pair NULL", what);
}

static void fuzz_load(unsigned exe, int argc, char **argv, const char *what)
{
	tr_settings s;
	char **pos = NULL, err[512];
	int npos = -1, rc;
	bool help = false;

	err[0] = '\0';
	rc = tr_settings_load(&s, exe, argc, argv, &pos, &npos, &help, err, sizeof(err));
	if (rc == TR_OK) {
		if (pos == NULL || npos < 0 || npos >= argc)
			fuzz_fail("positional arguments", what);
		for (int i = 0; i < npos; i++)
			if (pos[i] == NULL)
				fuzz_fail("positional argument NULL", what);
		fuzz_check(&s, what);
		free(pos);
	} else if (rc != TR_EINVAL && rc != TR_ENOMEM) {
		fuzz_fail("unexpected return code", what);
	} else if (rc == TR_EINVAL && err[0] == '\0') {
		fuzz_fail("failure without a message", what);
	}
	tr_settings_free(&s);
}

static const unsigned fuzz_exes[] = {TR_EXE_PRODUCER, TR_EXE_CONSUMER, TR_EXE_CTL};

/* 1. the input as a config file */
static void fuzz_file(const uint8_t *data, size_t size)
{
	char *argv[] = {(char *)"trawler-fuzz", (char *)"--config", fuzz_path, NULL};
	int fd = open(fuzz_path, O_WRONLY | O_TRUNC);
	size_t off = 0;

	if (fd < 0)
		fuzz_fail("open", fuzz_path);
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0)
			fuzz_fail("write", fuzz_path);
		off += (size_t)n;
	}
	close(fd);
	for (size_t i = 0; i < TR_ARRAY_LEN(fuzz_exes); i++)
		fuzz_load(fuzz_exes[i], 3, argv, "config file");
}

/* 2. the input as command-line arguments, one per line */
static void fuzz_args(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[FUZZ_MAX_ARGS + 2], *p, *nl;
	int argc = 0;

	if (copy == NULL)
		return;
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = (char *)"trawler-fuzz";
	for (p = copy; argc <= FUZZ_MAX_ARGS; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strstr(p, "config") == NULL)
			argv[argc++] = p;
		if (nl == NULL)
			break;
	}
	argv[argc] = NULL;
	for (size_t i = 0; i < TR_ARRAY_LEN(fuzz_exes); i++)
		fuzz_load(fuzz_exes[i], argc, argv, "command line");
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_path[0])
		fuzz_init();
	fuzz_file(data, size);
	fuzz_args(data, size);
	return 0;
}
