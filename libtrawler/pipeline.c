/* pipeline.c - ordered handler chain with plug-in loading. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "log.h"
#include "pipeline.h"

#define MAX_HANDLERS 32

struct tr_page_view {
	tr_page *pg;
	const uint8_t *raw;
	size_t rawlen;
	const char *err_name;
};

typedef struct stage {
	const tr_handler *h;
	void *state;
	void *payload;
	void *dl; /* dlopen handle of a plug-in, or NULL */
} stage;

struct tr_pipeline {
	stage st[MAX_HANDLERS];
	int n;
};

/* --- the page API handed to handlers --- */

static const Trawler__V1__FetchResult *R(const tr_page_view *p)
{
	return p->pg->res;
}

static const char *v_url(const tr_page_view *p)
{
	const char *u = R(p)->final_url;
	return u && *u ? u : R(p)->request->url;
}

static const char *v_requested_url(const tr_page_view *p)
{
	return R(p)->request->url;
}

static const char *v_crawl_id(const tr_page_view *p)
{
	return R(p)->request->crawl_id;
}

static uint32_t v_depth(const tr_page_view *p)
{
	return R(p)->request->depth;
}

static uint32_t v_status(const tr_page_view *p)
{
	return R(p)->status;
}

static const char *v_error(const tr_page_view *p)
{
	return R(p)->error ? tr_fetch_error_name(R(p)->error) : NULL;
}

static const char *v_content_type(const tr_page_view *p)
{
	return R(p)->content_type ? R(p)->content_type : "";
}

static const char *v_header(const tr_page_view *p, const char *name)
{
	return tr_fetch_header(R(p), name);
}

static const uint8_t *v_body(const tr_page_view *p, size_t *len)
{
	*len = R(p)->body.len;
	return R(p)->body.data;
}

static const char *v_title(const tr_page_view *p)
{
	return p->pg->links.title;
}

static int64_t v_fetched_at(const tr_page_view *p)
{
	return R(p)->fetched_at_ms;
}

static int v_add_field(tr_page_view *p, const char *name, const char *value)
{
	return tr_page_add_field(p->pg, name, value, false);
}

static size_t v_field_count(const tr_page_view *p, const char *name)
{
	const tr_field *f = tr_page_field(p->pg, name);
	return f ? f->count : 0;
}

static const char *v_field_value(const tr_page_view *p, const char *name, size_t i)
{
	const tr_field *f = tr_page_field(p->pg, name);
	return f && i < f->count ? f->values[i] : NULL;
}

static int v_add_link(tr_page_view *p, const char *url)
{
	return tr_page_add_link(p->pg, url);
}

static const uint8_t *v_raw(const tr_page_view *p, size_t *len)
{
	*len = p->rawlen;
	return p->raw;
}

static const tr_page_api page_api = {
    v_url,	    v_requested_url, v_crawl_id, v_depth, v_status,	v_error,
    v_content_type, v_header,	     v_body,	 v_title, v_fetched_at, v_add_field,
    v_field_count,  v_field_value,   v_add_link, v_raw,
};

tr_page *tr_pipeline_page(tr_page_view *view)
{
	return view->pg;
}

bool tr_pipeline_conf(const char *config, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	for (const char *p = config ? config : ""; *p;) {
		size_t n = strcspn(p, ",");
		if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			snprintf(out, outlen, "%.*s", (int)(n - klen - 1), p + klen + 1);
			return true;
		}
		p += n + (p[n] == ',');
	}
	return false;
}

/* --- built-in handlers are registered here --- */

extern const tr_handler tr_handler_jsonl;
extern const tr_handler tr_handler_warc;
extern const tr_handler tr_handler_xpath;
extern const tr_handler tr_handler_json;
extern const tr_handler tr_handler_items;
extern const tr_handler tr_handler_postgres;

static const tr_handler *const builtins[] = {
    &tr_handler_jsonl, &tr_handler_warc,  &tr_handler_xpath,
    &tr_handler_json,  &tr_handler_items, &tr_handler_postgres,
};

const tr_handler *tr_pipeline_builtin(const char *name)
{
	for (size_t i = 0; i < sizeof(builtins) / sizeof(*builtins); i++)
		if (strcmp(builtins[i]->name, name) == 0)
			return builtins[i];
	return NULL;
}

tr_pipeline *tr_pipeline_new(void)
{
	return calloc(1, sizeof(tr_pipeline));
}

static int add(tr_pipeline *pl, const tr_handler *h, const char *config, void *payload, void *dl,
	       char *err, size_t errlen)
{
	void *state = NULL;
	int rc;
	if (pl->n >= MAX_HANDLERS) {
		snprintf(err, errlen, "too many handlers (at most %d)", MAX_HANDLERS);
		return TR_EINVAL;
	}
	if (!h || h->abi_version != TR_HANDLER_ABI_VERSION || !h->name || !h->process) {
		snprintf(
		    err, errlen, "handler %s: ABI version %d, expected %d (or incomplete table)",
		    h && h->name ? h->name : "?", h ? h->abi_version : -1, TR_HANDLER_ABI_VERSION);
		return TR_EINVAL;
	}
	if (h->create && (rc = h->create(&state, config ? config : "", &page_api, payload)) != 0) {
		/* the config string is not echoed: it may hold a password */
		snprintf(err, errlen, "handler %s: configuration rejected (error %d)", h->name, rc);
		return rc < 0 ? rc : TR_EINVAL;
	}
	pl->st[pl->n].h = h;
	pl->st[pl->n].state = state;
	pl->st[pl->n].payload = payload;
	pl->st[pl->n].dl = dl;
	pl->n++;
	return TR_OK;
}

int tr_pipeline_add(tr_pipeline *pl, const tr_handler *h, const char *config, void *payload,
		    char *err, size_t errlen)
{
	return add(pl, h, config, payload, NULL, err, errlen);
}

int tr_pipeline_add_plugin(tr_pipeline *pl, const char *path, const char *config, char *err,
			   size_t errlen)
{
	int rc = TR_EINVAL;
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	tr_handler_entry_fn entry;
	if (!dl) {
		snprintf(err, errlen, "plugin %s: %s", path, dlerror());
		return TR_EINVAL;
	}
	*(void **)&entry = dlsym(dl, TR_HANDLER_ENTRY);
	if (!entry) {
		snprintf(err, errlen, "plugin %s: no symbol %s", path, TR_HANDLER_ENTRY);
		goto out;
	}
	rc = add(pl, entry(), config, NULL, dl, err, errlen);
out:
	if (rc != TR_OK)
		dlclose(dl);
	return rc;
}

int tr_pipeline_process(tr_pipeline *pl, tr_page *pg, const uint8_t *raw, size_t rawlen,
			void (*on_error)(const char *handler, const char *reason, void *arg),
			void *arg)
{
	tr_page_view view = {pg, raw, rawlen, NULL};
	int errors = 0;
	for (int i = 0; i < pl->n; i++) {
		const char *reason = NULL;
		stage *s = &pl->st[i];
		if (s->h->process(s->state, &view, &reason, s->payload) != 0) {
			errors++;
			if (on_error)
				on_error(s->h->name, reason ? reason : "handler error", arg);
		}
	}
	return errors;
}

int tr_pipeline_flush(tr_pipeline *pl, char *err, size_t errlen)
{
	for (int i = 0; i < pl->n; i++) {
		stage *s = &pl->st[i];
		int rc = s->h->flush ? s->h->flush(s->state, s->payload) : 0;
		if (rc != 0) {
			snprintf(err, errlen, "handler %s: flush failed (error %d)", s->h->name,
				 rc);
			return rc < 0 ? rc : TR_EIO;
		}
	}
	return TR_OK;
}

static void pipeline_destroy(tr_pipeline *pl)
{
	for (int i = pl->n - 1; i >= 0; i--) {
		stage *s = &pl->st[i];
		if (s->h->destroy)
			s->h->destroy(s->state, s->payload);
		if (s->dl)
			dlclose(s->dl);
	}
	free(pl);
}

void tr_pipeline_free(tr_pipeline *pl)
{
	char err[256];
	if (!pl)
		return;
	if (tr_pipeline_flush(pl, err, sizeof(err)) != TR_OK)
		tr_log(TR_LOG_ERROR, "final flush failed", 1, "error", err);
	pipeline_destroy(pl);
}

void tr_pipeline_discard(tr_pipeline *pl)
{
	if (pl)
		pipeline_destroy(pl);
}
