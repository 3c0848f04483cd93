/* render.c - headless Chromium as a fetch mode: browser life cycle, a tab
 * pool, request interception and the FetchResult of a rendered page. */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdp.h"
#include "log.h"
#include "metrics.h"
#include "render.h"

#define MAX_TABS 64
#define MAX_HOPS 32
#define MAX_HEADERS 100
#define MAX_HELD 4096		   /* requests held back for politeness, all tabs */
#define MAX_PENDING (MAX_TABS * 4) /* tracked commands awaiting replies */
#define OPEN_TIMEOUT_MS 20000	   /* a new tab must be ready by then */
#define RESET_TIMEOUT_MS 10000	   /* a tab must return to about:blank by then */
#define POLL_MS 100		   /* selector polling */
#define ID_MAX 96		   /* DevTools target/session/request ids */
#define MAX_INFLIGHT 16		   /* polite requests of one page on the wire */
#define INFLIGHT_STALE_MS 10000	   /* one never seen to finish stops counting */

enum tab_state { T_NONE, T_OPENING, T_IDLE, T_BUSY, T_RESETTING };
enum wait_kind { W_LOAD, W_NETIDLE, W_SELECTOR };
enum cmd_kind { C_CREATE, C_ATTACH, C_NAVIGATE, C_POLL, C_EVAL, C_RESET };

typedef struct page {
	Trawler__V1__CrawlRequest *req;
	void *ctx;
	struct page *next;
} page;

typedef struct held {
	char id[ID_MAX]; /* Fetch request id */
	char *url;
	int tab;
	unsigned gen;
	int64_t due_ms;
} held;

typedef struct pending {
	int64_t id;
	int tab;
	unsigned gen;
	int kind;
} pending;

typedef struct tab {
	int state;
	char target[ID_MAX];
	char session[ID_MAX];
	unsigned gen;	     /* bumped per page: replies of older pages are ignored */
	int64_t deadline_ms; /* page timeout, or open/reset limit */
	page *pg;
	int64_t started_us;
	bool nav_replied, loaded, net_idle, response_seen, capturing;
	int64_t next_poll_ms;
	char loader[ID_MAX];	  /* the navigation's loader */
	char load_loader[ID_MAX]; /* loader of the last main-frame load event */
	char idle_loader[ID_MAX]; /* ... and networkIdle event */
	uint32_t status;
	json_object *headers; /* of the main document's final response */
	char *final_url, *mime, *remote_ip, *protocol;
	char *hop_url[MAX_HOPS];
	uint32_t hop_status[MAX_HOPS];
	int nhops;
	int block_err; /* why the main document was refused by us */
	const char *block_why;
	unsigned blocked; /* sub-resources refused */
	struct {
		char id[ID_MAX]; /* Fetch request id */
		int64_t since_ms;
	} inflight[MAX_INFLIGHT]; /* polite requests on the wire */
	int ninflight;
} tab;

struct tr_render {
	tr_render_opts o;
	char *user_agent, *worker_id, *allow_address, *block_types, *poll_js, *dom_js;
	char binary[PATH_MAX];
	bool available;
	int wait;
	tr_fetch_done_cb done;
	tr_render_check_cb check;
	tr_render_send_cb send;
	void *payload;
	tr_cdp *cdp;
	char profile[PATH_MAX];
	int fail_streak;    /* browser starts that died before a tab opened */
	int64_t restart_ms; /* no new browser before this */
	tab tabs[MAX_TABS];
	page *wq_head, *wq_tail;
	int nwait, nbusy;
	held *held;
	size_t nheld;
	pending pend[MAX_PENDING];
	int npend;
};

static void page_free(page *pg)
{
	if (!pg)
		return;
	if (pg->req)
		trawler__v1__crawl_request__free_unpacked(pg->req, NULL);
	free(pg);
}

bool tr_render_find_binary(char *out, size_t outlen, const char *configured)
{
	static const char *const names[] = {"chromium", "chromium-browser", "google-chrome"};
	const char *path = getenv("PATH");
	bool found = false;
	if (configured && *configured && strchr(configured, '/'))
		return access(configured, X_OK) == 0 &&
		       (size_t)snprintf(out, outlen, "%s", configured) < outlen;
	if (!(configured && *configured) && access("/usr/lib/chromium/chromium", X_OK) == 0)
		return (size_t)snprintf(out, outlen, "%s", "/usr/lib/chromium/chromium") < outlen;
	for (size_t i = 0; i < TR_ARRAY_LEN(names) && !found; i++) {
		const char *name = configured && *configured ? configured : names[i];
		for (const char *d = path ? path : "/usr/bin:/bin"; *d && !found;) {
			size_t n = strcspn(d, ":");
			if (n &&
			    (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, d, name) < outlen &&
			    access(out, X_OK) == 0)
				found = true;
			d += n + (d[n] == ':');
		}
		if (configured && *configured)
			break;
	}
	return found;
}

/* JS text of `s` as a quoted string literal (JSON is valid JS). */
static char *js_quote(const char *s)
{
	json_object *o = json_object_new_string(s);
	char *q = o ? strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) : NULL;
	json_object_put(o);
	return q;
}

int tr_render_new(tr_render **out, const tr_render_opts *o, tr_fetch_done_cb done,
		  tr_render_check_cb check, tr_render_send_cb send, void *payload)
{
	int rc = TR_ENOMEM;
	char *sel = NULL;
	tr_render *r = calloc(1, sizeof(*r));
	if (!r)
		return TR_ENOMEM;
	r->o = *o;
	r->done = done;
	r->check = check;
	r->send = send;
	r->payload = payload;
	if (r->o.tabs < 1 || r->o.tabs > MAX_TABS)
		r->o.tabs = r->o.tabs < 1 ? 1 : MAX_TABS;
	r->user_agent = strdup(o->user_agent ? o->user_agent : "trawler");
	r->worker_id = strdup(o->worker_id ? o->worker_id : "");
	r->allow_address = strdup(o->allow_address ? o->allow_address : "");
	r->block_types = strdup(o->block_types ? o->block_types : "");
	r->dom_js = malloc(640);
	if (!r->user_agent || !r->worker_id || !r->allow_address || !r->block_types || !r->dom_js)
		goto fail;
	/* the DOM serialized in the page, cut there already so a huge DOM does
	 * not cross the pipe; bytes are cut again in C (a char is 1-3 bytes) */
	snprintf(r->dom_js, 640,
		 "(()=>{const d=document.doctype;let h=d?new XMLSerializer()."
		 "serializeToString(d)+'\\n':'';const e=document.documentElement;"
		 "h+=e?e.outerHTML:'';return {url:location.href,n:h.length,"
		 "html:h.length>%ld?h.slice(0,%ld):h};})()",
		 o->max_dom, o->max_dom);
	rc = TR_EINVAL;
	if (tr_fetch_addr_in_list(r->allow_address, NULL) < 0) {
		tr_log(TR_LOG_ERROR, "option allow-address: invalid CIDR list", 0);
		goto fail;
	}
	if (!o->wait || !*o->wait || strcmp(o->wait, "load") == 0) {
		r->wait = W_LOAD;
	} else if (strcmp(o->wait, "networkidle") == 0) {
		r->wait = W_NETIDLE;
	} else if (strncmp(o->wait, "selector:", 9) == 0 && o->wait[9]) {
		r->wait = W_SELECTOR;
		rc = TR_ENOMEM;
		if (!(sel = js_quote(o->wait + 9)) || !(r->poll_js = malloc(strlen(sel) + 64)))
			goto fail;
		sprintf(r->poll_js, "!!document.querySelector(%s)", sel);
	} else {
		tr_log(TR_LOG_ERROR,
		       "option render-wait: invalid value (accepted: load, networkidle, "
		       "selector:CSS)",
		       1, "value", o->wait);
		goto fail;
	}
	r->o.user_agent = r->user_agent;
	r->o.worker_id = r->worker_id;
	r->o.allow_address = r->allow_address;
	r->o.block_types = r->block_types;
	r->available = tr_render_find_binary(r->binary, sizeof(r->binary), o->binary);
	free(sel);
	*out = r;
	return TR_OK;
fail:
	free(sel);
	tr_render_free(r);
	return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	TR_UNUSED(sb);
	TR_UNUSED(flag);
	TR_UNUSED(ftw);
	remove(path);
	return 0;
}

static void tab_clear(tab *t)
{
	json_object_put(t->headers);
	free(t->final_url);
	free(t->mime);
	free(t->remote_ip);
	free(t->protocol);
	for (int i = 0; i < t->nhops; i++)
		free(t->hop_url[i]);
	unsigned gen = t->gen;
	int state = t->state;
	char target[ID_MAX], session[ID_MAX];
	memcpy(target, t->target, ID_MAX);
	memcpy(session, t->session, ID_MAX);
	memset(t, 0, sizeof(*t));
	t->gen = gen + 1;
	t->state = state;
	memcpy(t->target, target, ID_MAX);
	memcpy(t->session, session, ID_MAX);
}

/* Kill the browser and forget its tabs (pages in them are the caller's). */
static void browser_stop(tr_render *r)
{
	tr_cdp_free(r->cdp);
	r->cdp = NULL;
	for (size_t i = 0; i < r->nheld; i++)
		free(r->held[i].url);
	r->nheld = 0;
	r->npend = 0;
	for (int i = 0; i < MAX_TABS; i++) {
		tab_clear(&r->tabs[i]);
		r->tabs[i].state = T_NONE;
		r->tabs[i].target[0] = r->tabs[i].session[0] = '\0';
	}
	if (r->profile[0])
		nftw(r->profile, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	r->profile[0] = '\0';
}

void tr_render_free(tr_render *r)
{
	if (!r)
		return;
	for (int i = 0; i < MAX_TABS; i++) {
		page_free(r->tabs[i].pg);
		r->tabs[i].pg = NULL;
	}
	browser_stop(r);
	while (r->wq_head) {
		page *n = r->wq_head->next;
		page_free(r->wq_head);
		r->wq_head = n;
	}
	free(r->held);
	free(r->user_agent);
	free(r->worker_id);
	free(r->allow_address);
	free(r->block_types);
	free(r->poll_js);
	free(r->dom_js);
	free(r);
}

int tr_render_start(tr_render *r, Trawler__V1__CrawlRequest *req, void *ctx)
{
	page *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return TR_ENOMEM;
	pg->req = req;
	pg->ctx = ctx;
	if (r->wq_tail)
		r->wq_tail->next = pg;
	else
		r->wq_head = pg;
	r->wq_tail = pg;
	r->nwait++;
	return TR_OK;
}

static void track(tr_render *r, int64_t id, int tabi, int kind)
{
	if (id <= 0 || r->npend >= MAX_PENDING)
		return; /* the tab's deadline catches a reply never seen */
	r->pend[r->npend].id = id;
	r->pend[r->npend].tab = tabi;
	r->pend[r->npend].gen = r->tabs[tabi].gen;
	r->pend[r->npend].kind = kind;
	r->npend++;
}

static int64_t send_cmd(tr_render *r, const tab *t, const char *method, json_object *params)
{
	return tr_cdp_send(r->cdp, t && t->session[0] ? t->session : NULL, method, params);
}

/* Convenience: build {k1: v1} with a string value. */
static json_object *obj_str(const char *k, const char *v)
{
	json_object *o = json_object_new_object();
	if (o)
		json_object_object_add(o, k, json_object_new_string(v));
	return o;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) &&
		       json_object_is_type(v, json_type_string)
		   ? json_object_get_string(v)
		   : NULL;
}

static json_object *jget(json_object *o, const char *key)
{
	json_object *v;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static const char *http_version_of(const char *proto)
{
	if (!proto)
		return "";
	if (strcasecmp(proto, "http/1.1") == 0)
		return "1.1";
	if (strcasecmp(proto, "http/1.0") == 0)
		return "1.0";
	if (strcasecmp(proto, "h2") == 0)
		return "2";
	if (strcasecmp(proto, "h3") == 0 || strncasecmp(proto, "h3-", 3) == 0)
		return "3";
	return "";
}

/* Length of the longest prefix of s (at most max bytes) that does not cut
 * a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Send the tab back to about:blank; it takes the next page once there. */
static void tab_reset(tr_render *r, int ti)
{
	tab *t = &r->tabs[ti];
	tab_clear(t); /* gen + 1: late replies and events of the page are ignored */
	/* requests held for the page are dropped; the navigation cancels them */
	for (size_t i = 0; i < r->nheld;) {
		if (r->held[i].tab == ti) {
			free(r->held[i].url);
			memmove(&r->held[i], &r->held[i + 1], (r->nheld - i - 1) * sizeof(held));
			r->nheld--;
		} else {
			i++;
		}
	}
	t->state = T_RESETTING;
	t->deadline_ms = tr_mono_ms() + RESET_TIMEOUT_MS;
	track(r, send_cmd(r, t, "Page.navigate", obj_str("url", "about:blank")), ti, C_RESET);
}

/* Is `ip` (text, as the browser reports it) refused by the SSRF guard? */
static bool remote_refused(const tr_render *r, const char *ip)
{
	struct sockaddr_storage ss;
	char buf[64];
	size_t n = strlen(ip);
	if (n > 2 && n < sizeof(buf) && ip[0] == '[' && ip[n - 1] == ']') {
		memcpy(buf, ip + 1, n - 2);
		buf[n - 2] = '\0';
		ip = buf;
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return false; /* empty (e.g. served from cache): the pre-check stands */
	return tr_fetch_addr_is_private((struct sockaddr *)&ss) &&
	       tr_fetch_addr_in_list(r->allow_address, (struct sockaddr *)&ss) != 1;
}

/* One result for the page in tab ti; `dom` is the capture's value or NULL. */
static void finish(tr_render *r, int ti, Trawler__V1__FetchError err, const char *msg,
		   json_object *dom)
{
	tab *t = &r->tabs[ti];
	page *pg = t->pg;
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
	Trawler__V1__Timings tm = TRAWLER__V1__TIMINGS__INIT;
	Trawler__V1__Redirect rv[MAX_HOPS], *rp[MAX_HOPS];
	Trawler__V1__Header hv[MAX_HEADERS], *hp[MAX_HEADERS];
	char ctype[256], errbuf[256];
	size_t nh = 0;
	if (!pg)
		return;
	t->pg = NULL;
	r->nbusy--;
	res.request = pg->req;
	res.final_url = pg->req->url;
	if (t->final_url)
		res.final_url = t->final_url;
	if (dom && jstr(dom, "url") && strncmp(jstr(dom, "url"), "http", 4) == 0)
		res.final_url = (char *)jstr(dom, "url");
	if (!err && t->remote_ip && !r->o.allow_private && remote_refused(r, t->remote_ip)) {
		/* the guard resolved the name before the request, the browser
		 * again for it: refuse what it actually connected to */
		err = TRAWLER__V1__FETCH_ERROR__ERROR_BLOCKED_ADDRESS;
		msg = "browser connected to a private address (use --allow-private to allow)";
		dom = NULL;
	}
	res.error = err;
	if (err) {
		snprintf(errbuf, sizeof(errbuf), "%s", msg ? msg : "render failed");
		res.error_message = errbuf;
	} else {
		res.status = t->status;
	}
	if (dom) {
		const char *html = jstr(dom, "html");
		json_object *jn = jget(dom, "n");
		size_t len = html ? strlen(html) : 0;
		size_t keep = utf8_cut(html ? html : "", len, (size_t)r->o.max_dom);
		res.body.data = (uint8_t *)(html ? html : "");
		res.body.len = keep;
		res.truncated = keep < len || (jn && json_object_get_int64(jn) > r->o.max_dom);
		res.rendered = true;
	}
	/* the body is the DOM serialized as UTF-8, whatever the server sent */
	snprintf(ctype, sizeof(ctype), "%s%s", t->mime ? t->mime : "",
		 t->mime && *t->mime ? "; charset=utf-8" : "");
	res.content_type = dom ? ctype : (char *)"";
	res.remote_ip = t->remote_ip ? t->remote_ip : (char *)"";
	res.http_version = (char *)http_version_of(t->protocol);
	if (t->headers && !err) {
		json_object_object_foreach(t->headers, k, v)
		{
			if (nh >= MAX_HEADERS || !json_object_is_type(v, json_type_string))
				continue;
			trawler__v1__header__init(&hv[nh]);
			hv[nh].name = k;
			hv[nh].value = (char *)json_object_get_string(v);
			hp[nh] = &hv[nh];
			nh++;
		}
	}
	res.n_headers = nh;
	res.headers = hp;
	for (int i = 0; i < t->nhops; i++) {
		trawler__v1__redirect__init(&rv[i]);
		rv[i].url = t->hop_url[i];
		rv[i].status = t->hop_status[i];
		rp[i] = &rv[i];
	}
	res.n_redirects = (size_t)t->nhops;
	res.redirects = rp;
	tm.total_us = (uint32_t)(tr_mono_us() - t->started_us);
	res.timings = &tm;
	res.fetched_at_ms = tr_now_ms();
	res.worker_id = r->worker_id;
	if (r->done(&res, pg->ctx, r->payload))
		pg->req = NULL; /* now the callee's */
	page_free(pg);
	if (r->cdp && t->state == T_BUSY && !dom) {
		tab_reset(r, ti); /* stop whatever the failed page still does */
	} else if (r->cdp && t->state == T_BUSY) {
		/* captured: the next navigation replaces the page, and the loader
		 * id tells its events from this one's */
		tab_clear(t);
		t->state = T_IDLE;
	} else {
		tab_clear(t); /* keeps the state the caller set */
	}
}

/* Every page in a tab fails with `why`; the browser is gone. */
static void browser_failed(tr_render *r, const char *why)
{
	int64_t now = tr_mono_ms();
	bool had_tab = false;
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", r->cdp ? (long)tr_cdp_pid(r->cdp) : 0L);
	tr_log(TR_LOG_WARN, "browser lost, restarting it for the next page", 2, "reason", why,
	       "pid", pid);
	tr_metrics_inc(TR_METRIC_BROWSER_RESTARTS, NULL, 1);
	for (int i = 0; i < MAX_TABS; i++)
		if (r->tabs[i].state != T_NONE && r->tabs[i].state != T_OPENING)
			had_tab = true;
	for (int i = 0; i < MAX_TABS; i++) {
		r->tabs[i].state = T_NONE;
		finish(r, i, TRAWLER__V1__FETCH_ERROR__ERROR_BROWSER, why, NULL);
	}
	browser_stop(r);
	r->fail_streak = had_tab ? 0 : r->fail_streak + 1;
	r->restart_ms = now + (r->fail_streak > 1 ? 1000 * (r->fail_streak - 1) : 0);
	if (r->fail_streak >= 3) {
		/* the browser does not come up: report the waiting pages (the
		 * producer retries them with backoff) rather than hold them */
		while (r->wq_head) {
			page *pg = r->wq_head;
			r->wq_head = pg->next;
			r->nwait--;
			int ti = 0; /* every tab is T_NONE now: borrow one to report */
			r->tabs[ti].pg = pg;
			r->tabs[ti].started_us = tr_mono_us();
			r->nbusy++;
			finish(r, ti, TRAWLER__V1__FETCH_ERROR__ERROR_BROWSER,
			       "browser does not start (see docs/render.md)", NULL);
		}
		r->wq_tail = NULL;
	}
}

static int browser_start(tr_render *r)
{
	char udd[PATH_MAX + 32], ua[1024];
	const char *tmp = getenv("TMPDIR");
	snprintf(r->profile, sizeof(r->profile), "%s/trawler-chromium-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(r->profile)) {
		r->profile[0] = '\0';
		return TR_EIO;
	}
	snprintf(udd, sizeof(udd), "--user-data-dir=%s", r->profile);
	snprintf(ua, sizeof(ua), "--user-agent=%s", r->user_agent);
	char *argv[] = {r->binary,
			(char *)"--headless",
			(char *)"--no-sandbox",
			(char *)"--disable-gpu",
			(char *)"--disable-background-networking",
			(char *)"--disable-component-update",
			(char *)"--disable-sync",
			(char *)"--no-first-run",
			udd,
			ua,
			(char *)"--no-default-browser-check",
			(char *)"--disable-extensions",
			(char *)"--disable-dev-shm-usage",
			(char *)"--mute-audio",
			(char *)"--hide-scrollbars",
			(char *)"--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
			(char *)"--disable-features=Translate,MediaRouter,OptimizationHints",
			(char *)"about:blank",
			NULL};
	/* a message holds at most the DOM, JSON-escaped (6 bytes per unit) */
	size_t max_msg = (size_t)r->o.max_dom * 6 + 4 * 1024 * 1024;
	int rc = tr_cdp_spawn(&r->cdp, argv, max_msg);
	if (rc != TR_OK) {
		nftw(r->profile, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		r->profile[0] = '\0';
		return rc;
	}
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)tr_cdp_pid(r->cdp));
	tr_log(TR_LOG_INFO, "browser started", 2, "binary", r->binary, "pid", pid);
	return TR_OK;
}

static void tab_open(tr_render *r, int ti)
{
	tab *t = &r->tabs[ti];
	t->state = T_OPENING;
	t->target[0] = t->session[0] = '\0';
	t->deadline_ms = tr_mono_ms() + OPEN_TIMEOUT_MS;
	track(r, send_cmd(r, NULL, "Target.createTarget", obj_str("url", "about:blank")), ti,
	      C_CREATE);
}

static void tab_setup(tr_render *r, tab *t)
{
	json_object *fp = json_object_new_object();
	json_object *pats = json_object_new_array();
	json_object *pat = obj_str("urlPattern", "*");
	json_object *rpat = obj_str("urlPattern", "*");
	json_object *le = json_object_new_object();
	json_object *bs = json_object_new_object();
	/* request stage: decide; response stage: know when it was answered */
	json_object_object_add(pat, "requestStage", json_object_new_string("Request"));
	json_object_object_add(rpat, "requestStage", json_object_new_string("Response"));
	json_object_array_add(pats, pat);
	json_object_array_add(pats, rpat);
	json_object_object_add(fp, "patterns", pats);
	json_object_object_add(le, "enabled", json_object_new_boolean(1));
	json_object_object_add(bs, "bypass", json_object_new_boolean(1));
	send_cmd(r, t, "Page.enable", NULL);
	send_cmd(r, t, "Network.enable", NULL);
	send_cmd(r, t, "Page.setLifecycleEventsEnabled", le);
	/* service workers would fetch outside the page's interception */
	send_cmd(r, t, "Network.setBypassServiceWorker", bs);
	send_cmd(r, t, "Fetch.enable", fp);
}

static void tab_navigate(tr_render *r, int ti, page *pg)
{
	tab *t = &r->tabs[ti];
	t->pg = pg;
	t->state = T_BUSY;
	t->started_us = tr_mono_us();
	t->deadline_ms = tr_mono_ms() + (int64_t)(r->o.timeout * 1000);
	r->nbusy++;
	track(r, send_cmd(r, t, "Page.navigate", obj_str("url", pg->req->url)), ti, C_NAVIGATE);
}

static void capture(tr_render *r, int ti)
{
	tab *t = &r->tabs[ti];
	json_object *p = obj_str("expression", r->dom_js);
	if (t->capturing)
		return;
	t->capturing = true;
	json_object_object_add(p, "returnByValue", json_object_new_boolean(1));
	track(r, send_cmd(r, t, "Runtime.evaluate", p), ti, C_EVAL);
}

static void maybe_ready(tr_render *r, int ti, int64_t now)
{
	tab *t = &r->tabs[ti];
	if (t->state != T_BUSY || !t->nav_replied || !t->response_seen || t->capturing)
		return;
	if (r->wait == W_LOAD && t->loaded)
		capture(r, ti);
	else if (r->wait == W_NETIDLE && t->net_idle)
		capture(r, ti);
	else if (r->wait == W_SELECTOR && t->loaded && t->next_poll_ms == 0)
		t->next_poll_ms = now;
}

static Trawler__V1__FetchError nav_error(const char *text)
{
	static const struct {
		const char *prefix;
		Trawler__V1__FetchError e;
	} map[] = {
	    {"net::ERR_NAME_NOT_RESOLVED", TRAWLER__V1__FETCH_ERROR__ERROR_DNS},
	    {"net::ERR_NAME_RESOLUTION_FAILED", TRAWLER__V1__FETCH_ERROR__ERROR_DNS},
	    {"net::ERR_CONNECTION_REFUSED", TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT},
	    {"net::ERR_CONNECTION_FAILED", TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT},
	    {"net::ERR_ADDRESS_UNREACHABLE", TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT},
	    {"net::ERR_TIMED_OUT", TRAWLER__V1__FETCH_ERROR__ERROR_TIMEOUT},
	    {"net::ERR_CONNECTION_TIMED_OUT", TRAWLER__V1__FETCH_ERROR__ERROR_TIMEOUT},
	    {"net::ERR_CONNECTION_RESET", TRAWLER__V1__FETCH_ERROR__ERROR_RECV},
	    {"net::ERR_CONNECTION_CLOSED", TRAWLER__V1__FETCH_ERROR__ERROR_RECV},
	    {"net::ERR_EMPTY_RESPONSE", TRAWLER__V1__FETCH_ERROR__ERROR_RECV},
	    {"net::ERR_CERT_", TRAWLER__V1__FETCH_ERROR__ERROR_TLS},
	    {"net::ERR_SSL_", TRAWLER__V1__FETCH_ERROR__ERROR_TLS},
	    {"net::ERR_TOO_MANY_REDIRECTS", TRAWLER__V1__FETCH_ERROR__ERROR_TOO_MANY_REDIRECTS},
	    {"net::ERR_INVALID_URL", TRAWLER__V1__FETCH_ERROR__ERROR_BAD_URL},
	    {"net::ERR_INVALID_HTTP_RESPONSE", TRAWLER__V1__FETCH_ERROR__ERROR_PROTOCOL},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(map); i++)
		if (strncmp(text, map[i].prefix, strlen(map[i].prefix)) == 0)
			return map[i].e;
	return TRAWLER__V1__FETCH_ERROR__ERROR_OTHER;
}

static void on_reply(tr_render *r, json_object *m, int64_t id)
{
	pending pd;
	int i;
	for (i = 0; i < r->npend && r->pend[i].id != id; i++)
		;
	if (i == r->npend)
		return; /* a command whose reply does not matter */
	pd = r->pend[i];
	r->pend[i] = r->pend[--r->npend];
	tab *t = &r->tabs[pd.tab];
	json_object *result = jget(m, "result");
	json_object *error = jget(m, "error");
	if (pd.gen != t->gen)
		return; /* for a page already finished */
	switch (pd.kind) {
	case C_CREATE: {
		if (error || !jstr(result, "targetId")) {
			browser_failed(r, "Target.createTarget failed");
			return;
		}
		snprintf(t->target, sizeof(t->target), "%s", jstr(result, "targetId"));
		json_object *p = obj_str("targetId", t->target);
		json_object_object_add(p, "flatten", json_object_new_boolean(1));
		track(r, send_cmd(r, NULL, "Target.attachToTarget", p), pd.tab, C_ATTACH);
		break;
	}
	case C_ATTACH:
		if (error || !jstr(result, "sessionId")) {
			browser_failed(r, "Target.attachToTarget failed");
			return;
		}
		snprintf(t->session, sizeof(t->session), "%s", jstr(result, "sessionId"));
		tab_setup(r, t);
		t->state = T_IDLE;
		r->fail_streak = 0;
		break;
	case C_NAVIGATE: {
		const char *et = jstr(result, "errorText");
		if (t->state != T_BUSY)
			break;
		if ((error || (et && *et)) && !t->block_err && t->response_seen &&
		    t->status >= 400) {
			/* an HTTP error the browser shows its own page for: the
			 * status is the result, like a fetch's (5xx are retried) */
			finish(r, pd.tab, TRAWLER__V1__FETCH_ERROR__ERROR_NONE, NULL, NULL);
			break;
		}
		if (error || (et && *et)) {
			char msg[200];
			Trawler__V1__FetchError e =
			    et ? nav_error(et) : TRAWLER__V1__FETCH_ERROR__ERROR_OTHER;
			if (t->block_err) {
				e = (Trawler__V1__FetchError)t->block_err;
				snprintf(msg, sizeof(msg), "%s", t->block_why);
			} else {
				snprintf(msg, sizeof(msg), "browser: %s",
					 et			  ? et
					 : jstr(error, "message") ? jstr(error, "message")
								  : "navigation failed");
			}
			finish(r, pd.tab, e, msg, NULL);
			break;
		}
		if (jstr(result, "loaderId"))
			snprintf(t->loader, sizeof(t->loader), "%s", jstr(result, "loaderId"));
		t->loaded = t->loader[0] && strcmp(t->load_loader, t->loader) == 0;
		t->net_idle = t->loader[0] && strcmp(t->idle_loader, t->loader) == 0;
		t->nav_replied = true;
		maybe_ready(r, pd.tab, tr_mono_ms());
		break;
	}
	case C_POLL: {
		json_object *v = jget(jget(result, "result"), "value");
		if (t->state != T_BUSY)
			break;
		if (v && json_object_get_boolean(v))
			capture(r, pd.tab);
		else
			t->next_poll_ms = tr_mono_ms() + POLL_MS;
		break;
	}
	case C_EVAL: {
		json_object *v = jget(jget(result, "result"), "value");
		if (t->state != T_BUSY)
			break;
		if (error || jget(result, "exceptionDetails") || !v ||
		    !json_object_is_type(v, json_type_object))
			finish(r, pd.tab, TRAWLER__V1__FETCH_ERROR__ERROR_OTHER,
			       "could not read the rendered DOM", NULL);
		else
			finish(r, pd.tab, TRAWLER__V1__FETCH_ERROR__ERROR_NONE, NULL, v);
		break;
	}
	case C_RESET:
		if (t->state == T_RESETTING)
			t->state = T_IDLE;
		break;
	}
}

static int tab_of_session(const tr_render *r, const char *session)
{
	if (!session)
		return -1;
	for (int i = 0; i < MAX_TABS; i++)
		if (r->tabs[i].state != T_NONE && strcmp(r->tabs[i].session, session) == 0)
			return i;
	return -1;
}

static bool type_blocked(const tr_render *r, const char *type)
{
	size_t tl = type ? strlen(type) : 0;
	for (const char *e = r->block_types; tl && *e;) {
		size_t n = strcspn(e, ",");
		while (n && *e == ' ') {
			e++;
			n--;
		}
		if (n == tl && strncasecmp(e, type, n) == 0)
			return true;
		e += n + (e[n] == ',');
	}
	return false;
}

/* The SSRF guard for the browser: every address the host resolves to must
 * pass fetch.c's rules (the browser resolves again itself; see
 * docs/render.md for that gap). Returns 0 or the FetchError to fail with. */
static int address_check(const tr_render *r, const char *url, const char **why)
{
	CURLU *u = curl_url();
	char *host = NULL, *scheme = NULL;
	struct addrinfo hints, *ai = NULL;
	int rc = TRAWLER__V1__FETCH_ERROR__ERROR_BAD_URL;
	*why = "not an http(s) URL";
	if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (r->o.allow_private) {
		rc = 0;
		goto out;
	}
	char *h = host;
	size_t hl = strlen(h);
	if (hl > 2 && h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		h++;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = TRAWLER__V1__FETCH_ERROR__ERROR_DNS;
	*why = "could not resolve host";
	if (getaddrinfo(h, NULL, &hints, &ai) != 0)
		goto out;
	rc = 0;
	for (struct addrinfo *a = ai; a; a = a->ai_next)
		if (tr_fetch_addr_is_private(a->ai_addr) &&
		    tr_fetch_addr_in_list(r->allow_address, a->ai_addr) != 1) {
			rc = TRAWLER__V1__FETCH_ERROR__ERROR_BLOCKED_ADDRESS;
			*why = "target address is private (use --allow-private to allow)";
		}
out:
	if (ai)
		freeaddrinfo(ai);
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static void fail_request(tr_render *r, const tab *t, const char *id, const char *reason)
{
	json_object *p = obj_str("requestId", id);
	json_object_object_add(p, "errorReason", json_object_new_string(reason));
	send_cmd(r, t, "Fetch.failRequest", p);
}

/* Let a request go; a polite one is tracked until it is answered. */
/* Let a request go; a polite one is tracked until its response pauses
 * (Fetch response stage: every request pauses twice, see tab_setup). */
static void continue_request(tr_render *r, tab *t, const char *id, bool polite)
{
	if (polite && r->send)
		r->send(t->pg ? t->pg->ctx : NULL, r->payload);
	if (polite && t->ninflight < MAX_INFLIGHT) {
		snprintf(t->inflight[t->ninflight].id, ID_MAX, "%s", id);
		t->inflight[t->ninflight++].since_ms = tr_mono_ms();
	}
	tr_log(TR_LOG_DEBUG, "render: request continued", 2, "request", id, "polite",
	       polite ? "true" : "false");
	send_cmd(r, t, "Fetch.continueRequest", obj_str("requestId", id));
}

/* A polite request was answered or failed: the host's delay counts from
 * now, and the next held request of the page may go. */
static void inflight_done(tr_render *r, tab *t, const char *id)
{
	for (int i = 0; id && i < t->ninflight; i++) {
		if (strcmp(t->inflight[i].id, id) != 0)
			continue;
		t->inflight[i] = t->inflight[--t->ninflight];
		tr_log(TR_LOG_DEBUG, "render: polite request answered", 1, "request", id);
		if (r->send)
			r->send(t->pg ? t->pg->ctx : NULL, r->payload);
		break;
	}
}

/* The main document's response, as the Fetch response stage shows it
 * (Network.responseReceived adds MIME type, address and protocol; either
 * may come first, or the Network one not at all). */
static void main_response(tab *t, json_object *params)
{
	json_object *hs = jget(params, "responseHeaders");
	json_object *obj = json_object_new_object();
	size_t n =
	    hs && json_object_is_type(hs, json_type_array) ? json_object_array_length(hs) : 0;
	for (size_t i = 0; obj && i < n; i++) {
		json_object *h = json_object_array_get_idx(hs, i);
		const char *k = jstr(h, "name"), *v = jstr(h, "value");
		if (k && v)
			json_object_object_add(obj, k, json_object_new_string(v));
	}
	json_object_put(t->headers);
	t->headers = obj;
	t->status = (uint32_t)json_object_get_int(jget(params, "responseStatusCode"));
	if (!t->mime && obj) {
		json_object_object_foreach(obj, k, v)
		{
			if (strcasecmp(k, "content-type") == 0) {
				const char *ct = json_object_get_string(v);
				t->mime = strndup(ct, strcspn(ct, "; \t"));
			}
		}
	}
	t->response_seen = true;
}

static void on_request_paused(tr_render *r, int ti, json_object *params)
{
	tab *t = &r->tabs[ti];
	const char *id = jstr(params, "requestId");
	const char *type = jstr(params, "resourceType");
	const char *frame = jstr(params, "frameId");
	const char *url = jstr(jget(params, "request"), "url");
	const char *why = NULL;
	int64_t not_before = 0;
	bool polite = false;
	int err;
	if (!id)
		return;
	if (t->state != T_BUSY || !url) {
		fail_request(r, t, id, "Aborted"); /* left over from a finished page */
		return;
	}
	bool main_doc =
	    type && strcmp(type, "Document") == 0 && frame && strcmp(frame, t->target) == 0;
	if (jget(params, "responseStatusCode") || jget(params, "responseErrorReason")) {
		/* response stage: it was answered (or failed) */
		inflight_done(r, t, id);
		if (main_doc && jget(params, "responseStatusCode"))
			main_response(t, params);
		send_cmd(r, t, "Fetch.continueRequest", obj_str("requestId", id));
		return;
	}
	if (!main_doc && type_blocked(r, type)) {
		const char *lv[] = {"type"};
		tr_metrics_inc(TR_METRIC_RENDER_REFUSED, lv, 1);
		t->blocked++;
		fail_request(r, t, id, "BlockedByClient");
		return;
	}
	err = address_check(r, url, &why);
	if (!err && r->check)
		err = r->check(url, main_doc, t->pg->ctx, r->payload, &not_before, &polite, &why);
	if (err) {
		if (main_doc) {
			t->block_err = err;
			t->block_why = why;
		}
		const char *lv[] = {
		    err == TRAWLER__V1__FETCH_ERROR__ERROR_BLOCKED_ADDRESS     ? "address"
		    : err == TRAWLER__V1__FETCH_ERROR__ERROR_ROBOTS_DISALLOWED ? "robots"
									       : "other"};
		tr_metrics_inc(TR_METRIC_RENDER_REFUSED, lv, 1);
		t->blocked++;
		tr_log(TR_LOG_DEBUG, "render: request refused", 2, "url", url, "reason", why);
		fail_request(r, t, id, "BlockedByClient");
		return;
	}
	if (!main_doc && polite) {
		/* same-host sub-resources go one at a time, each a delay after
		 * the previous answer (timers() releases them in order) */
		held *nh =
		    r->nheld < MAX_HELD ? realloc(r->held, (r->nheld + 1) * sizeof(*nh)) : NULL;
		char *u = nh ? strdup(url) : NULL;
		if (!u) {
			if (nh)
				r->held = nh;
			fail_request(r, t, id, "BlockedByClient");
			return;
		}
		r->held = nh;
		held *h = &r->held[r->nheld++];
		snprintf(h->id, sizeof(h->id), "%s", id);
		h->url = u;
		h->tab = ti;
		h->gen = t->gen;
		h->due_ms = 0;
		return;
	}
	continue_request(r, t, id, polite);
}

static void on_event(tr_render *r, json_object *m, const char *method)
{
	json_object *params = jget(m, "params");
	int ti = tab_of_session(r, jstr(m, "sessionId"));
	if (strcmp(method, "Target.detachedFromTarget") == 0 ||
	    strcmp(method, "Target.targetCrashed") == 0) {
		int dt = tab_of_session(r, jstr(params, "sessionId"));
		for (int i = 0; dt < 0 && jstr(params, "targetId") && i < MAX_TABS; i++)
			if (r->tabs[i].state != T_NONE &&
			    strcmp(r->tabs[i].target, jstr(params, "targetId")) == 0)
				dt = i;
		if (dt >= 0 && r->tabs[dt].state != T_NONE) {
			tr_log(TR_LOG_WARN, "render: tab lost, its page fails (retried)", 1,
			       "event", method);
			r->tabs[dt].state = T_NONE; /* reopened when needed */
			finish(r, dt, TRAWLER__V1__FETCH_ERROR__ERROR_BROWSER, "tab crashed", NULL);
		}
		return;
	}
	if (ti < 0)
		return;
	tab *t = &r->tabs[ti];
	if (strcmp(method, "Fetch.requestPaused") == 0) {
		on_request_paused(r, ti, params);
		return;
	}
	if (t->state != T_BUSY)
		return;
	if (strcmp(method, "Inspector.targetCrashed") == 0) {
		tr_log(TR_LOG_WARN, "render: tab lost, its page fails (retried)", 1, "event",
		       method);
		t->state = T_NONE; /* reopened when needed */
		finish(r, ti, TRAWLER__V1__FETCH_ERROR__ERROR_BROWSER, "page crashed", NULL);
		send_cmd(r, NULL, "Target.closeTarget", obj_str("targetId", t->target));
		return;
	}
	const char *frame = jstr(params, "frameId");
	bool main_frame = frame && strcmp(frame, t->target) == 0;
	const char *type = jstr(params, "type");
	bool doc = main_frame && type && strcmp(type, "Document") == 0;
	if (strcmp(method, "Network.requestWillBeSent") == 0 && doc) {
		json_object *rr = jget(params, "redirectResponse");
		if (!t->loader[0] && jstr(params, "loaderId"))
			snprintf(t->loader, sizeof(t->loader), "%s", jstr(params, "loaderId"));
		if (rr && t->nhops < MAX_HOPS && jstr(rr, "url")) {
			t->hop_url[t->nhops] = strdup(jstr(rr, "url"));
			t->hop_status[t->nhops] = (uint32_t)json_object_get_int(jget(rr, "status"));
			if (t->hop_url[t->nhops])
				t->nhops++;
		}
	} else if (strcmp(method, "Network.responseReceived") == 0 && doc) {
		json_object *resp = jget(params, "response");
		json_object_put(t->headers);
		t->headers = json_object_get(jget(resp, "headers"));
		t->status = (uint32_t)json_object_get_int(jget(resp, "status"));
		free(t->final_url);
		free(t->mime);
		free(t->remote_ip);
		free(t->protocol);
		t->final_url = dup_or_null(jstr(resp, "url"));
		t->mime = dup_or_null(jstr(resp, "mimeType"));
		t->remote_ip = dup_or_null(jstr(resp, "remoteIPAddress"));
		t->protocol = dup_or_null(jstr(resp, "protocol"));
		t->response_seen = true;
	} else if (strcmp(method, "Page.lifecycleEvent") == 0 && main_frame) {
		/* by loader: events of the previous navigation (about:blank)
		 * may still arrive, and they may come before the navigate reply
		 * or the main response */
		const char *name = jstr(params, "name");
		const char *loader = jstr(params, "loaderId");
		if (name && loader && strcmp(name, "load") == 0)
			snprintf(t->load_loader, ID_MAX, "%s", loader);
		else if (name && loader && strcmp(name, "networkIdle") == 0)
			snprintf(t->idle_loader, ID_MAX, "%s", loader);
	}
	t->loaded = t->loader[0] && strcmp(t->load_loader, t->loader) == 0;
	t->net_idle = t->loader[0] && strcmp(t->idle_loader, t->loader) == 0;
	maybe_ready(r, ti, tr_mono_ms());
}

static void handle(tr_render *r, json_object *m)
{
	json_object *id = jget(m, "id");
	const char *method = jstr(m, "method");
	if (id)
		on_reply(r, m, json_object_get_int64(id));
	else if (method)
		on_event(r, m, method);
}

static void drop_held(tr_render *r, size_t i)
{
	free(r->held[i].url);
	memmove(&r->held[i], &r->held[i + 1], (r->nheld - i - 1) * sizeof(held));
	r->nheld--;
}

/* Release held polite requests: per tab the oldest, once nothing of the
 * page's host is on the wire and the host's delay has passed. The rules
 * are asked again: the delay may have moved since the request paused. */
static void release_held(tr_render *r, int64_t now)
{
	bool seen[MAX_TABS] = {false};
	for (size_t i = 0; i < r->nheld && r->cdp;) {
		held *h = &r->held[i];
		tab *t = &r->tabs[h->tab];
		int64_t nb = 0;
		bool polite = true;
		const char *why = NULL;
		if (t->gen != h->gen || t->state != T_BUSY) {
			drop_held(r, i);
			continue;
		}
		if (seen[h->tab]) {
			h->due_ms = INT64_MAX; /* behind the tab's first: no timer */
			i++;
			continue;
		}
		seen[h->tab] = true;
		for (int k = 0; k < t->ninflight;)
			if (now - t->inflight[k].since_ms > INFLIGHT_STALE_MS)
				t->inflight[k] = t->inflight[--t->ninflight];
			else
				k++;
		if (t->ninflight > 0) {
			h->due_ms = t->inflight[0].since_ms + INFLIGHT_STALE_MS;
			i++;
			continue;
		}
		int err = r->check(h->url, false, t->pg->ctx, r->payload, &nb, &polite, &why);
		if (!err && nb > now) {
			h->due_ms = nb;
			i++;
			continue;
		}
		if (err)
			fail_request(r, t, h->id, "BlockedByClient");
		else
			continue_request(r, t, h->id, polite);
		drop_held(r, i);
	}
}

static void timers(tr_render *r, int64_t now)
{
	for (int i = 0; i < MAX_TABS && r->cdp; i++) {
		tab *t = &r->tabs[i];
		if (t->state == T_BUSY && now >= t->deadline_ms) {
			char msg[160];
			snprintf(msg, sizeof(msg),
				 "page not rendered within %g s (render-wait %s; navigated %d, "
				 "response %d, loaded %d)",
				 r->o.timeout, r->o.wait && *r->o.wait ? r->o.wait : "load",
				 t->nav_replied, t->response_seen, t->loaded);
			finish(r, i, TRAWLER__V1__FETCH_ERROR__ERROR_TIMEOUT, msg, NULL);
		} else if ((t->state == T_OPENING || t->state == T_RESETTING) &&
			   now >= t->deadline_ms) {
			browser_failed(r, "browser not answering (tab open/reset timed out)");
			return;
		} else if (t->state == T_BUSY && t->next_poll_ms && now >= t->next_poll_ms &&
			   !t->capturing) {
			t->next_poll_ms = INT64_MAX; /* until the poll's reply */
			json_object *p = obj_str("expression", r->poll_js);
			json_object_object_add(p, "returnByValue", json_object_new_boolean(1));
			track(r, send_cmd(r, t, "Runtime.evaluate", p), i, C_POLL);
		}
	}
	release_held(r, now);
}

/* Give waiting pages to idle tabs; open tabs (and the browser) as needed. */
static void schedule(tr_render *r, int64_t now)
{
	int open = 0;
	if (!r->wq_head)
		return;
	if (!r->available) {
		while (r->wq_head) {
			page *pg = r->wq_head;
			r->wq_head = pg->next;
			r->nwait--;
			r->tabs[0].pg = pg;
			r->tabs[0].started_us = tr_mono_us();
			r->nbusy++;
			finish(r, 0, TRAWLER__V1__FETCH_ERROR__ERROR_RENDER_UNAVAILABLE,
			       "render mode unavailable: no Chromium binary (install with "
			       "deploy/deps.sh --render, or set --chromium)",
			       NULL);
		}
		r->wq_tail = NULL;
		return;
	}
	if (!r->cdp) {
		if (now < r->restart_ms)
			return;
		if (browser_start(r) != TR_OK) {
			browser_failed(r, "cannot start the browser");
			return;
		}
	}
	for (int i = 0; i < r->o.tabs && r->wq_head; i++) {
		tab *t = &r->tabs[i];
		if (t->state == T_IDLE) {
			page *pg = r->wq_head;
			r->wq_head = pg->next;
			if (!r->wq_head)
				r->wq_tail = NULL;
			r->nwait--;
			pg->next = NULL;
			tab_navigate(r, i, pg);
		}
	}
	for (int i = 0; i < r->o.tabs; i++)
		if (r->tabs[i].state == T_OPENING)
			open++;
	for (int i = 0; i < r->o.tabs && open < r->nwait; i++)
		if (r->tabs[i].state == T_NONE) {
			tab_open(r, i);
			open++;
		}
}

int tr_render_perform(tr_render *r)
{
	int64_t now = tr_mono_ms();
	if (r->cdp) {
		int rc = tr_cdp_io(r->cdp);
		json_object *m;
		while (r->cdp && (m = tr_cdp_next(r->cdp)) != NULL) {
			handle(r, m);
			json_object_put(m);
		}
		if (r->cdp && rc != TR_OK)
			browser_failed(r, rc == TR_ETOOBIG ? "browser message over the size cap"
							   : "browser exited");
		else if (r->cdp && waitpid(tr_cdp_pid(r->cdp), NULL, WNOHANG) == tr_cdp_pid(r->cdp))
			browser_failed(r, "browser exited");
	}
	timers(r, now);
	schedule(r, now);
	if (r->cdp && tr_cdp_want_write(r->cdp) && tr_cdp_io(r->cdp) != TR_OK)
		browser_failed(r, "browser exited");
	return r->nbusy + r->nwait;
}

unsigned tr_render_waitfds(const tr_render *r, struct curl_waitfd *out, unsigned max)
{
	unsigned n = 0;
	if (!r->cdp)
		return 0;
	if (n < max) {
		out[n].fd = tr_cdp_read_fd(r->cdp);
		out[n].events = CURL_WAIT_POLLIN;
		out[n++].revents = 0;
	}
	if (n < max && tr_cdp_want_write(r->cdp)) {
		out[n].fd = tr_cdp_write_fd(r->cdp);
		out[n].events = CURL_WAIT_POLLOUT;
		out[n++].revents = 0;
	}
	return n;
}

int64_t tr_render_next_ms(const tr_render *r)
{
	int64_t next = INT64_MAX;
	if (r->wq_head && !r->cdp)
		next = r->restart_ms;
	for (int i = 0; i < MAX_TABS; i++) {
		const tab *t = &r->tabs[i];
		if (t->state == T_BUSY || t->state == T_OPENING || t->state == T_RESETTING)
			if (t->deadline_ms < next)
				next = t->deadline_ms;
		if (t->state == T_BUSY && t->next_poll_ms && t->next_poll_ms < next)
			next = t->next_poll_ms;
	}
	for (size_t i = 0; i < r->nheld; i++)
		if (r->held[i].due_ms < next)
			next = r->held[i].due_ms;
	return next;
}

int tr_render_held(const tr_render *r)
{
	return r->nbusy + r->nwait;
}

int tr_render_waiting(const tr_render *r)
{
	return r->nwait;
}

long tr_render_browser_pid(const tr_render *r)
{
	return r->cdp ? (long)tr_cdp_pid(r->cdp) : 0;
}
