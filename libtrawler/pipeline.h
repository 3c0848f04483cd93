/* pipeline.h - runs the consumer's handlers (handler.h) in order on each
 * page, flushes them before a commit, and loads plug-ins with dlopen.
 * Not thread-safe: one pipeline per consumer thread. */
#ifndef TR_PIPELINE_H
#define TR_PIPELINE_H

#include "handler.h"
#include "page.h"

typedef struct tr_pipeline tr_pipeline;

/* Empty pipeline, or NULL on allocation failure. */
tr_pipeline *tr_pipeline_new(void);

/* Append handler `h` with `config` (copied); calls h->create now. Returns 0,
 * or an error with a message in err (the handler is then not added and
 * none of its callbacks will run). */
int tr_pipeline_add(tr_pipeline *pl, const tr_handler *h, const char *config, void *payload,
		    char *err, size_t errlen);

/* dlopen `path`, resolve TR_HANDLER_ENTRY, check the ABI version and add
 * the handler. Same contract as tr_pipeline_add(). */
int tr_pipeline_add_plugin(tr_pipeline *pl, const char *path, const char *config, char *err,
			   size_t errlen);

/* A built-in handler by name ("jsonl", "xpath", ...), or NULL. */
const tr_handler *tr_pipeline_builtin(const char *name);

/* Run every handler on `pg` (`raw`: the consumed message value). A handler
 * error does not stop the others: `on_error(handler_name, reason, arg)` is
 * called for it and the page still counts as processed. Returns the number
 * of handler errors. */
int tr_pipeline_process(tr_pipeline *pl, tr_page *pg, const uint8_t *raw, size_t rawlen,
			void (*on_error)(const char *handler, const char *reason, void *arg),
			void *arg);

/* Flush every handler. Returns 0, or the first error (named in err). */
int tr_pipeline_flush(tr_pipeline *pl, char *err, size_t errlen);

/* For built-in handlers only (not part of the plug-in ABI): the page
 * behind a view. */
tr_page *tr_pipeline_page(tr_page_view *view);

/* Value of `key` in a handler config string "key=value,key=value" copied to
 * out (NUL-terminated, cut to outlen). Returns true when present. */
bool tr_pipeline_conf(const char *config, const char *key, char *out, size_t outlen);

/* Flush, destroy every handler, dlclose plug-ins, free. NULL is a no-op. */
void tr_pipeline_free(tr_pipeline *pl);

/* As tr_pipeline_free() but without the final flush: after a fatal error
 * the unflushed output belongs to pages that were not marked done (they
 * will be redelivered), so it is dropped. */
void tr_pipeline_discard(tr_pipeline *pl);

#endif
