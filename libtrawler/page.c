/* page.c - per-page processing: link following decisions and the JSONL line. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch.h"
#include "jsonw.h"
#include "page.h"
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

/* charset=... from a content type, copied into out, or NULL. */
static const char *charset_of(const char *ct, char *out, size_t outlen)
{
	const char *p = ct ? strcasestr(ct, "charset=") : NULL;
	size_t n = 0;
	if (!p)
		return NULL;
	p += 8;
	if (*p == '"')
		p++;
	while (p[n] && p[n] != ';' && p[n] != '"' && p[n] != ' ' && n + 1 < outlen) {
		out[n] = p[n];
		n++;
	}
	out[n] = '\0';
	return n ? out : NULL;
}

int tr_page_process(tr_page *pg, const Trawler__V1__FetchResult *res, const tr_crawl_info *crawl,
		    const tr_page_opts *o)
{
	int rc = TR_OK;
	char charset[64];
	memset(pg, 0, sizeof(*pg));
	pg->res = res;
	pg->fp = res->request ? res->request->fingerprint : 0;
	pg->failed = res->error != TRAWLER__V1__FETCH_ERROR__ERROR_NONE;
	pg->is_html = tr_page_is_html_type(res->content_type);
	if (pg->failed || !pg->is_html || res->status < 200 || res->status > 299 || !res->body.len)
		return TR_OK;

	const char *url = res->final_url && *res->final_url ? res->final_url : res->request->url;
	rc = tr_links_extract_charset(&pg->links, (const char *)res->body.data, res->body.len, url,
				      charset_of(res->content_type, charset, sizeof(charset)),
				      (size_t)o->max_links);
	if (rc != TR_OK) {
		/* unparseable: recorded with no links */
		memset(&pg->links, 0, sizeof(pg->links));
		return rc == TR_ENOMEM ? TR_ENOMEM : TR_OK;
	}
	uint32_t depth = res->request ? res->request->depth : 0;
	if (pg->links.count == 0 || (long)depth + 1 > o->max_depth)
		return TR_OK;
	pg->follow_urls = malloc(pg->links.count * sizeof(*pg->follow_urls));
	pg->follow_fps = malloc(pg->links.count * sizeof(*pg->follow_fps));
	if (!pg->follow_urls || !pg->follow_fps) {
		tr_page_clear(pg);
		return TR_ENOMEM;
	}
	for (size_t i = 0; i < pg->links.count; i++) {
		char key[300];
		const char *u = pg->links.items[i].url;
		if (tr_url_host_key(key, sizeof(key), u) != TR_OK || !tr_crawl_in_scope(crawl, key))
			continue;
		pg->follow_urls[pg->nfollow] = pg->links.items[i].url;
		pg->follow_fps[pg->nfollow] = tr_url_fingerprint(u, strlen(u));
		pg->nfollow++;
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
		rc = tr_jsonw_kv_str(b, false, "content_type", r->content_type ? r->content_type : "");
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
	if (!rc && r->partial)
		rc = tr_jsonw_kv_bool(b, false, "partial", true);
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
	if (!rc && q && q->referrer && *q->referrer)
		rc = tr_jsonw_kv_str(b, false, "referrer", q->referrer);
	if (!rc && q)
		rc = tr_jsonw_kv_str(b, false, "crawl_id", q->crawl_id);
	if (!rc)
		rc = tr_jsonw_kv_int(b, false, "fetched_at_ms", r->fetched_at_ms);
	if (!rc && r->timings)
		rc = tr_jsonw_kv_int(b, false, "fetch_ms", r->timings->total_us / 1000);
	if (!rc)
		rc = tr_buf_add(b, "}\n", 2);
	return rc;
}

void tr_page_clear(tr_page *pg)
{
	tr_links_free(&pg->links);
	free(pg->follow_urls);
	free(pg->follow_fps);
	memset(pg, 0, sizeof(*pg));
}
