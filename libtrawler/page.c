/* page.c - per-page processing: link following decisions and the JSONL line. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"
#include "htmlinput.h"
#include "jsonw.h"
#include "metrics.h"
#include "utf8.h"
#include "page.h"
#include "request.h"
#include "sitemap.h"
#include "url.h"

bool tr_page_wants_head(const char *url, const char *exts)
{
	const char *path = strstr(url, "://");
	if (!exts || !*exts || !path)
		return false;
	path = strchr(path + 3, '/');
	if (!path)
		return false;
	size_t plen = strcspn(path, "?#");
	const char *dot = NULL;
	for (const char *q = path; q < path + plen; q++) {
		if (*q == '/')
			dot = NULL;
		else if (*q == '.')
			dot = q;
	}
	if (!dot)
		return false;
	size_t elen = (size_t)(path + plen - dot - 1);
	for (const char *e = exts; *e;) {
		size_t n = strcspn(e, ",");
		if (n == elen && strncasecmp(e, dot + 1, n) == 0)
			return true;
		e += n + (e[n] == ',');
	}
	return false;
}

bool tr_page_is_html_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "text/html", 9) == 0 ||
	       strncasecmp(ct, "application/xhtml+xml", 21) == 0;
}

/* Keep canonical URL `cu` for following if in scope, within depth and new
 * (after the crawl's query rules). */
/* Fingerprints already followed from one sitemap: open addressing, 0 is
 * the empty slot (a zero fingerprint is simply never deduplicated here). */
typedef struct fpset {
	uint64_t *slot;
	size_t cap, n;
} fpset;

/* Add fp; returns 1 when new, 0 when present, TR_ENOMEM. */
static int fpset_add(fpset *s, uint64_t fp)
{
	if (!fp)
		return 1;
	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		uint64_t *ns = calloc(cap, sizeof(*ns));
		if (!ns)
			return TR_ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->slot[i])
				continue;
			size_t k = (size_t)s->slot[i] & (cap - 1);
			while (ns[k])
				k = (k + 1) & (cap - 1);
			ns[k] = s->slot[i];
		}
		free(s->slot);
		s->slot = ns;
		s->cap = cap;
	}
	size_t k = (size_t)fp & (s->cap - 1);
	while (s->slot[k]) {
		if (s->slot[k] == fp)
			return 0;
		k = (k + 1) & (s->cap - 1);
	}
	s->slot[k] = fp;
	s->n++;
	return 1;
}

static int follow_url(tr_page *pg, const char *cu, fpset *seen);

static int follow(tr_page *pg, const char *cu)
{
	return follow_url(pg, cu, NULL);
}

/* seen NULL: in-page duplicates found by a linear scan (HTML pages, at
 * most --max-links); otherwise by the set (sitemaps, up to 50,000 URLs). */
static int follow_url(tr_page *pg, const char *cu, fpset *seen)
{
	char key[300];
	char *u = NULL;
	int rc = TR_OK;
	uint32_t depth = pg->res->request ? pg->res->request->depth : 0;
	if (!pg->crawl)
		return TR_OK;
	if ((long)depth + 1 > pg->max_depth) {
		tr_metrics_limit_hit("max_depth");
		return TR_OK;
	}
	if (pg->scope && tr_scope_normalize(pg->scope, &u, cu) != TR_OK)
		return TR_ENOMEM;
	const char *url = u ? u : cu;
	if (tr_url_host_key_canonical(key, sizeof(key), url) != TR_OK)
		goto out;
	if (pg->scope) {
		int why = tr_scope_check(pg->scope, pg->crawl, url, key);
		pg->offsite += why == TR_SCOPE_OFFSITE;
		pg->denied += why == TR_SCOPE_DENIED;
		pg->too_long += why == TR_SCOPE_TOO_LONG;
		if (why != TR_SCOPE_OK)
			goto out;
	} else if (!tr_crawl_in_scope(pg->crawl, key)) {
		pg->offsite++;
		goto out;
	}
	uint64_t fp = tr_url_fingerprint(url, strlen(url));
	for (size_t i = 0; !seen && i < pg->nfollow; i++)
		if (pg->follow_fps[i] == fp && strcmp(pg->follow_urls[i], url) == 0)
			goto out;
	if (seen && (rc = fpset_add(seen, fp)) != 1) {
		rc = rc == 0 ? TR_OK : rc;
		goto out;
	}
	rc = TR_OK;
	if (pg->nfollow == pg->follow_cap) {
		size_t cap = pg->follow_cap ? pg->follow_cap * 2 : 32;
		char **nu = realloc(pg->follow_urls, cap * sizeof(*nu));
		if (!nu) {
			rc = TR_ENOMEM;
			goto out;
		}
		pg->follow_urls = nu;
		uint64_t *nf = realloc(pg->follow_fps, cap * sizeof(*nf));
		if (!nf) {
			rc = TR_ENOMEM;
			goto out;
		}
		pg->follow_fps = nf;
		pg->follow_cap = cap;
	}
	if (!(pg->follow_urls[pg->nfollow] = strdup(url))) {
		rc = TR_ENOMEM;
		goto out;
	}
	pg->follow_fps[pg->nfollow++] = fp;
out:
	free(u);
	return rc;
}

int tr_page_add_link(tr_page *pg, const char *ref)
{
	char *u = NULL;
	const Trawler__V1__FetchResult *r = pg->res;
	const char *base = r->final_url && *r->final_url ? r->final_url : r->request->url;
	int rc = tr_url_resolve(&u, base, ref);
	if (rc == TR_OK)
		rc = follow(pg, u);
	free(u);
	return rc == TR_ETOOBIG ? TR_EINVAL : rc;
}

static tr_field *field_find(const tr_page *pg, const char *name)
{
	for (size_t i = 0; i < pg->nfields; i++)
		if (strcmp(pg->fields[i].name, name) == 0)
			return &pg->fields[i];
	return NULL;
}

const tr_field *tr_page_field(const tr_page *pg, const char *name)
{
	return field_find(pg, name);
}

int tr_page_add_field(tr_page *pg, const char *name, const char *value, bool list)
{
	tr_field *f = field_find(pg, name);
	size_t vlen = strlen(value);
	if (pg->nvalues >= TR_PAGE_MAX_FIELD_VALUES) {
		tr_metrics_limit_hit("field_values");
		return TR_ETOOBIG;
	}
	if (!f) {
		if (pg->nfields == pg->fields_cap) {
			size_t cap = pg->fields_cap ? pg->fields_cap * 2 : 8;
			tr_field *nf = realloc(pg->fields, cap * sizeof(*nf));
			if (!nf)
				return TR_ENOMEM;
			pg->fields = nf;
			pg->fields_cap = cap;
		}
		f = &pg->fields[pg->nfields];
		memset(f, 0, sizeof(*f));
		if (!(f->name = strdup(name)))
			return TR_ENOMEM;
		pg->nfields++;
	}
	if (f->count == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4;
		char **nv = realloc(f->values, cap * sizeof(*nv));
		if (!nv)
			return TR_ENOMEM;
		f->values = nv;
		f->cap = cap;
	}
	if (vlen > TR_PAGE_MAX_VALUE_BYTES) {
		tr_metrics_limit_hit("field_value_bytes");
		vlen = TR_PAGE_MAX_VALUE_BYTES;
		while (vlen > 0 && ((unsigned char)value[vlen] & 0xC0) == 0x80)
			vlen--; /* do not split a UTF-8 sequence */
	}
	if (!(f->values[f->count] = tr_utf8_clean(value, vlen)))
		return TR_ENOMEM;
	f->count++;
	f->list = f->list || list;
	pg->nvalues++;
	return TR_OK;
}

static bool is_xml_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "text/xml", 8) == 0 || strncasecmp(ct, "application/xml", 15) == 0;
}

struct loc_ctx {
	tr_page *pg;
	fpset seen;
	int rc;
};

static void on_loc(const char *loc, void *payload)
{
	struct loc_ctx *lc = payload;
	char *u = NULL;
	const Trawler__V1__FetchResult *r = lc->pg->res;
	const char *base = r->final_url && *r->final_url ? r->final_url : r->request->url;
	if (lc->rc == TR_OK && tr_url_resolve(&u, base, loc) == TR_OK &&
	    follow_url(lc->pg, u, &lc->seen) == TR_ENOMEM)
		lc->rc = TR_ENOMEM;
	free(u);
}

/* A sitemap's locs become the links to follow. Returns 0 or TR_ENOMEM. */
static int process_sitemap(tr_page *pg, const tr_page_opts *o)
{
	const Trawler__V1__FetchResult *res = pg->res;
	struct loc_ctx lc = {pg, {NULL, 0, 0}, TR_OK};
	int kind =
	    tr_sitemap_parse(res->body.data, res->body.len, (size_t)o->sitemap_max_bytes,
			     (size_t)o->sitemap_max_urls, on_loc, &lc, &pg->sitemap_truncated);
	free(lc.seen.slot);
	if (kind < 0)
		return kind;
	pg->sitemap = kind;
	return lc.rc;
}

int tr_page_process(tr_page *pg, const Trawler__V1__FetchResult *res, const tr_crawl_info *crawl,
		    const tr_page_opts *o)
{
	int rc = TR_OK;
	char charset[64];
	memset(pg, 0, sizeof(*pg));
	pg->res = res;
	pg->crawl = crawl;
	pg->scope = o->scope;
	pg->max_depth = o->max_depth;
	pg->fp = res->request ? res->request->fingerprint : 0;
	pg->failed = res->error != TRAWLER__V1__FETCH_ERROR__ERROR_NONE;
	pg->is_html = tr_page_is_html_type(res->content_type);
	if (o->sitemaps && !pg->failed && !pg->is_html && res->status >= 200 &&
	    res->status <= 299 && res->body.len && res->request &&
	    (tr_request_is_sitemap(res->request) || is_xml_type(res->content_type)))
		return process_sitemap(pg, o);
	if (pg->failed || !pg->is_html || res->status < 200 || res->status > 299 || !res->body.len)
		return TR_OK;

	const char *url = res->final_url && *res->final_url ? res->final_url : res->request->url;
	rc = tr_links_extract_charset(
	    &pg->links, (const char *)res->body.data, res->body.len, url,
	    tr_html_charset_of(res->content_type, charset, sizeof(charset)), (size_t)o->max_links);
	if (rc != TR_OK) {
		/* unparseable: recorded with no links */
		memset(&pg->links, 0, sizeof(pg->links));
		return rc == TR_ENOMEM ? TR_ENOMEM : TR_OK;
	}
	for (size_t i = 0; i < pg->links.count; i++) {
		/* robots meta nofollow on the page, or rel=nofollow on the link */
		if (!o->follow_nofollow &&
		    (pg->links.meta_nofollow || (pg->links.items[i].flags & TR_LINK_NOFOLLOW))) {
			pg->nofollow++;
			continue;
		}
		if ((rc = follow(pg, pg->links.items[i].url)) == TR_ENOMEM)
			return rc;
	}
	return TR_OK;
}

int tr_page_jsonl(tr_buf *b, const tr_page *pg)
{
	const Trawler__V1__FetchResult *r = pg->res;
	const Trawler__V1__CrawlRequest *q = r->request;
	const char *url = r->final_url && *r->final_url ? r->final_url : (q ? q->url : "");
	int rc = tr_buf_add(b, "{", 1);
	if (!rc)
		rc = tr_jsonw_kv_str(b, true, "url", url);
	if (!rc && q && q->url && strcmp(q->url, url) != 0)
		rc = tr_jsonw_kv_str(b, false, "requested_url", q->url);
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "status", r->status);
	if (!rc && pg->failed)
		rc = tr_jsonw_kv_str(b, false, "error", tr_fetch_error_name(r->error));
	if (!rc && pg->failed && r->error_message)
		rc = tr_jsonw_kv_str(b, false, "error_message", r->error_message);
	if (!rc)
		rc = tr_jsonw_kv_str(b, false, "content_type",
				     r->content_type ? r->content_type : "");
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "depth", q ? q->depth : 0);
	if (!rc && pg->links.title)
		rc = tr_jsonw_kv_str(b, false, "title", pg->links.title);
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "links", (long long)pg->links.count);
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "followed", (long long)pg->nfollow);
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "bytes", (long long)r->body.len);
	if (!rc && r->truncated)
		rc = tr_jsonw_kv_bool(b, false, "truncated", true);
	if (!rc && pg->sitemap)
		rc = tr_jsonw_kv_str(b, false, "sitemap",
				     pg->sitemap == TR_SITEMAP_INDEX ? "index" : "urlset");
	if (!rc && pg->sitemap_truncated)
		rc = tr_jsonw_kv_bool(b, false, "sitemap_truncated", true);
	if (!rc && r->partial)
		rc = tr_jsonw_kv_bool(b, false, "partial", true);
	if (!rc && r->not_modified)
		rc = tr_jsonw_kv_bool(b, false, "not_modified", true);
	if (!rc && r->rendered)
		rc = tr_jsonw_kv_bool(b, false, "rendered", true);
	if (!rc && q && q->method == TRAWLER__V1__METHOD__METHOD_HEAD)
		rc = tr_jsonw_kv_str(b, false, "method", "HEAD");
	if (!rc && q && q->attempt > 1)
		rc = tr_jsonw_kv_int(b, false, "attempts", q->attempt);
	if (!rc && r->http_version && *r->http_version)
		rc = tr_jsonw_kv_str(b, false, "http_version", r->http_version);
	if (!rc && r->n_redirects)
		rc = tr_jsonw_kv_int(b, false, "redirects", (long long)r->n_redirects);
	if (!rc && pg->links.canonical)
		rc = tr_jsonw_kv_str(b, false, "canonical", pg->links.canonical);
	if (!rc && pg->links.meta_noindex)
		rc = tr_jsonw_kv_bool(b, false, "noindex", true);
	if (!rc && pg->nofollow)
		rc = tr_jsonw_kv_int(b, false, "nofollow", (long long)pg->nofollow);
	if (!rc && q && q->referrer && *q->referrer)
		rc = tr_jsonw_kv_str(b, false, "referrer", q->referrer);
	if (!rc && q)
		rc = tr_jsonw_kv_str(b, false, "crawl_id", q->crawl_id);
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "fetched_at_ms", r->fetched_at_ms);
	if (!rc && pg->nfields) {
		rc = tr_buf_adds(b, ",\"fields\":{");
		for (size_t i = 0; !rc && i < pg->nfields; i++) {
			const tr_field *f = &pg->fields[i];
			if (i)
				rc = tr_buf_add(b, ",", 1);
			if (!rc)
				rc = tr_jsonw_str(b, f->name, strlen(f->name));
			if (!rc)
				rc = tr_buf_adds(b, f->list || f->count > 1 ? ":[" : ":");
			for (size_t k = 0; !rc && k < f->count; k++) {
				if (k)
					rc = tr_buf_add(b, ",", 1);
				if (!rc)
					rc = tr_jsonw_str(b, f->values[k], strlen(f->values[k]));
			}
			if (!rc && (f->list || f->count > 1))
				rc = tr_buf_add(b, "]", 1);
		}
		if (!rc)
			rc = tr_buf_add(b, "}", 1);
	}
	if (!rc && r->timings)
		rc = tr_jsonw_kv_int(b, false, "fetch_ms", r->timings->total_us / 1000);
	if (!rc && r->worker_id && *r->worker_id)
		rc = tr_jsonw_kv_str(b, false, "worker", r->worker_id);
	if (!rc)
		rc = tr_buf_add(b, "}\n", 2);
	return rc;
}

void tr_page_clear(tr_page *pg)
{
	tr_links_free(&pg->links);
	for (size_t i = 0; i < pg->nfollow; i++)
		free(pg->follow_urls[i]);
	for (size_t i = 0; i < pg->nfields; i++) {
		for (size_t k = 0; k < pg->fields[i].count; k++)
			free(pg->fields[i].values[k]);
		free(pg->fields[i].values);
		free(pg->fields[i].name);
	}
	free(pg->fields);
	free(pg->follow_urls);
	free(pg->follow_fps);
	memset(pg, 0, sizeof(*pg));
}
