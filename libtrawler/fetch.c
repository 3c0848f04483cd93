/* fetch.c - libcurl multi-interface fetcher producing FetchResult messages. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "fetch.h"
#include "request.h"
#include "log.h"
#include "metrics.h"

#define MAX_HEADER_BYTES (64 * 1024) /* header block of one response */
#define MAX_HEADERS 100
#define MAX_HOPS 32 /* redirect hops recorded */

typedef struct xfer {
	CURL *easy;
	tr_fetcher *f;
	Trawler__V1__CrawlRequest *req;
	void *ctx;
	tr_buf body;
	tr_buf hdr;	 /* raw header lines of the current response */
	long cur_status; /* status of the response whose headers are read */
	char *hop_url[MAX_HOPS];
	long hop_status[MAX_HOPS];
	int nhops;
	bool hops_capped; /* a hop past MAX_HOPS was not recorded */
	bool truncated;
	bool blocked;
	bool running;
	bool type_refused; /* final response's Content-Type not in the allow list */
	bool body_refused; /* ... and it had a body, which was not downloaded */
	bool hdr_too_big;
	struct curl_slist *req_headers; /* If-None-Match / If-Modified-Since */
	struct xfer *next_free;
	struct xfer *next_all; /* every transfer ever created, for cleanup */
} xfer;

struct tr_fetcher {
	CURLM *multi;
	CURLSH *share;
	tr_fetch_opts o;
	char *user_agent;
	char *worker_id;
	char *allow_address;
	char *ca_file;
	char *content_types;
	struct curl_slist *resolve; /* CURLOPT_RESOLVE entries */
	tr_fetch_done_cb cb;
	tr_fetch_send_cb send_cb;
	void *payload;
	xfer *free_list;
	xfer *all;
	int running;
};

const char *tr_fetch_error_name(Trawler__V1__FetchError e)
{
	switch (e) {
	case TRAWLER__V1__FETCH_ERROR__ERROR_NONE:
		return "none";
	case TRAWLER__V1__FETCH_ERROR__ERROR_DNS:
		return "dns";
	case TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT:
		return "connect";
	case TRAWLER__V1__FETCH_ERROR__ERROR_TIMEOUT:
		return "timeout";
	case TRAWLER__V1__FETCH_ERROR__ERROR_TLS:
		return "tls";
	case TRAWLER__V1__FETCH_ERROR__ERROR_TOO_MANY_REDIRECTS:
		return "too_many_redirects";
	case TRAWLER__V1__FETCH_ERROR__ERROR_BODY_TOO_LARGE:
		return "body_too_large";
	case TRAWLER__V1__FETCH_ERROR__ERROR_ROBOTS_DISALLOWED:
		return "robots_disallowed";
	case TRAWLER__V1__FETCH_ERROR__ERROR_BLOCKED_ADDRESS:
		return "blocked_address";
	case TRAWLER__V1__FETCH_ERROR__ERROR_PROTOCOL:
		return "protocol";
	case TRAWLER__V1__FETCH_ERROR__ERROR_RECV:
		return "recv";
	case TRAWLER__V1__FETCH_ERROR__ERROR_SEND:
		return "send";
	case TRAWLER__V1__FETCH_ERROR__ERROR_BAD_URL:
		return "bad_url";
	case TRAWLER__V1__FETCH_ERROR__ERROR_CONTENT_TYPE:
		return "content_type";
	case TRAWLER__V1__FETCH_ERROR__ERROR_BROWSER:
		return "browser";
	case TRAWLER__V1__FETCH_ERROR__ERROR_RENDER_UNAVAILABLE:
		return "render_unavailable";
	default:
		return "other";
	}
}

bool tr_fetch_type_allowed(const char *list, const char *content_type)
{
	if (!list || !*list || strcmp(list, "*") == 0 || !content_type || !*content_type)
		return true;
	size_t tlen = strcspn(content_type, "; \t");
	for (const char *e = list; *e;) {
		size_t n = strcspn(e, ",");
		if (n && n <= tlen && strncasecmp(e, content_type, n) == 0 &&
		    (n == tlen || e[n - 1] == '/'))
			return true;
		e += n + (e[n] == ',');
	}
	return false;
}

const char *tr_fetch_header(const Trawler__V1__FetchResult *res, const char *name)
{
	for (size_t i = 0; i < res->n_headers; i++)
		if (res->headers[i]->name && strcasecmp(res->headers[i]->name, name) == 0)
			return res->headers[i]->value;
	return NULL;
}

int64_t tr_fetch_retry_after_ms(const Trawler__V1__FetchResult *res)
{
	const char *v = tr_fetch_header(res, "Retry-After");
	char *end = NULL;
	if (!v || !*v)
		return -1;
	long long secs = strtoll(v, &end, 10);
	if (end != v && (*end == '\0' || *end == ' ' || *end == '\r'))
		return secs < 0 ? -1 : secs * 1000;
	time_t when = curl_getdate(v, NULL);
	if (when < 0)
		return -1;
	int64_t ms = (int64_t)when * 1000 - tr_now_ms();
	return ms < 0 ? 0 : ms;
}

/* IPv4 address in host byte order: loopback, private, ...? */
static bool v4_is_private(uint32_t a)
{
	return (a >> 24) == 0 ||	       /* 0.0.0.0/8 */
	       (a >> 24) == 10 ||	       /* 10/8 */
	       (a >> 24) == 127 ||	       /* loopback */
	       (a >> 16) == 0xA9FE ||	       /* 169.254/16 link-local */
	       (a >> 20) == 0xAC1 ||	       /* 172.16/12 */
	       (a >> 16) == 0xC0A8 ||	       /* 192.168/16 */
	       (a >> 22) == (100u << 2 | 1) || /* 100.64/10 CGNAT */
	       (a >> 28) >= 0xE;	       /* 224/4 multicast, 240/4 reserved */
}

bool tr_fetch_addr_is_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in v4;
		memcpy(&v4, sa, sizeof(v4));
		return v4_is_private(ntohl(v4.sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 v6;
		memcpy(&v6, sa, sizeof(v6));
		const struct in6_addr *a6 = &v6.sin6_addr;
		const unsigned char *b = a6->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			return v4_is_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
					     (uint32_t)b[14] << 8 | b[15]);
		return IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_LOOPBACK(a6) ||
		       IN6_IS_ADDR_LINKLOCAL(a6) || IN6_IS_ADDR_MULTICAST(a6) ||
		       (b[0] & 0xFE) == 0xFC; /* fc00::/7 unique local */
	}
	return true;
}

/* Does the prefix of `bits` bits match between a and b (n bytes each)? */
static bool prefix_match(const unsigned char *a, const unsigned char *b, size_t n, long bits)
{
	for (size_t i = 0; i < n && bits > 0; i++, bits -= 8) {
		unsigned char mask = bits >= 8 ? 0xFF : (unsigned char)(0xFF << (8 - bits));
		if ((a[i] & mask) != (b[i] & mask))
			return false;
	}
	return true;
}

int tr_fetch_addr_in_list(const char *cidrs, const struct sockaddr *sa)
{
	int found = 0;
	const char *p = cidrs ? cidrs : "";
	while (*p) {
		char item[80], *slash;
		size_t n = strcspn(p, ",");
		unsigned char addr[16];
		long bits;
		int fam;
		if (n == 0) { /* empty item, e.g. ",," */
			p++;
			continue;
		}
		if (n >= sizeof(item))
			return TR_EINVAL;
		memcpy(item, p, n);
		item[n] = '\0';
		p += n + (p[n] == ',');
		slash = strchr(item, '/');
		if (slash)
			*slash = '\0';
		if (inet_pton(AF_INET, item, addr) == 1)
			fam = AF_INET;
		else if (inet_pton(AF_INET6, item, addr) == 1)
			fam = AF_INET6;
		else
			return TR_EINVAL;
		bits = fam == AF_INET ? 32 : 128;
		if (slash) {
			char *end;
			long b = strtol(slash + 1, &end, 10);
			if (*end || end == slash + 1 || b < 0 || b > bits)
				return TR_EINVAL;
			bits = b;
		}
		if (sa && sa->sa_family == fam) {
			unsigned char have[16];
			if (fam == AF_INET) {
				struct sockaddr_in v4;
				memcpy(&v4, sa, sizeof(v4));
				memcpy(have, &v4.sin_addr, 4);
			} else {
				struct sockaddr_in6 v6;
				memcpy(&v6, sa, sizeof(v6));
				memcpy(have, v6.sin6_addr.s6_addr, 16);
			}
			if (prefix_match(have, addr, fam == AF_INET ? 4 : 16, bits))
				found = 1;
		}
	}
	return found;
}

/* SSRF guard: check the address curl is about to connect to (after DNS, on
 * every redirect hop), not the host name. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	xfer *x = clientp;
	if (!x->f->o.allow_private && tr_fetch_addr_is_private(&addr->addr) &&
	    tr_fetch_addr_in_list(x->f->allow_address, &addr->addr) != 1) {
		x->blocked = true;
		return CURL_SOCKET_BAD;
	}
	return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	if (x->type_refused) {
		x->body_refused = true;
		return 0; /* abort: the body is not wanted */
	}
	if (tr_buf_add(&x->body, p, len) != TR_OK) {
		x->truncated = true;
		/* keep what fits, then abort the transfer */
		size_t room = x->body.max - x->body.len;
		if (room)
			tr_buf_add(&x->body, p, room);
		return 0;
	}
	return len;
}

/* Record one finished response head as a redirect hop if it was a 3xx. */
static void note_hop(xfer *x)
{
	char *url = NULL;
	if (x->cur_status < 300 || x->cur_status > 399)
		return;
	if (x->nhops >= MAX_HOPS) {
		if (!x->hops_capped) /* once per fetch */
			tr_metrics_limit_hit("redirect_hops_kept");
		x->hops_capped = true;
		return;
	}
	curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
	if (url && (x->hop_url[x->nhops] = strdup(url)) != NULL) {
		x->hop_status[x->nhops] = x->cur_status;
		x->nhops++;
	}
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	xfer *x = ud;
	size_t len = size * n;
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new response starts: the previous one (if any) was a hop */
		tr_buf_reset(&x->hdr);
		const char *sp = memchr(p, ' ', len);
		x->cur_status = sp ? strtol(sp + 1, NULL, 10) : 0;
		return len;
	}
	if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		note_hop(x);
		if (x->cur_status >= 200 && (x->cur_status < 300 || x->cur_status > 399)) {
			char *ct = NULL;
			curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
			/* a sitemap may come as application/gzip or octet-stream */
			x->type_refused = !tr_fetch_type_allowed(x->f->content_types, ct) &&
					  !tr_request_is_sitemap(x->req);
		}
		return len;
	}
	if (tr_buf_add(&x->hdr, p, len) != TR_OK) {
		x->hdr_too_big = true;
		tr_metrics_limit_hit("header_size");
		return 0; /* header block over the cap: abort */
	}
	return len;
}

void tr_fetcher_on_send(tr_fetcher *f, tr_fetch_send_cb cb)
{
	f->send_cb = cb;
}

static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
		     int conn_local_port)
{
	xfer *x = ud;
	if (x->f->send_cb)
		x->f->send_cb(x->ctx, x->f->payload);
	return CURL_PREREQFUNC_OK;
}

int tr_fetcher_new(tr_fetcher **out, const tr_fetch_opts *opts, tr_fetch_done_cb cb, void *payload)
{
	tr_fetcher *f = calloc(1, sizeof(*f));
	if (!f)
		return TR_ENOMEM;
	f->o = *opts;
	f->cb = cb;
	f->payload = payload;
	f->user_agent = strdup(opts->user_agent ? opts->user_agent : "trawler");
	f->worker_id = strdup(opts->worker_id ? opts->worker_id : "");
	f->allow_address = strdup(opts->allow_address ? opts->allow_address : "");
	f->ca_file = strdup(opts->ca_file ? opts->ca_file : "");
	f->content_types = strdup(opts->content_types ? opts->content_types : "*");
	f->multi = curl_multi_init();
	f->share = curl_share_init();
	if (!f->user_agent || !f->worker_id || !f->allow_address || !f->ca_file ||
	    !f->content_types || !f->multi || !f->share) {
		tr_fetcher_free(f);
		return TR_ENOMEM;
	}
	if (tr_fetch_addr_in_list(f->allow_address, NULL) < 0) {
		tr_fetcher_free(f);
		return TR_EINVAL;
	}
	for (const char *p = opts->resolve ? opts->resolve : ""; *p;) {
		size_t n = strcspn(p, ", ");
		char item[512];
		if (n && n < sizeof(item)) {
			struct curl_slist *l;
			memcpy(item, p, n);
			item[n] = '\0';
			if (!(l = curl_slist_append(f->resolve, item))) {
				tr_fetcher_free(f);
				return TR_ENOMEM;
			}
			f->resolve = l;
		}
		p += n + (p[n] != '\0');
	}
	f->o.resolve = NULL;
	curl_share_setopt(f->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(f->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, opts->max_total_conns);
	curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, opts->max_host_conns);
	curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, opts->max_total_conns);
	curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	f->o.user_agent = f->user_agent;
	f->o.worker_id = f->worker_id;
	*out = f;
	return TR_OK;
}

static void xfer_clear(xfer *x)
{
	for (int i = 0; i < x->nhops; i++)
		free(x->hop_url[i]);
	x->nhops = 0;
	tr_buf_reset(&x->body);
	tr_buf_reset(&x->hdr);
	x->truncated = x->blocked = false;
	x->type_refused = x->body_refused = x->hdr_too_big = x->hops_capped = false;
	curl_slist_free_all(x->req_headers);
	x->req_headers = NULL;
	x->cur_status = 0;
	if (x->req)
		trawler__v1__crawl_request__free_unpacked(x->req, NULL);
	x->req = NULL;
	x->ctx = NULL;
}

void tr_fetcher_free(tr_fetcher *f)
{
	if (!f)
		return;
	xfer *x = f->all;
	while (x) {
		xfer *next = x->next_all;
		if (x->running)
			curl_multi_remove_handle(f->multi, x->easy);
		xfer_clear(x); /* frees a request still in flight */
		curl_easy_cleanup(x->easy);
		tr_buf_free(&x->body);
		tr_buf_free(&x->hdr);
		free(x);
		x = next;
	}
	if (f->multi)
		curl_multi_cleanup(f->multi);
	if (f->share)
		curl_share_cleanup(f->share);
	free(f->user_agent);
	free(f->worker_id);
	free(f->allow_address);
	free(f->ca_file);
	free(f->content_types);
	curl_slist_free_all(f->resolve);
	free(f);
}

/* Add "name: value" for a conditional GET when value is a usable header
 * value (frontier input: no control bytes, at most TR_FETCH_MAX_VALIDATOR
 * bytes); unusable values are skipped. Returns 0 or TR_ENOMEM. */
static int add_validator(xfer *x, const char *name, const char *value)
{
	char line[TR_FETCH_MAX_VALIDATOR + 64];
	size_t n = value ? strlen(value) : 0;
	if (!n || n > TR_FETCH_MAX_VALIDATOR)
		return TR_OK;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
			return TR_OK;
	snprintf(line, sizeof(line), "%s: %s", name, value);
	struct curl_slist *l = curl_slist_append(x->req_headers, line);
	if (!l)
		return TR_ENOMEM;
	x->req_headers = l;
	return TR_OK;
}

int tr_fetcher_start(tr_fetcher *f, Trawler__V1__CrawlRequest *req, void *ctx)
{
	xfer *x = f->free_list;
	if (x) {
		f->free_list = x->next_free;
		curl_easy_reset(x->easy);
	} else {
		x = calloc(1, sizeof(*x));
		if (!x)
			return TR_ENOMEM;
		x->easy = curl_easy_init();
		if (!x->easy) {
			free(x);
			return TR_ENOMEM;
		}
		tr_buf_init(&x->hdr, MAX_HEADER_BYTES);
		tr_buf_init(&x->body, (size_t)f->o.max_body);
		x->next_all = f->all;
		f->all = x;
	}
	x->body.max = (size_t)f->o.max_body;
	x->f = f;
	x->req = req;
	x->ctx = ctx;

	CURL *e = x->easy;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_SHARE, f->share);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, f->o.max_redirects);
	curl_easy_setopt(e, CURLOPT_USERAGENT, f->user_agent);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(f->o.timeout * 1000));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(f->o.connect_timeout * 1000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (f->o.low_speed_limit > 0) { /* slowloris guard, reported as a timeout */
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, f->o.low_speed_limit);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)f->o.low_speed_time);
	}
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	/* no CURLOPT_PIPEWAIT: it makes an HTTP/1.1 request wait for a busy
	 * connection and then leave together with the next one, breaking the
	 * per-host gap; the scheduler already caps connections per host */
	curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 300L);
	if (f->resolve)
		curl_easy_setopt(e, CURLOPT_RESOLVE, f->resolve);
	if (f->ca_file[0]) {
		/* the extra bundle as CAfile, the system store still as CApath */
		curl_easy_setopt(e, CURLOPT_CAINFO, f->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (req->method == TRAWLER__V1__METHOD__METHOD_HEAD)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (add_validator(x, "If-None-Match", req->etag) != TR_OK ||
	    add_validator(x, "If-Modified-Since", req->last_modified) != TR_OK) {
		curl_slist_free_all(x->req_headers);
		x->req_headers = NULL;
	}
	if (x->req_headers)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_headers);
	if (req->range && (req->range->first || req->range->last)) {
		char range[64];
		if (req->range->last)
			snprintf(range, sizeof(range), "%llu-%llu",
				 (unsigned long long)req->range->first,
				 (unsigned long long)req->range->last);
		else
			snprintf(range, sizeof(range), "%llu-",
				 (unsigned long long)req->range->first);
		curl_easy_setopt(e, CURLOPT_RANGE, range);
	}
	if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
		x->req = NULL; /* still the caller's */
		xfer_clear(x);
		x->next_free = f->free_list;
		f->free_list = x;
		return TR_EIO;
	}
	f->running++;
	x->running = true;
	return TR_OK;
}

static Trawler__V1__FetchError map_error(CURLcode c, const xfer *x)
{
	switch (c) {
	case CURLE_OK:
		return TRAWLER__V1__FETCH_ERROR__ERROR_NONE;
	case CURLE_WRITE_ERROR:
		return x->truncated	 ? TRAWLER__V1__FETCH_ERROR__ERROR_NONE
		       : x->body_refused ? TRAWLER__V1__FETCH_ERROR__ERROR_CONTENT_TYPE
					 : TRAWLER__V1__FETCH_ERROR__ERROR_OTHER;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return TRAWLER__V1__FETCH_ERROR__ERROR_DNS;
	case CURLE_COULDNT_CONNECT:
		return x->blocked ? TRAWLER__V1__FETCH_ERROR__ERROR_BLOCKED_ADDRESS
				  : TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return TRAWLER__V1__FETCH_ERROR__ERROR_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return TRAWLER__V1__FETCH_ERROR__ERROR_TLS;
	case CURLE_TOO_MANY_REDIRECTS:
		return TRAWLER__V1__FETCH_ERROR__ERROR_TOO_MANY_REDIRECTS;
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return TRAWLER__V1__FETCH_ERROR__ERROR_RECV;
	case CURLE_SEND_ERROR:
		return TRAWLER__V1__FETCH_ERROR__ERROR_SEND;
	case CURLE_GOT_NOTHING:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_BAD_CONTENT_ENCODING:
		return TRAWLER__V1__FETCH_ERROR__ERROR_PROTOCOL;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return TRAWLER__V1__FETCH_ERROR__ERROR_BAD_URL;
	default:
		return TRAWLER__V1__FETCH_ERROR__ERROR_OTHER;
	}
}

/* Split the raw header block into Header messages (pointers into hdr). */
static size_t parse_headers(tr_buf *hdr, Trawler__V1__Header *hv, Trawler__V1__Header **hp)
{
	size_t n = 0;
	char *p = hdr->data;
	while (p && *p && n < MAX_HEADERS) {
		char *eol = strpbrk(p, "\r\n");
		char *next = eol ? eol + strspn(eol, "\r\n") : p + strlen(p);
		if (eol)
			*eol = '\0';
		char *colon = strchr(p, ':');
		if (colon && colon != p) {
			*colon = '\0';
			char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			trawler__v1__header__init(&hv[n]);
			hv[n].name = p;
			hv[n].value = v;
			hp[n] = &hv[n];
			n++;
		}
		p = next;
	}
	if (n == MAX_HEADERS && p && strchr(p, ':') != NULL)
		tr_metrics_limit_hit("headers_kept"); /* more header lines were left */
	return n;
}

static void finish(tr_fetcher *f, xfer *x, CURLcode code)
{
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
	Trawler__V1__Timings tm = TRAWLER__V1__TIMINGS__INIT;
	Trawler__V1__Redirect rv[MAX_HOPS];
	Trawler__V1__Redirect *rp[MAX_HOPS];
	Trawler__V1__Header hv[MAX_HEADERS];
	Trawler__V1__Header *hp[MAX_HEADERS];
	char *eff = NULL, *ctype = NULL, *ip = NULL;
	long status = 0, httpver = 0;
	curl_off_t t;
	char errbuf[256];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &eff);
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
	curl_easy_getinfo(x->easy, CURLINFO_PRIMARY_IP, &ip);
	curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &httpver);
	if (curl_easy_getinfo(x->easy, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK)
		tm.dns_us = (uint32_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK)
		tm.connect_us = (uint32_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_APPCONNECT_TIME_T, &t) == CURLE_OK)
		tm.tls_us = (uint32_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK)
		tm.ttfb_us = (uint32_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &t) == CURLE_OK)
		tm.total_us = (uint32_t)t;
	if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &t) == CURLE_OK)
		res.wire_bytes = (uint64_t)t;

	res.request = x->req;
	res.final_url = eff ? eff : x->req->url;
	res.error = map_error(code, x);
	if (res.error != TRAWLER__V1__FETCH_ERROR__ERROR_NONE) {
		if (x->blocked)
			snprintf(errbuf, sizeof(errbuf),
				 "target address is private (use --allow-private to allow)");
		else if (x->body_refused)
			snprintf(errbuf, sizeof(errbuf),
				 "content type '%s' not in the allow list: body not downloaded",
				 ctype ? ctype : "");
		else if (x->hdr_too_big)
			snprintf(errbuf, sizeof(errbuf), "response headers over %d bytes",
				 MAX_HEADER_BYTES);
		else
			snprintf(errbuf, sizeof(errbuf), "%s", curl_easy_strerror(code));
		res.error_message = errbuf;
		/* a transport failure (a redirect loop included: its hops are in
		 * the redirect chain) has no final response; a refused body does */
		if (!x->body_refused)
			status = 0;
	}
	res.status = (uint32_t)status;
	res.content_type = ctype ? ctype : (char *)"";
	res.remote_ip = ip ? ip : (char *)"";
	res.http_version = (char *)(httpver == CURL_HTTP_VERSION_2_0   ? "2"
				    : httpver == CURL_HTTP_VERSION_1_0 ? "1.0"
				    : httpver == CURL_HTTP_VERSION_1_1 ? "1.1"
				    : httpver == CURL_HTTP_VERSION_3   ? "3"
								       : "");
	res.body.data = (uint8_t *)x->body.data;
	res.body.len = x->body.len;
	res.truncated = x->truncated;
	res.partial = status == 206;
	res.not_modified = status == 304;
	res.fetched_at_ms = tr_now_ms();
	res.worker_id = f->worker_id;
	res.timings = &tm;
	for (int i = 0; i < x->nhops; i++) {
		trawler__v1__redirect__init(&rv[i]);
		rv[i].url = x->hop_url[i];
		rv[i].status = (uint32_t)x->hop_status[i];
		rp[i] = &rv[i];
	}
	res.n_redirects = (size_t)x->nhops;
	res.redirects = rp;
	res.n_headers = parse_headers(&x->hdr, hv, hp);
	res.headers = hp;

	if (f->cb(&res, x->ctx, f->payload))
		x->req = NULL; /* now the callee's */
}

int tr_fetcher_perform(tr_fetcher *f)
{
	int still = 0, left = 0;
	CURLMsg *m;
	curl_multi_perform(f->multi, &still);
	while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		xfer *x = NULL;
		CURL *e = m->easy_handle;
		CURLcode code = m->data.result;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(f->multi, e);
		f->running--;
		x->running = false;
		finish(f, x, code);
		xfer_clear(x);
		/* drop large buffers so memory stays flat */
		if (x->body.cap > 256 * 1024)
			tr_buf_free(&x->body);
		x->next_free = f->free_list;
		f->free_list = x;
	}
	return f->running;
}

void tr_fetcher_wait(tr_fetcher *f, struct curl_waitfd *extra, unsigned nextra, int timeout_ms)
{
	curl_multi_poll(f->multi, extra, nextra, timeout_ms, NULL);
}

int tr_fetcher_running(const tr_fetcher *f)
{
	return f->running;
}
