/* fuzz_proto.c - libFuzzer target: protobuf decode of the frontier and pages
 * messages, and what the workers do with a decoded message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crawlstate.h"
#include "deadletter.h"
#include "links.h"
#include "page.h"
#include "request.h"
#include "scope.h"
#include "trawler.pb-c.h"
#include "url.h"

/*
 * Every input is a Kafka message value, read the way each topic's worker
 * reads it:
 *  1. as a CrawlRequest (frontier topic, producer/producer.c
 *     take_message): when it decodes with a url and a crawl_id, the
 *     FetchResult the producer publishes for it (the decoded request
 *     embedded, publish_result / publish_error) must decode back with the
 *     same request;
 *  2. as a FetchResult (pages topic, consumer/consumer.c process_batch):
 *     when it has a request with a url and a crawl_id, tr_page_process()
 *     runs with a dummy tr_crawl_info (scope: a fixed host and the request
 *     URL's host), once without and once with a tr_scope (tracking
 *     parameters stripped, sorted query, --max-url-length 2048, a deny
 *     regex); then tr_page_jsonl(), and each followed link is packed as the
 *     consumer's CrawlRequest (publish_link);
 *  3. a value that fails either decode is packed as a DeadLetter (what both
 *     workers publish), which must decode back with the original capped at
 *     TR_DEADLETTER_MAX_ORIGINAL bytes.
 * Checked: no crash, leak or sanitizer report; the pages.jsonl line is one
 * JSON object in valid UTF-8 with no raw newline, then "\n"; links stay
 * within --max-links and the title within TR_LINKS_TITLE_MAX bytes of valid
 * UTF-8; followed URLs are canonical http(s) URLs with a host key, within
 * --max-url-length when the scope caps it, and survive the pack/unpack.
 *
 * The seed corpus (corpus/proto) holds valid packed messages, made with
 * protoc from text format, e.g.
 *   protoc --encode=trawler.v1.FetchResult -Iproto proto/trawler.proto \
 *     < page.txtpb > corpus/proto/seed-fetchresult-html
 */

#define FUZZ_MAX_LINKS 1000
#define FUZZ_MAX_URL_LENGTH 2048
#define FUZZ_LINE_MAX (64u * 1024 * 1024)
#define FUZZ_JSON_DEPTH 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_proto: %s: [%.300s]\n", what, detail != NULL ? detail : "(null)");
	abort();
}

/* ---------------------------------------------------------------------
 * A strict validator for one pages.jsonl line: JSON as tr_jsonw writes it
 * (no whitespace between tokens), strings in valid UTF-8. */

typedef struct jp {
	const unsigned char *p, *end;
	int depth;
} jp;

static bool j_value(jp *j);

/* Length of the valid UTF-8 sequence at p, 0 if invalid (RFC 3629). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t len, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xE0) == 0xC0)
		len = 2, cp = p[0] & 0x1Fu;
	else if ((p[0] & 0xF0) == 0xE0)
		len = 3, cp = p[0] & 0x0Fu;
	else if ((p[0] & 0xF8) == 0xF0)
		len = 4, cp = p[0] & 0x07u;
	else
		return 0;
	if ((size_t)(end - p) < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3Fu);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t len;

	while (p < end) {
		if ((len = utf8_len(p, end)) == 0)
			return false;
		p += len;
	}
	return true;
}

static bool j_hex4(jp *j)
{
	for (int i = 0; i < 4; i++, j->p++)
		if (j->p >= j->end ||
		    !((*j->p >= '0' && *j->p <= '9') || (*j->p >= 'a' && *j->p <= 'f') ||
		      (*j->p >= 'A' && *j->p <= 'F')))
			return false;
	return true;
}

static bool j_string(jp *j)
{
	size_t len;

	if (j->p >= j->end || *j->p != '"')
		return false;
	j->p++;
	while (j->p < j->end) {
		unsigned char c = *j->p;
		if (c == '"') {
			j->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (++j->p >= j->end)
				return false;
			c = *j->p++;
			if (c == 'u') {
				if (!j_hex4(j))
					return false;
			} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
				return false;
			}
			continue;
		}
		if ((len = utf8_len(j->p, j->end)) == 0)
			return false;
		j->p += len;
	}
	return false;
}

static bool j_digits(jp *j)
{
	const unsigned char *s = j->p;
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > s;
}

static bool j_number(jp *j)
{
	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!j_digits(j))
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!j_digits(j))
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!j_digits(j))
			return false;
	}
	return true;
}

static bool j_lit(jp *j, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool j_container(jp *j, char open, char close)
{
	bool ok = true;

	if (++j->depth > FUZZ_JSON_DEPTH)
		return false;
	j->p++; /* open */
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		return true;
	}
	for (;;) {
		if (open == '{') {
			if (!j_string(j) || j->p >= j->end || *j->p++ != ':') {
				ok = false;
				break;
			}
		}
		if (!j_value(j) || j->p >= j->end) {
			ok = false;
			break;
		}
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		ok = *j->p++ == close;
		break;
	}
	j->depth--;
	return ok;
}

static bool j_value(jp *j)
{
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '{':
		return j_container(j, '{', '}');
	case '[':
		return j_container(j, '[', ']');
	case '"':
		return j_string(j);
	case 't':
		return j_lit(j, "true");
	case 'f':
		return j_lit(j, "false");
	case 'n':
		return j_lit(j, "null");
	default:
		return j_number(j);
	}
}

/* One JSON object, then "\n", then nothing. */
static void check_jsonl_line(const char *s, size_t n)
{
	jp j = {(const unsigned char *)s, (const unsigned char *)s + n, 0};

	if (n < 3 || s[0] != '{' || s[n - 1] != '\n')
		fuzz_fail("pages.jsonl line is not {...}\\n", s);
	j.end--;
	if (!j_value(&j) || j.p != j.end)
		fuzz_fail("pages.jsonl line is not valid JSON", s);
}

/* ---------------------------------------------------------------------
 * The workers' paths */

/* 1. the producer: a CrawlRequest from the frontier. Whatever it accepts
 * it fetches and publishes a FetchResult that embeds the decoded request
 * (producer/producer.c publish_result): the consumer must be able to decode
 * that, or the page is dead-lettered and never marked done. */
static void fuzz_request(const uint8_t *data, size_t size)
{
	Trawler__V1__CrawlRequest *req;
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT, *back;
	char key[300];
	uint8_t *buf;
	size_t len;

	req = trawler__v1__crawl_request__unpack(NULL, size, data);
	if (req == NULL)
		return;
	tr_request_drop_unknown(req); /* as the producer does */
	if (req->url == NULL || req->crawl_id == NULL || !*req->crawl_id)
		goto out; /* dead-lettered by the producer */
	/* no host key: published at once as error bad_url, request embedded
	 * all the same (publish_error) */
	(void)tr_url_host_key(key, sizeof(key), req->url);
	(void)tr_page_wants_head(req->url, "pdf,zip,jpg,png");
	res.request = req;
	res.final_url = req->url;
	res.status = 200;
	res.content_type = (char *)"text/html";
	res.worker_id = (char *)"fuzz";
	len = trawler__v1__fetch_result__get_packed_size(&res);
	if ((buf = malloc(len ? len : 1)) == NULL)
		goto out;
	if (trawler__v1__fetch_result__pack(&res, buf) != len)
		fuzz_fail("FetchResult pack size", req->url);
	back = trawler__v1__fetch_result__unpack(NULL, len, buf);
	if (back == NULL || back->request == NULL || strcmp(back->request->url, req->url) != 0 ||
	    strcmp(back->request->crawl_id, req->crawl_id) != 0 ||
	    back->request->depth != req->depth || back->request->fingerprint != req->fingerprint ||
	    back->request->n_metadata != req->n_metadata)
		fuzz_fail("the FetchResult for an accepted CrawlRequest does not decode back",
			  req->url);
	trawler__v1__fetch_result__free_unpacked(back, NULL);
	free(buf);
out:
	trawler__v1__crawl_request__free_unpacked(req, NULL);
}

/* The consumer's publish_link(): one followed URL as a CrawlRequest. */
static void fuzz_publish(const Trawler__V1__FetchResult *res, const tr_page *pg, size_t k)
{
	Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT, *back;
	char key[300];
	uint8_t *buf;
	size_t len;

	rq.url = pg->follow_urls[k];
	rq.crawl_id = res->request->crawl_id;
	rq.depth = res->request->depth + 1;
	rq.referrer = res->final_url && *res->final_url ? res->final_url : res->request->url;
	rq.attempt = 1;
	rq.fingerprint = pg->follow_fps[k];
	rq.parent_fingerprint = pg->fp;
	if (tr_url_host_key(key, sizeof(key), rq.url) != TR_OK)
		fuzz_fail("followed URL without a host key", rq.url);
	len = trawler__v1__crawl_request__get_packed_size(&rq);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return;
	trawler__v1__crawl_request__pack(&rq, buf);
	back = trawler__v1__crawl_request__unpack(NULL, len, buf);
	if (back == NULL || strcmp(back->url, rq.url) != 0 || back->fingerprint != rq.fingerprint)
		fuzz_fail("published link does not decode back", rq.url);
	trawler__v1__crawl_request__free_unpacked(back, NULL);
	free(buf);
}

static void check_page(const Trawler__V1__FetchResult *res, const tr_page *pg, long max_url)
{
	char *again = NULL;
	size_t i, n;

	if (pg->links.count > FUZZ_MAX_LINKS)
		fuzz_fail("more links than --max-links", res->request->url);
	if (pg->nfollow > pg->links.count)
		fuzz_fail("more links followed than found", res->request->url);
	if (pg->links.title != NULL &&
	    ((n = strlen(pg->links.title)) > TR_LINKS_TITLE_MAX || !utf8_valid(pg->links.title, n)))
		fuzz_fail("title over the cap or not UTF-8", pg->links.title);
	for (i = 0; i < pg->nfollow; i++) {
		const char *u = pg->follow_urls[i];
		n = strlen(u);
		if (!tr_url_is_http(u) || n > TR_URL_MAX_LEN ||
		    (max_url > 0 && n > (size_t)max_url))
			fuzz_fail("followed URL not http(s) or too long", u);
		if (tr_url_canonicalize(&again, u) != TR_OK || strcmp(again, u) != 0)
			fuzz_fail("followed URL not canonical", u);
		free(again);
		again = NULL;
		if (tr_url_fingerprint(u, n) != pg->follow_fps[i])
			fuzz_fail("fingerprint of a followed URL", u);
		fuzz_publish(res, pg, i);
	}
}

/* 2. the consumer: a FetchResult from the pages topic. */
static void fuzz_result(const uint8_t *data, size_t size)
{
	static tr_scope *scope;
	static char fixed_scope[] = "fuzz.example:80";
	static char own_scope[300];
	Trawler__V1__FetchResult *res;
	tr_crawl_info crawl;
	tr_page_opts opts;
	tr_page pg;
	tr_buf line;
	char err[256];
	int pass;

	if (scope == NULL) {
		tr_scope_opts so = {.mode = "host",
				    .allow_regex = "",
				    .deny_regex = "(^|/)private(/|$)|[?&]sessionid=",
				    .max_url_length = FUZZ_MAX_URL_LENGTH,
				    .strip_params =
					"utm_*,fbclid,gclid,dclid,msclkid,mc_eid,_ga,_hsenc",
				    .sort_query = true};
		if (tr_scope_new(&scope, &so, err, sizeof(err)) != TR_OK)
			fuzz_fail("tr_scope_new", err);
	}
	res = trawler__v1__fetch_result__unpack(NULL, size, data);
	if (res == NULL)
		return;
	if (res->request == NULL || res->request->url == NULL || res->request->crawl_id == NULL)
		goto out; /* dead-lettered by the consumer */

	memset(&crawl, 0, sizeof(crawl));
	snprintf(crawl.crawl_id, sizeof(crawl.crawl_id), "%s", "fuzz");
	crawl.dedup_buckets = 1024;
	crawl.scope[crawl.nscope++] = fixed_scope;
	if (tr_url_host_key(own_scope, sizeof(own_scope), res->request->url) == TR_OK)
		crawl.scope[crawl.nscope++] = own_scope;
	tr_buf_init(&line, FUZZ_LINE_MAX);
	for (pass = 0; pass < 2; pass++) {
		memset(&opts, 0, sizeof(opts));
		opts.scope = pass ? scope : NULL;
		opts.max_depth = pass ? 3 : 1000;
		opts.max_links = FUZZ_MAX_LINKS;
		opts.follow_nofollow = (size & 1) != 0;
		if (tr_page_process(&pg, res, &crawl, &opts) != TR_OK)
			continue; /* out of memory */
		check_page(res, &pg, pass ? FUZZ_MAX_URL_LENGTH : 0);
		tr_buf_reset(&line);
		if (tr_page_jsonl(&line, &pg) != TR_OK)
			fuzz_fail("tr_page_jsonl failed", res->request->url);
		check_jsonl_line(line.data, line.len);
		tr_page_clear(&pg);
	}
	tr_buf_free(&line);
out:
	trawler__v1__fetch_result__free_unpacked(res, NULL);
}

/* 3. what both workers publish for a value they cannot use. */
static void fuzz_dead_letter(const uint8_t *data, size_t size)
{
	rd_kafka_message_t m;
	Trawler__V1__DeadLetter *dl;
	uint8_t *buf;
	size_t len, keep = size > TR_DEADLETTER_MAX_ORIGINAL ? TR_DEADLETTER_MAX_ORIGINAL : size;

	memset(&m, 0, sizeof(m));
	m.payload = (void *)data;
	m.len = size;
	m.partition = 3;
	m.offset = 42;
	buf = tr_deadletter_pack(&m, "trawler.pages", "consumer:decode",
				 "not a FetchResult (protobuf decode failed)", "fuzz", &len);
	if (buf == NULL)
		return;
	dl = trawler__v1__dead_letter__unpack(NULL, len, buf);
	if (dl == NULL || dl->original.len != keep ||
	    (keep && memcmp(dl->original.data, data, keep) != 0) || dl->offset != 42)
		fuzz_fail("DeadLetter does not decode back", dl ? dl->reason : NULL);
	trawler__v1__dead_letter__free_unpacked(dl, NULL);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	Trawler__V1__FetchResult *res;
	Trawler__V1__CrawlRequest *req;

	if (!init) {
		tr_links_global_init();
		init = true;
	}
	fuzz_request(data, size);
	fuzz_result(data, size);
	res = trawler__v1__fetch_result__unpack(NULL, size, data);
	req = trawler__v1__crawl_request__unpack(NULL, size, data);
	if (res == NULL || req == NULL)
		fuzz_dead_letter(data, size);
	if (res != NULL)
		trawler__v1__fetch_result__free_unpacked(res, NULL);
	if (req != NULL)
		trawler__v1__crawl_request__free_unpacked(req, NULL);
	return 0;
}
