/* handler.h - trawler-consumer's processing plug-in interface (versioned
 * ABI): a handler is a named table of callbacks that the pipeline runs, in
 * order, on every fetch result. Built-in handlers (links, xpath, json,
 * jsonl, warc, items, postgres) and user plug-ins (dlopen) use the same
 * table. This header is the whole contract a plug-in compiles against.
 *
 * Lifecycle (all on the consumer's thread, never concurrently):
 *   create  once at start-up, with the handler's configuration;
 *   process once per fetch result, in pipeline order;
 *   flush   before the consumer commits offsets: everything process()
 *           produced so far must be durable when flush() returns 0;
 *   destroy once at exit (after a final flush).
 * If create fails, no other callback is ever called for that handler.
 * Every callback gets the `payload` given at registration last.
 */
#ifndef TR_HANDLER_H
#define TR_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#define TR_HANDLER_ABI_VERSION 1

/* A plug-in exports this symbol (a function returning its table). */
#define TR_HANDLER_ENTRY "trawler_handler_v1"

typedef struct tr_page_view tr_page_view;

/* Read-only accessors for the page a handler is processing. Returned
 * strings are owned by the pipeline and valid during the callback. */
typedef struct tr_page_api {
	const char *(*url)(const tr_page_view *p); /* final URL */
	const char *(*requested_url)(const tr_page_view *p);
	const char *(*crawl_id)(const tr_page_view *p);
	uint32_t (*depth)(const tr_page_view *p);
	uint32_t (*status)(const tr_page_view *p);   /* 0: transport error */
	const char *(*error)(const tr_page_view *p); /* NULL when none */
	const char *(*content_type)(const tr_page_view *p);
	const char *(*header)(const tr_page_view *p, const char *name); /* final response */
	const uint8_t *(*body)(const tr_page_view *p, size_t *len);
	const char *(*title)(const tr_page_view *p); /* HTML <title> or NULL */
	int64_t (*fetched_at_ms)(const tr_page_view *p);
	/* Add a value to field `name` (both copied). Fields appear under
	 * "fields" in pages.jsonl, in items and in the database sink.
	 * Returns 0 or a negative error (cap reached, out of memory). */
	int (*add_field)(tr_page_view *p, const char *name, const char *value);
	/* Number of values of a field so far, and one of them. */
	size_t (*field_count)(const tr_page_view *p, const char *name);
	const char *(*field_value)(const tr_page_view *p, const char *name, size_t i);
	/* Follow an extra URL found by this handler (resolved against the page
	 * URL, then scoped and deduplicated like any link). Returns 0 or a
	 * negative error. */
	int (*add_link)(tr_page_view *p, const char *url);
	/* The serialized FetchResult protobuf as consumed (for archiving). */
	const uint8_t *(*raw_result)(const tr_page_view *p, size_t *len);
} tr_page_api;

typedef struct tr_handler {
	int abi_version; /* TR_HANDLER_ABI_VERSION */
	const char *name;
	/* Create state from `config` (the handler's `key=value,key=value`
	 * string, may be empty). Return 0 and *state, or a negative error. */
	int (*create)(void **state, const char *config, const tr_page_api *api, void *payload);
	/* Process one page. Return 0, or a negative error: the page then goes
	 * to the dead-letter topic with this handler's name and `*reason`
	 * (static or state-owned text), and still counts as processed. */
	int (*process)(void *state, tr_page_view *page, const char **reason, void *payload);
	/* Make everything produced so far durable. Return 0 or a negative
	 * error (the consumer then stops without committing). May be NULL. */
	int (*flush)(void *state, void *payload);
	/* Release the state. May be NULL. */
	void (*destroy)(void *state, void *payload);
} tr_handler;

/* Signature of the plug-in entry point named TR_HANDLER_ENTRY. */
typedef const tr_handler *(*tr_handler_entry_fn)(void);

#endif
