/* fuzz_extract.c - libFuzzer target: the rules file parser and the xpath and
 * json handlers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "links.h"
#include "page.h"
#include "pipeline.h"
#include "rules.h"
#include "url.h"

/*
 * Every input is used three ways:
 *  1. as a rules file: parsed; when it parses, its json rules run on a
 *     fixed JSON document and its sections are matched against a URL
 *     (XPath compilation is libxml2's, not fuzzed here);
 *  2. as the body of an HTML page, through both handlers with FUZZ_RULES
 *     (the first byte also picks the declared charset; '<', the usual
 *     first byte, picks none);
 *  3. as the body of a JSON response, the same way.
 * Checked: no crash, leak or sanitizer report; the page's value cap holds;
 * every field value is a string; every followed URL is canonical.
 */

#define FUZZ_URL "http://fuzz.example/dir/page.html?q=1"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char FUZZ_RULES[] = "title = xpath first //title\n"
				 "heads = xpath all //h1 | //h2 | //h3\n"
				 "attrs = xpath all //@*\n"
				 "text = xpath all //p/text()\n"
				 "n = xpath first count(//*)\n"
				 "sum = xpath first sum(//@data-n)\n"
				 "ratio = xpath all sum(//@data-n) div count(//*)\n"
				 "b = xpath first boolean(//a)\n"
				 "s = xpath first concat(//title, '|', string(//h1))\n"
				 "first = xpath first //body/*[1]\n"
				 "links = xpath follow //a/@href | //img/@src\n"
				 "[page ^http://fuzz\\.example/[a-z]+/\\w+\\.html]\n"
				 "classes = xpath all //*[@class]\n"
				 "name = json first name\n"
				 "name = json first [0].name\n"
				 "deep = json all a.b[*].c\n"
				 "every = json all [*]\n"
				 "everyall = json all [*][*]\n"
				 "idx = json first [0][1][\"x.y\"]\n"
				 "root = json first $\n"
				 "follow = json follow [*].url\n"
				 "urls = json follow links[*]\n"
				 "[page ^https://never/]\n"
				 "never = json first $\n";

static const char FUZZ_JSON[] =
    "{\"name\": \"n\", \"a\": {\"b\": [{\"c\": 1}, {\"c\": [true, null]}, {\"d\": 2}, "
    "{\"c\": {\"e\": \"x\"}}]}, \"links\": [\"/a\", \"b?c\", \"mailto:x\", 3, null, "
    "\"http://other.example/\"], \"x.y\": [1.5e3, -0, \"\\u00e9\\u0000z\"], "
    "\"\": {\"\": \"empty\"}, \"url\": \"http://fuzz.example/u\", "
    "\"list\": [[1, 2], [3, [4, [5]]], {\"url\": \"/rel\"}]}";

static const char *const fuzz_html_types[] = {
    "text/html; charset=utf-8",
    "text/html; charset=\"UTF-16LE\"",
    "text/html; charset=utf-16be",
    "text/html; charset=ISO-8859-1",
    "text/html",
    "application/xhtml+xml",
    "text/html; charset=shift_jis",
    "text/html;charset=x-bogus",
};

static void fuzz_fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_extract: %s: [%s]\n", what, detail != NULL ? detail : "(null)");
	abort();
}

static void fuzz_check(const tr_page *pg)
{
	size_t total = 0, i, k;
	char *again = NULL;

	for (i = 0; i < pg->nfields; i++) {
		if (pg->fields[i].name == NULL || pg->fields[i].count == 0)
			fuzz_fail("empty field", pg->fields[i].name);
		for (k = 0; k < pg->fields[i].count; k++)
			if (pg->fields[i].values[k] == NULL ||
			    strlen(pg->fields[i].values[k]) > TR_PAGE_MAX_VALUE_BYTES)
				fuzz_fail("bad value", pg->fields[i].name);
		total += pg->fields[i].count;
	}
	if (total > TR_PAGE_MAX_FIELD_VALUES || total != pg->nvalues)
		fuzz_fail("value cap", "");
	for (i = 0; i < pg->nfollow; i++) {
		if (tr_url_canonicalize(&again, pg->follow_urls[i]) != 0 ||
		    strcmp(again, pg->follow_urls[i]) != 0)
			fuzz_fail("followed URL not canonical", pg->follow_urls[i]);
		free(again);
		again = NULL;
	}
}

/* One page through pl; handler errors are allowed (invalid JSON), other
 * failures are not. */
static void fuzz_page(tr_pipeline *pl, const char *content_type, const void *body, size_t len,
		      bool may_fail)
{
	Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT;
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
	static char scope_key[] = "fuzz.example:80";
	tr_crawl_info crawl;
	tr_page_opts opts = {.max_depth = 5, .max_links = 0};
	tr_page pg;
	int errors;

	memset(&crawl, 0, sizeof(crawl));
	crawl.scope[0] = scope_key;
	crawl.nscope = 1;
	rq.url = (char *)FUZZ_URL;
	rq.crawl_id = (char *)"fuzz";
	res.request = &rq;
	res.final_url = (char *)FUZZ_URL;
	res.status = 200;
	res.content_type = (char *)content_type;
	res.body.data = (uint8_t *)body;
	res.body.len = len;
	if (tr_page_process(&pg, &res, &crawl, &opts) != TR_OK)
		return; /* out of memory */
	errors = tr_pipeline_process(pl, &pg, NULL, 0, NULL, NULL);
	if (errors != 0 && !may_fail)
		fuzz_fail("handler error", content_type);
	fuzz_check(&pg);
	tr_page_clear(&pg);
}

/* Part 1: the input as a rules file. */
static void fuzz_rules(const uint8_t *data, size_t size)
{
	tr_rules *rules = NULL;
	tr_pipeline *pl = NULL;
	char err[512];
	size_t i;

	if (tr_rules_parse(&rules, (const char *)data, size, err, sizeof(err)) != TR_OK) {
		if (err[0] == '\0')
			fuzz_fail("parse error without a message", "");
		return;
	}
	if (rules->nsections < 1 || rules->nrules > TR_RULES_MAX_RULES)
		fuzz_fail("bad rule set", "");
	for (i = 0; i < rules->nrules; i++) {
		const tr_rule *r = &rules->rules[i];
		if (r->field == NULL || r->field[0] == '\0' || r->expr == NULL ||
		    r->section >= rules->nsections || r->nsteps > TR_RULES_MAX_STEPS)
			fuzz_fail("bad rule", r->expr);
	}
	for (i = 0; i < rules->nsections; i++)
		(void)tr_rules_section_matches(rules, i, FUZZ_URL);
	pl = tr_pipeline_new();
	if (pl != NULL &&
	    tr_pipeline_add(pl, tr_pipeline_builtin("json"), "", rules, err, sizeof(err)) == TR_OK)
		fuzz_page(pl, "application/json", FUZZ_JSON, sizeof(FUZZ_JSON) - 1, false);
	tr_pipeline_free(pl);
	tr_rules_free(rules);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static tr_rules *rules;
	static tr_pipeline *pl;
	char err[512];

	if (pl == NULL) {
		tr_links_global_init();
		if (tr_rules_parse(&rules, FUZZ_RULES, sizeof(FUZZ_RULES) - 1, err, sizeof(err)) !=
			TR_OK ||
		    (pl = tr_pipeline_new()) == NULL ||
		    tr_pipeline_add(pl, tr_pipeline_builtin("xpath"), "", rules, err,
				    sizeof(err)) != TR_OK ||
		    tr_pipeline_add(pl, tr_pipeline_builtin("json"), "", rules, err, sizeof(err)) !=
			TR_OK)
			fuzz_fail("setup", err);
	}
	fuzz_rules(data, size);
	fuzz_page(pl, fuzz_html_types[size > 0 ? data[0] & 7 : 4], data, size, false);
	fuzz_page(pl, "application/json", data, size, true);
	return 0;
}
