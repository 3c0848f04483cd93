/* test_limits.c - every cap that a library function enforces counts its
 * hits in trawler_limit_hits_total{limit=...} (docs/limits.md): trigger
 * each cap once and check that its counter, and only when hit, moves. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "deadletter.h"
#include "htmlinput.h"
#include "links.h"
#include "sitemap.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "polite.h"
#include "robots.h"
#include "scope.h"
#include "url.h"

/* The value of trawler_limit_hits_total{limit="name"}, -1 when absent. */
static double hits(const char *name)
{
	tr_buf b;
	char key[128];
	const char *p;
	double v = -1;

	tr_buf_init(&b, 1 << 22);
	snprintf(key, sizeof(key), "trawler_limit_hits_total{limit=\"%s\"} ", name);
	if (tr_metrics_render(&b) == TR_OK && tr_buf_add(&b, "", 1) == TR_OK &&
	    (p = strstr(b.data, key)) != NULL)
		v = strtod(p + strlen(key), NULL);
	tr_buf_free(&b);
	return v;
}

/* Run `what`, which must move counter `name` by exactly `want` (0: not at
 * all); print the counter on a mismatch. */
#define EXPECT_HITS(name, want, what)                                                              \
	do {                                                                                       \
		double before_ = hits(name);                                                       \
		what;                                                                              \
		double moved_ = hits(name) - before_;                                              \
		if (before_ < 0 || moved_ != (want))                                               \
			fprintf(stderr, "%s: before %.0f, moved %.0f, want %d\n", name, before_,   \
				moved_, (int)(want));                                              \
		CHECK(before_ >= 0 && moved_ == (want));                                           \
	} while (0)

static void extract(const char *html, size_t len, const char *charset, size_t max)
{
	tr_links l;
	if (tr_links_extract_charset(&l, html, len, "http://limits.example/", charset, max) ==
	    TR_OK)
		tr_links_free(&l);
}

static void test_links(void)
{
	char *big = malloc(TR_URL_MAX_LEN + 200);
	char *page = malloc(TR_URL_MAX_LEN + 400);
	size_t n;

	/* links per page: 5 links, cap 2 (one hit for the page); cap 10: none */
	const char *five = "<a href=/1>1</a><a href=/2>2</a><a href=/3>3</a>"
			   "<a href=/4>4</a><a href=/5>5</a>";
	EXPECT_HITS("links_per_page", 1, extract(five, strlen(five), NULL, 2));
	EXPECT_HITS("links_per_page", 0, extract(five, strlen(five), NULL, 10));

	/* URL bytes: one reference over TR_URL_MAX_LEN */
	memset(big, 'a', TR_URL_MAX_LEN + 100);
	big[TR_URL_MAX_LEN + 100] = '\0';
	n = (size_t)snprintf(page, TR_URL_MAX_LEN + 400, "<a href=\"/%s\">x</a><a href=/ok>ok</a>",
			     big);
	EXPECT_HITS("url_length", 1, extract(page, n, NULL, 100));
	EXPECT_HITS("url_length", 0, extract(five, strlen(five), NULL, 100));

	/* title: 2000 bytes, cut at TR_LINKS_TITLE_MAX */
	memset(big, 'T', 2000);
	big[2000] = '\0';
	n = (size_t)snprintf(page, TR_URL_MAX_LEN + 400, "<title>%s</title>", big);
	EXPECT_HITS("title", 1, extract(page, n, NULL, 100));
	EXPECT_HITS("title", 0, extract("<title>short</title>", 20, NULL, 100));
	free(big);
	free(page);
}

/* The UTF-8 document handed to libxml2: a windows-1251 page of Cyrillic
 * (2 bytes each in UTF-8) larger than half of TR_HTML_UTF8_MAX is cut. */
static void test_html_utf8(void)
{
	size_t len = TR_HTML_UTF8_MAX / 2 + 1024 * 1024, n;
	char *doc = malloc(len), *owned = NULL;
	const char *html = doc, *small = "<p>\xe0\xe1\xe2</p>";

	memset(doc, 0xe0, len);
	memcpy(doc, "<p>", 3);
	n = len;
	EXPECT_HITS("html_utf8", 1, tr_html_prepare(&html, &n, "windows-1251", &owned));
	CHECK(owned != NULL && n <= TR_HTML_UTF8_MAX && n > TR_HTML_UTF8_MAX - 16);
	CHECK(owned != NULL && tr_html_is_utf8((const unsigned char *)owned, n));
	free(owned);
	html = small;
	n = strlen(small);
	EXPECT_HITS("html_utf8", 0, tr_html_prepare(&html, &n, "windows-1251", &owned));
	CHECK(n == 3 + 6 + 4); /* three Cyrillic letters: 2 bytes each */
	free(owned);
	free(doc);
}

static void parse_robots(const char *body, size_t len)
{
	tr_robots *r = NULL;
	if (tr_robots_parse(&r, body, len, "trawler") == TR_OK)
		tr_robots_free(r);
}

static void test_robots(void)
{
	size_t cap = TR_ROBOTS_MAX_BYTES + 4096, n = 0, i;
	char *body = malloc(cap + 16384);
	const char *ok = "User-agent: *\nDisallow: /private\nCrawl-delay: 2\n"
			 "Sitemap: http://limits.example/sitemap.xml\n";

	/* every robots.txt cap, and a normal file that hits none */
	EXPECT_HITS("robots_size", 0, parse_robots(ok, strlen(ok)));
	EXPECT_HITS("robots_rules", 0, parse_robots(ok, strlen(ok)));
	EXPECT_HITS("robots_rule_bytes", 0, parse_robots(ok, strlen(ok)));
	EXPECT_HITS("robots_sitemaps", 0, parse_robots(ok, strlen(ok)));
	EXPECT_HITS("robots_crawl_delay", 0, parse_robots(ok, strlen(ok)));

	n = (size_t)snprintf(body, cap, "User-agent: *\n");
	for (i = 0; i < TR_ROBOTS_MAX_RULES + 5; i++)
		n += (size_t)snprintf(body + n, cap - n, "Disallow: /r%zu\n", i);
	EXPECT_HITS("robots_rules", 5, parse_robots(body, n));

	n = (size_t)snprintf(body, cap, "User-agent: *\nDisallow: /");
	memset(body + n, 'x', TR_ROBOTS_MAX_PATTERN + 10);
	n += TR_ROBOTS_MAX_PATTERN + 10;
	n += (size_t)snprintf(body + n, cap - n, "\nCrawl-delay: 100000000\n");
	EXPECT_HITS("robots_rule_bytes", 1, parse_robots(body, n));
	EXPECT_HITS("robots_crawl_delay", 1, parse_robots(body, n));

	n = 0;
	for (i = 0; i < TR_ROBOTS_MAX_SITEMAPS + 3; i++)
		n +=
		    (size_t)snprintf(body + n, cap - n, "Sitemap: http://limits.example/s%zu\n", i);
	EXPECT_HITS("robots_sitemaps", 3, parse_robots(body, n));

	memset(body, '#', cap);
	EXPECT_HITS("robots_size", 1, parse_robots(body, cap));
	free(body);
}

static void test_scope(void)
{
	tr_scope_opts o = {"host", "", "", 50, "", true};
	tr_scope *s = NULL;
	tr_crawl_info info;
	char err[256], *out = NULL, *url = malloc(256 * 8 + 64);
	size_t n, i;

	memset(&info, 0, sizeof(info));
	CHECK(tr_scope_new(&s, &o, err, sizeof(err)) == TR_OK);
	if (s == NULL)
		return;
	EXPECT_HITS("followed_url_length", 1,
		    tr_scope_check(s, &info, "http://limits.example/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
				   "limits.example"));
	EXPECT_HITS("followed_url_length", 0,
		    tr_scope_check(s, &info, "http://limits.example/", "limits.example"));

	n = (size_t)sprintf(url, "http://limits.example/?");
	for (i = 0; i < 300; i++)
		n += (size_t)sprintf(url + n, "p%zu=1&", i);
	EXPECT_HITS("query_params", 1, CHECK(tr_scope_normalize(s, &out, url) == TR_OK));
	CHECK(out != NULL && strcmp(out, url) == 0); /* kept as is, nothing dropped */
	free(out);
	out = NULL;
	EXPECT_HITS("query_params", 0,
		    CHECK(tr_scope_normalize(s, &out, "http://limits.example/?b=1&a=2") == TR_OK));
	free(out);
	free(url);
	tr_scope_free(s);
}

static void test_fields(void)
{
	tr_page pg;
	char *v = malloc(TR_PAGE_MAX_VALUE_BYTES + 100);
	int rc = TR_OK;
	size_t i;

	memset(&pg, 0, sizeof(pg));
	memset(v, 'v', TR_PAGE_MAX_VALUE_BYTES + 99);
	v[TR_PAGE_MAX_VALUE_BYTES + 99] = '\0';
	EXPECT_HITS("field_value_bytes", 1, CHECK(tr_page_add_field(&pg, "f", v, true) == TR_OK));
	EXPECT_HITS("field_value_bytes", 0, CHECK(tr_page_add_field(&pg, "f", "x", true) == TR_OK));
	for (i = 2; i < TR_PAGE_MAX_FIELD_VALUES && rc == TR_OK; i++)
		rc = tr_page_add_field(&pg, "g", "y", true);
	CHECK(rc == TR_OK);
	EXPECT_HITS("field_values", 1, CHECK(tr_page_add_field(&pg, "g", "z", true) == TR_ETOOBIG));
	tr_page_clear(&pg);
	free(v);
}

static void test_deadletter(void)
{
	rd_kafka_message_t m;
	size_t len = 0;
	uint8_t *out;
	char *payload = calloc(1, TR_DEADLETTER_MAX_ORIGINAL + 10);

	memset(&m, 0, sizeof(m));
	m.payload = payload;
	m.len = TR_DEADLETTER_MAX_ORIGINAL + 10;
	EXPECT_HITS("deadletter_original", 1,
		    out = tr_deadletter_pack(&m, "t", "test", "reason", "w", &len));
	free(out);
	m.len = 10;
	EXPECT_HITS("deadletter_original", 0,
		    out = tr_deadletter_pack(&m, "t", "test", "reason", "w", &len));
	free(out);
	free(payload);
}

static void count_loc(const char *loc, void *payload)
{
	(void)loc;
	(*(int *)payload)++;
}

static void test_sitemap(void)
{
	static const char xml[] = "<?xml version=\"1.0\"?>"
				  "<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">"
				  "<url><loc>http://a.example/1</loc></url>"
				  "<url><loc>http://a.example/2</loc></url>"
				  "<url><loc>http://a.example/3</loc></url></urlset>";
	bool cut = false;
	int n = 0;
	EXPECT_HITS("sitemap", 1,
		    tr_sitemap_parse(xml, sizeof(xml) - 1, 1 << 20, 2, count_loc, &n, &cut));
	CHECK(cut && n == 2);
	n = 0;
	EXPECT_HITS("sitemap", 0,
		    tr_sitemap_parse(xml, sizeof(xml) - 1, 1 << 20, 3, count_loc, &n, &cut));
	CHECK(!cut && n == 3);
}

static void test_log_line(void)
{
	char *v = malloc(10000);

	memset(v, 'l', 9999);
	v[9999] = '\0';
	EXPECT_HITS("log_line", 1, tr_log(TR_LOG_INFO, "a long value", 1, "v", v));
	EXPECT_HITS("log_line", 0, tr_log(TR_LOG_INFO, "a short value", 1, "v", "short"));
	free(v);
}

static bool instant_lookup(const char *host, char *addr, size_t alen)
{
	TR_UNUSED(host);
	snprintf(addr, alen, "127.0.0.1");
	return true;
}

/* Collect answers until n have come in (at most ~10 s). */
static size_t collect(tr_polite_resolver *r, size_t n)
{
	size_t got = 0;
	struct pollfd pfd = {tr_polite_resolver_fd(r), POLLIN, 0};
	for (int i = 0; i < 1000 && got < n; i++) {
		got += tr_polite_resolver_collect(r);
		if (got < n)
			poll(&pfd, 1, 10);
	}
	return got;
}

/* ip mode: at most TR_POLITE_DNS_MAX lookups wait to be collected. */
static void test_dns_queue(void)
{
	tr_polite_resolver *r = NULL;
	char url[64], out[300];
	int eagain = 0;
	CHECK(tr_polite_resolver_new(&r, NULL) == TR_OK);
	tr_polite_resolver_set_lookup(r, instant_lookup);
	for (int i = 0; i < TR_POLITE_DNS_MAX; i++) {
		snprintf(url, sizeof(url), "http://h%d.test/", i);
		eagain += tr_polite_key_try(out, sizeof(out), r, url, TR_POLITE_IP) == TR_EAGAIN;
	}
	CHECK(eagain == TR_POLITE_DNS_MAX); /* each queued, none collected */
	EXPECT_HITS("polite_dns_queue", 1,
		    CHECK(tr_polite_key_try(out, sizeof(out), r, "http://over.test/",
					    TR_POLITE_IP) == TR_EAGAIN));
	CHECK(collect(r, TR_POLITE_DNS_MAX) == TR_POLITE_DNS_MAX); /* over.test was not queued */
	CHECK(tr_polite_resolver_collect(r) == 0);
	EXPECT_HITS("polite_dns_queue", 0,
		    CHECK(tr_polite_key_try(out, sizeof(out), r, "http://over.test/",
					    TR_POLITE_IP) == TR_EAGAIN));
	CHECK(collect(r, 1) == 1);
	CHECK(tr_polite_key_try(out, sizeof(out), r, "http://over.test/", TR_POLITE_IP) == TR_OK);
	CHECK_STR(out, "127.0.0.1");
	tr_polite_resolver_free(r);
}

int main(void)
{
	tr_log_setup("test_limits", TR_LOG_LOGFMT, TR_LOG_INFO);
	CHECK(tr_metrics_init("test", "0") == TR_OK);
	tr_links_global_init();
	test_links();
	test_html_utf8();
	test_robots();
	test_scope();
	test_fields();
	test_deadletter();
	test_log_line();
	test_sitemap();
	test_dns_queue();
	tr_metrics_shutdown();
	return check_summary();
}
