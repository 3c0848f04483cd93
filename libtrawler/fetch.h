/* fetch.h - concurrent HTTP(S) fetching with libcurl's multi interface:
 * one FetchResult per started request, transport errors included.
 *
 * Not thread-safe: one tr_fetcher per thread. Connections, DNS answers and
 * TLS sessions are reused across transfers.
 */
#ifndef TR_FETCH_H
#define TR_FETCH_H

#include <curl/curl.h>

#include "common.h"
#include "trawler.pb-c.h"

/* Longest ETag / Last-Modified value sent back in a conditional GET. */
#define TR_FETCH_MAX_VALIDATOR 512

typedef struct tr_fetch_opts {
	long max_body;		/* body bytes kept; more aborts the transfer (truncated) */
	double timeout;		/* total seconds per transfer */
	double connect_timeout; /* seconds to connect */
	long low_speed_limit;	/* bytes/s; slower for low_speed_time aborts (0 = off) */
	double low_speed_time;
	long max_redirects;
	long max_total_conns; /* connection cap for the whole fetcher */
	long max_host_conns;  /* per-host connection cap (safety net) */
	const char *user_agent;
	bool allow_private;	   /* allow loopback/private/link-local targets */
	const char *allow_address; /* CIDR list exempt from the guard ("" = none) */
	const char *ca_file;	   /* extra PEM CA bundle ("" = none) */
	const char *content_types; /* media types whose bodies are downloaded
				      (comma list, "type/" = prefix, "*" = all) */
	const char *worker_id;
	const char *resolve; /* fixed addresses "HOST:PORT:ADDR,..." (CURLOPT_RESOLVE) */
} tr_fetch_opts;

typedef struct tr_fetcher tr_fetcher;

/* Called once per finished request. `res` is valid only during the call;
 * the callee packs or copies what it needs. Returning true takes ownership
 * of res->request (e.g. to retry it; free with
 * trawler__v1__crawl_request__free_unpacked); false leaves it to the
 * fetcher. `ctx` is what was given to tr_fetcher_start(); `payload` what
 * was given to tr_fetcher_new(). */
typedef bool (*tr_fetch_done_cb)(const Trawler__V1__FetchResult *res, void *ctx, void *payload);

/* Called right before each request goes on the wire (every redirect hop
 * too), with the ctx of its transfer: politeness counts from here. */
typedef void (*tr_fetch_send_cb)(void *ctx, void *payload);

/* Set the send callback (optional; same payload as the done callback). */
void tr_fetcher_on_send(tr_fetcher *f, tr_fetch_send_cb cb);

/* Returns 0 and a new fetcher in *out, TR_EINVAL for a malformed
 * allow_address list, or TR_ENOMEM. Options are copied (resolve is split
 * at commas and spaces; libcurl checks each entry when a transfer starts). */
int tr_fetcher_new(tr_fetcher **out, const tr_fetch_opts *opts, tr_fetch_done_cb cb, void *payload);
void tr_fetcher_free(tr_fetcher *f);

/* Start fetching `req` (ownership moves to the fetcher, freed with
 * trawler__v1__crawl_request__free_unpacked after the callback). A request
 * with `etag` / `last_modified` is sent as a conditional GET
 * (If-None-Match / If-Modified-Since; values with control bytes or longer
 * than TR_FETCH_MAX_VALIDATOR are not sent); a 304 answer sets
 * not_modified in the result. Returns 0,
 * or an error after which the callback is never called and req is still
 * the caller's. */
int tr_fetcher_start(tr_fetcher *f, Trawler__V1__CrawlRequest *req, void *ctx);

/* Drive transfers; run the callback for each finished one. Returns the
 * number of transfers still running. */
int tr_fetcher_perform(tr_fetcher *f);

/* Wait for network activity on transfers or `extra` fds, at most
 * timeout_ms. */
void tr_fetcher_wait(tr_fetcher *f, struct curl_waitfd *extra, unsigned nextra, int timeout_ms);

/* Transfers running now. */
int tr_fetcher_running(const tr_fetcher *f);

/* True when `sa` is a loopback, private, link-local, multicast, CGNAT or
 * unspecified address (the SSRF guard's definition). */
bool tr_fetch_addr_is_private(const struct sockaddr *sa);

/* Is `content_type` (a Content-Type value, parameters ignored) in the comma
 * list `list`? "text/html" matches exactly (case-insensitive), "text/"
 * matches any text type, "*", an empty list or an empty type match all. */
bool tr_fetch_type_allowed(const char *list, const char *content_type);

/* Value of the first header `name` (case-insensitive) of the final
 * response, or NULL. Points into res. */
const char *tr_fetch_header(const Trawler__V1__FetchResult *res, const char *name);

/* Milliseconds to wait from a Retry-After header (delta seconds or an
 * HTTP date, RFC 9110 10.2.3), or -1 when absent or unparseable. */
int64_t tr_fetch_retry_after_ms(const Trawler__V1__FetchResult *res);

/* Parse a comma-separated CIDR list ("127.0.0.2/32,::1/128"; a bare
 * address means a single host) and report whether `sa` is in it. Returns
 * 1 (in), 0 (not in) or TR_EINVAL (malformed list). Pure. */
int tr_fetch_addr_in_list(const char *cidrs, const struct sockaddr *sa);

/* Name of a FetchError value ("dns", "timeout", ...). */
const char *tr_fetch_error_name(Trawler__V1__FetchError e);

#endif
