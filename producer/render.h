/* render.h - the render fetch mode: pages loaded in headless Chromium (one
 * long-lived browser per producer, a pool of tabs, DevTools protocol over a
 * pipe), published as one FetchResult each with the rendered DOM as body
 * and rendered = true. docs/render.md describes the behaviour.
 *
 * Every request the page makes (the main document, its redirects and every
 * sub-resource) is paused by the browser and decided here: blocked resource
 * types and non-HTTP schemes are failed, the SSRF guard (same rules as
 * fetch.c) refuses private addresses, then the caller's check callback
 * applies robots.txt and politeness.
 *
 * Driven from the producer's loop: poll tr_render_waitfds(), call
 * tr_render_perform(). Not thread-safe.
 */
#ifndef TR_RENDER_H
#define TR_RENDER_H

#include "fetch.h"

typedef struct tr_render_opts {
	const char *binary;	 /* "" = search (see tr_render_find_binary) */
	long tabs;		 /* pages rendered at once */
	double timeout;		 /* seconds per page */
	const char *wait;	 /* "load", "networkidle" or "selector:CSS" */
	long max_dom;		 /* DOM bytes kept (cut + truncated beyond) */
	const char *block_types; /* comma list of DevTools resource types */
	const char *user_agent;
	bool allow_private;	   /* as tr_fetch_opts */
	const char *allow_address; /* as tr_fetch_opts */
	const char *worker_id;
} tr_render_opts;

typedef struct tr_render tr_render;

/* Decide a request the page makes. Return 0 to let it go, or a FetchError
 * value to fail it (ERROR_ROBOTS_DISALLOWED, ...) with *why (static text)
 * as the reason. `main_doc` is true for the page itself and its redirect
 * hops. Set *polite when the request counts against the page's host: such
 * sub-resources go one at a time, not before *not_before_ms (monotonic). */
typedef int (*tr_render_check_cb)(const char *url, bool main_doc, void *ctx, void *payload,
				  int64_t *not_before_ms, bool *polite, const char **why);

/* A polite request of the page (ctx) went out or was answered: the host's
 * delay counts from now. */
typedef void (*tr_render_send_cb)(void *ctx, void *payload);

/* Returns 0 and *out, TR_EINVAL for a bad wait condition or allow_address
 * list (logged), or TR_ENOMEM. No browser is started until the first page.
 * When no browser binary is found, it logs a warning and every page gets
 * ERROR_RENDER_UNAVAILABLE. `done` has tr_fetcher's contract (returning
 * true takes res->request). Options are copied. */
int tr_render_new(tr_render **out, const tr_render_opts *o, tr_fetch_done_cb done,
		  tr_render_check_cb check, tr_render_send_cb send, void *payload);

/* Stop the browser (SIGKILL to its process group), remove its profile
 * directory, free requests still held without calling `done`. */
void tr_render_free(tr_render *r);

/* Path of the browser binary that would be used for `configured` ("" =
 * search), written to out; false when there is none. Pure apart from
 * access(2). */
bool tr_render_find_binary(char *out, size_t outlen, const char *configured);

/* Render `req` (ownership moves here; freed after `done`). Pages wait for
 * a free tab in arrival order; the timeout counts from the tab. Returns 0,
 * or TR_ENOMEM after which `done` is never called and req is the
 * caller's. `done` is called only from tr_render_perform(). */
int tr_render_start(tr_render *r, Trawler__V1__CrawlRequest *req, void *ctx);

/* Do I/O with the browser, time pages out, restart a dead browser, call
 * `done` for finished pages. Returns the pages held (rendering + waiting). */
int tr_render_perform(tr_render *r);

/* File descriptors to wait on (at most `max`, 2 is enough); returns how
 * many were written. */
unsigned tr_render_waitfds(const tr_render *r, struct curl_waitfd *out, unsigned max);

/* Monotonic ms of the next timer (timeouts, held requests, selector
 * polls), INT64_MAX when none. */
int64_t tr_render_next_ms(const tr_render *r);

int tr_render_held(const tr_render *r);	   /* pages rendering or waiting */
int tr_render_waiting(const tr_render *r); /* pages waiting for a tab */

/* Process id of the running browser, 0 when none (logs, tests). */
long tr_render_browser_pid(const tr_render *r);

#endif
