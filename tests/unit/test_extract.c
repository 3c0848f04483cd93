/* test_extract.c - replays tests/data/extract/NAME.{html|json,rules,expected}
 * through the "xpath" and "json" handlers in a tr_pipeline, and pins the
 * rules parser and the handlers' edge cases. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonw.h"
#include "links.h"
#include "page.h"
#include "pipeline.h"
#include "rules.h"
#include "url.h"

#define MAX_LINES 4096
#define DEFAULT_URL "http://shop.example/product/1"

static int passed, failed;

static void check(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(bool ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

typedef struct lines {
	char *v[MAX_LINES];
	size_t n;
} lines;

static void lines_add(lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lines_add(lines *l, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL || l->n == MAX_LINES) {
		free(s);
		fprintf(stderr, "out of memory or too many lines\n");
		exit(2);
	}
	l->v[l->n++] = s;
}

static void lines_free(lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf != NULL) {
			buf[n] = '\0';
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Print a line diff of want vs got (longest common subsequence). */
static void print_diff(const lines *want, const lines *got)
{
	size_t i, j, n = want->n, m = got->n;
	size_t *t = calloc((n + 1) * (m + 1), sizeof(*t));

	if (t == NULL)
		return;
#define T(a, b) t[(a) * (m + 1) + (b)]
	for (i = n; i-- > 0;)
		for (j = m; j-- > 0;)
			T(i, j) = strcmp(want->v[i], got->v[j]) == 0
				      ? T(i + 1, j + 1) + 1
				      : (T(i + 1, j) > T(i, j + 1) ? T(i + 1, j) : T(i, j + 1));
	printf("  --- expected\n  +++ actual\n");
	for (i = 0, j = 0; i < n || j < m;) {
		if (i < n && j < m && strcmp(want->v[i], got->v[j]) == 0) {
			printf("   %s\n", want->v[i]);
			i++;
			j++;
		} else if (j < m && (i == n || T(i, j + 1) >= T(i + 1, j))) {
			printf("  +%s\n", got->v[j++]);
		} else {
			printf("  -%s\n", want->v[i++]);
		}
	}
#undef T
	free(t);
}

/* --- running a page through the pipeline --- */

typedef struct page_in {
	const char *url;
	const char *content_type;
	uint32_t status;
	const char *body;
	size_t len;
} page_in;

static void on_error(const char *handler, const char *reason, void *arg)
{
	lines_add(arg, "error %s: %s", handler, reason);
}

/* A field as its pages.jsonl value: a JSON string, or an array of them. */
static void render_field(lines *out, const tr_field *f)
{
	tr_buf b;
	bool list = f->list || f->count > 1;

	tr_buf_init(&b, 1 << 24);
	if (list)
		tr_buf_add(&b, "[", 1);
	for (size_t k = 0; k < f->count; k++) {
		if (k)
			tr_buf_add(&b, ",", 1);
		tr_jsonw_str(&b, f->values[k], strlen(f->values[k]));
	}
	if (list)
		tr_buf_add(&b, "]", 1);
	tr_buf_add(&b, "", 1);
	lines_add(out, "field %s: %s", f->name, b.data);
	tr_buf_free(&b);
}

/*
 * Run `in` through `pl` the way the consumer does: tr_page_process() first
 * (scope: the page's own host; HTML links are not followed, max_links 0,
 * so that only handler-added links show), then the pipeline. Appends the
 * field, follow and error lines to out.
 */
static void run_page(tr_pipeline *pl, const page_in *in, lines *out)
{
	Trawler__V1__CrawlRequest rq = TRAWLER__V1__CRAWL_REQUEST__INIT;
	Trawler__V1__FetchResult res = TRAWLER__V1__FETCH_RESULT__INIT;
	tr_crawl_info crawl;
	tr_page_opts opts = {.max_depth = 10, .max_links = 0};
	tr_page pg;
	char key[300];
	uint8_t *raw;
	size_t rawlen;

	memset(&crawl, 0, sizeof(crawl));
	snprintf(crawl.crawl_id, sizeof(crawl.crawl_id), "test");
	if (tr_url_host_key(key, sizeof(key), in->url) == TR_OK) {
		crawl.scope[0] = key;
		crawl.nscope = 1;
	}
	rq.url = (char *)in->url;
	rq.crawl_id = (char *)"test";
	rq.fingerprint = 1;
	res.request = &rq;
	res.final_url = (char *)in->url;
	res.status = in->status;
	res.content_type = (char *)in->content_type;
	res.body.data = (uint8_t *)in->body;
	res.body.len = in->len;
	res.fetched_at_ms = 1700000000000;
	rawlen = trawler__v1__fetch_result__get_packed_size(&res);
	raw = malloc(rawlen + 1);
	if (raw == NULL || tr_page_process(&pg, &res, &crawl, &opts) != TR_OK) {
		free(raw);
		lines_add(out, "(page processing failed)");
		return;
	}
	trawler__v1__fetch_result__pack(&res, raw);
	tr_pipeline_process(pl, &pg, raw, rawlen, on_error, out);
	for (size_t i = 0; i < pg.nfields; i++)
		render_field(out, &pg.fields[i]);
	for (size_t i = 0; i < pg.nfollow; i++)
		lines_add(out, "follow: %s", pg.follow_urls[i]);
	tr_page_clear(&pg);
	free(raw);
}

/* A pipeline of the two extraction handlers, rules from a file or given. */
static tr_pipeline *extract_pipeline(const char *rules_path, const tr_rules *rules, char *err,
				     size_t errlen)
{
	char conf[4200];
	tr_pipeline *pl = tr_pipeline_new();

	snprintf(conf, sizeof(conf), "file=%s", rules_path ? rules_path : "");
	if (pl == NULL ||
	    tr_pipeline_add(pl, tr_pipeline_builtin("xpath"), conf, (void *)rules, err, errlen) !=
		TR_OK ||
	    tr_pipeline_add(pl, tr_pipeline_builtin("json"), conf, (void *)rules, err, errlen) !=
		TR_OK) {
		tr_pipeline_free(pl);
		return NULL;
	}
	return pl;
}

/* --- data-driven fixtures --- */

static void run_fixture(const char *dir, const char *name)
{
	char path[4096], *body = NULL, *expected = NULL, *line, *save = NULL, err[512];
	const char *ct = NULL, *url = DEFAULT_URL, *ext = "html";
	size_t body_len = 0, exp_len = 0;
	lines want = {.n = 0}, got = {.n = 0};
	page_in in;
	uint32_t status = 200;
	tr_pipeline *pl = NULL;
	bool same;

	snprintf(path, sizeof(path), "%s/extract/%s.html", dir, name);
	if (access(path, R_OK) != 0)
		ext = "json";
	snprintf(path, sizeof(path), "%s/extract/%s.%s", dir, name, ext);
	body = read_file(path, &body_len);
	snprintf(path, sizeof(path), "%s/extract/%s.expected", dir, name);
	expected = read_file(path, &exp_len);
	if (body == NULL || expected == NULL) {
		check(false, name, "cannot read %s.html/.json or %s.expected", name, name);
		goto out;
	}
	for (line = strtok_r(expected, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (starts_with(line, "url: "))
			url = line + 5;
		else if (starts_with(line, "content-type: "))
			ct = line + 14;
		else if (starts_with(line, "status: "))
			status = (uint32_t)strtoul(line + 8, NULL, 10);
		else
			lines_add(&want, "%s", line);
	}
	if (ct == NULL)
		ct = strcmp(ext, "html") == 0 ? "text/html; charset=utf-8" : "application/json";
	snprintf(path, sizeof(path), "%s/extract/%s.rules", dir, name);
	pl = extract_pipeline(path, NULL, err, sizeof(err));
	if (pl == NULL) {
		check(false, name, "pipeline: %s", err);
		goto out;
	}
	in = (page_in){url, ct, status, body, body_len};
	run_page(pl, &in, &got);
	same = want.n == got.n;
	for (size_t i = 0; same && i < want.n; i++)
		same = strcmp(want.v[i], got.v[i]) == 0;
	check(same, name, "output differs from %s.expected", name);
	if (!same)
		print_diff(&want, &got);
out:
	tr_pipeline_free(pl);
	lines_free(&want);
	lines_free(&got);
	free(body);
	free(expected);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_fixtures(const char *dir)
{
	char path[4096], *names[1024];
	size_t n = 0, len;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/extract", dir);
	d = opendir(path);
	if (d == NULL) {
		check(false, "fixtures", "cannot open %s", path);
		return;
	}
	while ((e = readdir(d)) != NULL && n < TR_ARRAY_LEN(names)) {
		len = strlen(e->d_name);
		if (len > 9 && strcmp(e->d_name + len - 9, ".expected") == 0)
			names[n++] = strndup(e->d_name, len - 9);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	check(n >= 8, "fixtures", "only %zu fixtures", n);
	for (size_t i = 0; i < n; i++) {
		if (names[i] != NULL)
			run_fixture(dir, names[i]);
		free(names[i]);
	}
	printf("%zu extraction fixtures\n", n);
}

/* --- the rules parser --- */

static int parse(const char *text, tr_rules **out, char *err, size_t errlen)
{
	return tr_rules_parse(out, text, strlen(text), err, errlen);
}

static void expect_parse_error(const char *text, int want_rc, const char *want_msg)
{
	char err[512] = "";
	tr_rules *r = (tr_rules *)&err; /* must stay untouched */
	int rc = parse(text, &r, err, sizeof(err));

	check(rc == want_rc && strstr(err, want_msg) != NULL && r == (tr_rules *)&err, text,
	      "rc=%d (want %d), message '%s' (want '%s')", rc, want_rc, err, want_msg);
}

static void run_parser(void)
{
	char err[512];
	tr_rules *r = NULL;
	int rc;

	rc = parse("\xEF\xBB\xBF# comment\r\n\r\n  title = xpath first  //h1/text() \r\n"
		   "[page *]\n"
		   "imgs=xpath all //img/@src\n"
		   "[page ^https?://127\\.0\\.0\\.2:\\d+/product/[^/[:space:]]+$]\n"
		   "name = json first product.name\n"
		   "sizes = json all $.product.variants[*].size\n"
		   "dotted = json first [\"a.b\"][0][\"q\\\"x\\\\\"]\n"
		   "next = json follow .links.next\n"
		   "doc = json all $\n"
		   "   [ page   \\D$ ]  \n"
		   "x.y-z_1 = xpath follow count(//a)\n",
		   &r, err, sizeof(err));
	check(rc == 0, "parse", "rc=%d err=%s", rc, err);
	if (rc != 0)
		return;
	check(r->nrules == 8 && r->nsections == 4, "parse", "rules=%zu sections=%zu", r->nrules,
	      r->nsections);
	check(tr_rules_count(r, TR_RULE_XPATH) == 3 && tr_rules_count(r, TR_RULE_JSON) == 5,
	      "count", "kinds");
	check(strcmp(r->rules[0].field, "title") == 0 && r->rules[0].kind == TR_RULE_XPATH &&
		  r->rules[0].mode == TR_RULE_FIRST &&
		  strcmp(r->rules[0].expr, "//h1/text()") == 0 && r->rules[0].line == 3 &&
		  r->rules[0].section == 0,
	      "rule 0", "field/kind/mode/expr/line/section");
	check(r->rules[1].section == 1 && r->rules[1].mode == TR_RULE_ALL &&
		  r->sections[1].pattern == NULL && r->sections[1].line == 4,
	      "[page *]", "section");
	/* $.product.variants[*].size: product, variants, [*], size */
	check(r->rules[3].nsteps == 4 && r->rules[3].steps[0].type == TR_JSTEP_KEY &&
		  strcmp(r->rules[3].steps[0].key, "product") == 0 &&
		  strcmp(r->rules[3].steps[1].key, "variants") == 0 &&
		  r->rules[3].steps[2].type == TR_JSTEP_ALL &&
		  strcmp(r->rules[3].steps[3].key, "size") == 0,
	      "json path $.product.variants[*].size", "steps");
	check(r->rules[4].nsteps == 3 && strcmp(r->rules[4].steps[0].key, "a.b") == 0 &&
		  r->rules[4].steps[1].type == TR_JSTEP_INDEX && r->rules[4].steps[1].index == 0 &&
		  strcmp(r->rules[4].steps[2].key, "q\"x\\") == 0,
	      "quoted keys", "steps");
	check(r->rules[5].mode == TR_RULE_FOLLOW && r->rules[5].nsteps == 2, "leading dot",
	      "steps %zu", r->rules[5].nsteps);
	check(r->rules[6].nsteps == 0, "$", "whole document");
	check(strcmp(r->rules[7].field, "x.y-z_1") == 0 && r->rules[7].section == 3 &&
		  strcmp(r->sections[3].pattern, "\\D$") == 0,
	      "spaced section", "pattern '%s'", r->sections[3].pattern);
	/* \d and \D outside brackets are translated; [^/[:space:]] is kept */
	check(tr_rules_section_matches(r, 2, "http://127.0.0.2:8080/product/blue-1"), "\\d",
	      "should match");
	check(!tr_rules_section_matches(r, 2, "http://127.0.0.2:80a/product/blue"), "\\d",
	      "port must be digits");
	check(!tr_rules_section_matches(r, 2, "http://127.0.0.2:8080/product/a b"), "[:space:]",
	      "class kept");
	check(!tr_rules_section_matches(r, 2, "http://127.0.0.2:8080/product/a/b"), "$",
	      "anchored");
	check(tr_rules_section_matches(r, 0, "anything") && tr_rules_section_matches(r, 1, ""),
	      "all pages", "implicit and [page *]");
	check(tr_rules_section_matches(r, 3, "http://a/x") &&
		  !tr_rules_section_matches(r, 3, "http://a/1"),
	      "\\D", "non-digit at the end");
	check(!tr_rules_section_matches(r, 99, "x"), "section range", "out of range");
	tr_rules_free(r);
	tr_rules_free(NULL);

	rc = parse("", &r, err, sizeof(err));
	check(rc == 0 && r->nrules == 0 && r->nsections == 1, "empty file", "rc=%d", rc);
	if (rc == 0)
		tr_rules_free(r);
	/* \d inside a bracket expression stays as written (a backslash and a d) */
	rc = parse("[page ^[\\d]+$]\n", &r, err, sizeof(err));
	check(rc == 0, "bracket \\d", "rc=%d %s", rc, err);
	if (rc == 0) {
		check(tr_rules_section_matches(r, 1, "d\\d") &&
			  !tr_rules_section_matches(r, 1, "12"),
		      "bracket \\d", "matching");
		tr_rules_free(r);
	}

	expect_parse_error("title xpath first //h1", TR_EINVAL, "line 1: expected 'NAME = KIND");
	expect_parse_error("# x\n= xpath first //h1", TR_EINVAL, "line 2: expected 'NAME");
	expect_parse_error("t!tle = xpath first //h1", TR_EINVAL, "expected 'NAME");
	expect_parse_error("title = css first h1", TR_EINVAL, "unknown kind 'css'");
	expect_parse_error("title = xpath some //h1", TR_EINVAL, "unknown mode 'some'");
	expect_parse_error("title = xpath first", TR_EINVAL, "missing expression");
	expect_parse_error("title = xpath", TR_EINVAL, "unknown mode ''");
	expect_parse_error("[page x", TR_EINVAL, "must end with ']'");
	expect_parse_error("[site x]", TR_EINVAL, "unknown section header");
	expect_parse_error("[page]", TR_EINVAL, "unknown section header");
	expect_parse_error("[page   ]", TR_EINVAL, "unknown section header");
	expect_parse_error("\n\n[page a(b]\nt = xpath first //a", TR_EINVAL,
			   "line 3: invalid regular expression 'a(b'");
	expect_parse_error("[page ^a++b]", TR_EINVAL, "a quantifier right after another one");
	expect_parse_error("[page (a*b*c*d*e*)*{1,1000}]", TR_EINVAL, "right after another");
	expect_parse_error("[page x{2}?]", TR_EINVAL, "right after another");
	expect_parse_error("[page (a{1,100}){1,100}]", TR_EINVAL, "too complex");
	expect_parse_error("[page (a*){1,9999}]", TR_EINVAL, "too complex");
	expect_parse_error("[page ((a|b)*){0,10}((c{3,}){20})x{1999}]", TR_EINVAL, "too complex");
	expect_parse_error("[page (a)\\1]", TR_EINVAL, "back-references are not supported");
	expect_parse_error("[page "
			   "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((("
			   "a)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))]",
			   TR_EINVAL, "nested too deep");
	rc = parse("[page ^(a{1,40}){1,40}[{(+*]x{2,}y{3}$]\n[page a+b*c?(d)+\\++]\n", &r, err,
		   sizeof(err));
	check(rc == 0, "bounded repetition", "rc=%d %s", rc, err);
	if (rc == 0) {
		check(tr_rules_section_matches(r, 1, "aaa(xxy") == false &&
			  tr_rules_section_matches(r, 1, "aaa(xxyyy") &&
			  tr_rules_section_matches(r, 2, "xaacdd++"),
		      "bounded repetition", "matching");
		tr_rules_free(r);
	}
	expect_parse_error("a = json first a..b", TR_EINVAL, "invalid JSON path 'a..b' at byte 3");
	expect_parse_error("a = json first a[", TR_EINVAL, "invalid JSON path");
	expect_parse_error("a = json first a[x]", TR_EINVAL, "invalid JSON path");
	expect_parse_error("a = json first a[1", TR_EINVAL, "expected ']' after the index");
	expect_parse_error("a = json first a[1234567890]", TR_EINVAL, "index too large");
	expect_parse_error("a = json first a[\"x]", TR_EINVAL, "unterminated quoted key");
	expect_parse_error("a = json first a.", TR_EINVAL, "expected a key after '.'");
	expect_parse_error("a = json first a b", TR_EINVAL, "invalid JSON path");
	expect_parse_error("a = json first $x", TR_EINVAL, "invalid JSON path");
	expect_parse_error("a = json first ]", TR_EINVAL, "expected a key");
	{
		static const char nul[] = "a = xpath first //a\nb = xpath\0first //b\n";
		char e2[256] = "";
		rc = tr_rules_parse(&r, nul, sizeof(nul) - 1, e2, sizeof(e2));
		check(rc == TR_EINVAL && strstr(e2, "line 2: NUL byte") != NULL, "NUL byte",
		      "rc=%d %s", rc, e2);
	}
	{ /* caps: size, rules, sections, name and expression lengths */
		size_t big = TR_RULES_MAX_BYTES + 1, n = 0;
		char *text = malloc(big + 64 * 1024);
		if (text == NULL)
			return;
		memset(text, '#', big);
		rc = tr_rules_parse(&r, text, big, err, sizeof(err));
		check(rc == TR_ETOOBIG && strstr(err, "larger than") != NULL, "1 MiB cap", "rc=%d",
		      rc);
		rc = tr_rules_parse(&r, text, big - 1, err, sizeof(err));
		check(rc == TR_OK, "at the cap", "rc=%d %s", rc, err);
		if (rc == TR_OK)
			tr_rules_free(r);
		for (int i = 0; i < TR_RULES_MAX_RULES; i++)
			n += (size_t)sprintf(text + n, "f%d = json all a[*]\n", i);
		text[n] = '\0';
		rc = parse(text, &r, err, sizeof(err));
		check(rc == TR_OK && r->nrules == TR_RULES_MAX_RULES, "1000 rules", "rc=%d", rc);
		if (rc == TR_OK)
			tr_rules_free(r);
		sprintf(text + n, "one_more = xpath first //a\n");
		rc = parse(text, &r, err, sizeof(err));
		check(rc == TR_ETOOBIG && strstr(err, "line 1001: more than 1000 rules") != NULL,
		      "1001 rules", "rc=%d %s", rc, err);
		for (n = 0; n < TR_RULES_MAX_SECTIONS + 1; n++)
			sprintf(text + n * 9, "[page *]\n");
		rc = parse(text, &r, err, sizeof(err));
		check(rc == TR_ETOOBIG && strstr(err, "more than 1000 sections") != NULL,
		      "1001 sections", "rc=%d %s", rc, err);
		memset(text, 'n', TR_RULES_MAX_NAME + 1);
		strcpy(text + TR_RULES_MAX_NAME + 1, " = xpath first //a");
		rc = parse(text, &r, err, sizeof(err));
		check(rc == TR_ETOOBIG && strstr(err, "field name longer") != NULL, "long name",
		      "rc=%d %s", rc, err);
		n = (size_t)sprintf(text, "n = xpath first ");
		memset(text + n, 'a', TR_RULES_MAX_EXPR + 1);
		text[n + TR_RULES_MAX_EXPR + 1] = '\0';
		rc = parse(text, &r, err, sizeof(err));
		check(rc == TR_ETOOBIG && strstr(err, "expression longer") != NULL, "long expr",
		      "rc=%d %s", rc, err);
		n = (size_t)sprintf(text, "n = json first a");
		for (int i = 0; i < TR_RULES_MAX_STEPS; i++)
			n += (size_t)sprintf(text + n, "[0]");
		rc = parse(text, &r, err, sizeof(err));
		check(rc == TR_EINVAL && strstr(err, "too many steps") != NULL, "65 steps",
		      "rc=%d %s", rc, err);
		free(text);
	}

	rc = tr_rules_load(&r, "/nonexistent/rules.txt", err, sizeof(err));
	check(rc == TR_EIO && strstr(err, "/nonexistent/rules.txt: ") == err, "load missing",
	      "rc=%d %s", rc, err);
}

/* --- handlers: configuration, types, caps, hostile input --- */

static tr_pipeline *pipeline_from_text(const char *rules_text, tr_rules **rules)
{
	char err[512];
	tr_pipeline *pl;

	*rules = NULL;
	if (parse(rules_text, rules, err, sizeof(err)) != TR_OK) {
		check(false, rules_text, "rules: %s", err);
		return NULL;
	}
	pl = extract_pipeline(NULL, *rules, err, sizeof(err));
	check(pl != NULL, rules_text, "pipeline: %s", err);
	return pl;
}

/* Run one page and compare its lines with `want` (lines joined by '\n'). */
static void expect_page(const char *what, const char *rules_text, const page_in *in,
			const char *want)
{
	tr_rules *rules;
	tr_pipeline *pl = pipeline_from_text(rules_text, &rules);
	lines got = {.n = 0};
	tr_buf b;

	if (pl == NULL) {
		tr_rules_free(rules);
		return;
	}
	run_page(pl, in, &got);
	tr_buf_init(&b, 1 << 26);
	for (size_t i = 0; i < got.n; i++) {
		tr_buf_adds(&b, got.v[i]);
		tr_buf_add(&b, "\n", 1);
	}
	tr_buf_add(&b, "", 1);
	check(strcmp(b.data, want) == 0, what, "got\n%swant\n%s", b.data, want);
	tr_buf_free(&b);
	lines_free(&got);
	tr_pipeline_free(pl);
	tr_rules_free(rules);
}

static void run_config_errors(const char *dir)
{
	char err[512], path[4096];
	tr_rules *r;
	tr_pipeline *pl = tr_pipeline_new();
	static const char *const bad_xpath[] = {
	    "t = xpath first //h1[",	   "t = xpath first //h1/text(",
	    "t = xpath all nosuchfn(//a)", "t = xpath first $undefined",
	    "t = xpath first ///",	   "t = xpath follow count(1)",
	};

	check(pl != NULL, "pipeline", "new");
	if (pl == NULL)
		return;
	check(tr_pipeline_add(pl, tr_pipeline_builtin("xpath"), "", NULL, err, sizeof(err)) != 0,
	      "xpath without file=", "accepted");
	check(tr_pipeline_add(pl, tr_pipeline_builtin("json"), "dir=x", NULL, err, sizeof(err)) !=
		  0,
	      "json without file=", "accepted");
	check(tr_pipeline_add(pl, tr_pipeline_builtin("json"), "file=/nonexistent", NULL, err,
			      sizeof(err)) != 0,
	      "missing rules file", "accepted");
	snprintf(path, sizeof(path), "file=%s/extract/README.md", dir);
	check(tr_pipeline_add(pl, tr_pipeline_builtin("xpath"), path, NULL, err, sizeof(err)) != 0,
	      "not a rules file", "accepted");
	for (size_t i = 0; i < TR_ARRAY_LEN(bad_xpath); i++) {
		if (parse(bad_xpath[i], &r, err, sizeof(err)) != TR_OK) {
			check(false, bad_xpath[i], "does not parse: %s", err);
			continue;
		}
		check(tr_pipeline_add(pl, tr_pipeline_builtin("xpath"), "", r, err, sizeof(err)) !=
			  0,
		      bad_xpath[i], "invalid XPath accepted");
		/* the json handler ignores xpath rules */
		check(tr_pipeline_add(pl, tr_pipeline_builtin("json"), "", r, err, sizeof(err)) ==
			  0,
		      bad_xpath[i], "json handler rejected xpath rules: %s", err);
		tr_pipeline_free(pl);
		pl = tr_pipeline_new();
		tr_rules_free(r);
	}
	tr_pipeline_free(pl);
}

static void run_handler_cases(void)
{
	static const char html[] = "<html><body><h1> Hello </h1><p>x</p></body></html>";
	static const char json[] = "{\"a\": 1}";
	page_in in = {DEFAULT_URL, "text/html", 200, html, sizeof(html) - 1};

	expect_page("html", "t = xpath first //h1\n", &in, "field t: \"Hello\"\n");
	in.status = 404;
	expect_page("404 not extracted", "t = xpath first //h1\n", &in, "");
	in.status = 200;
	in.content_type = "text/plain";
	expect_page("text/plain not extracted", "t = xpath first //h1\n", &in, "");
	in.content_type = "application/xhtml+xml; charset=utf-8";
	expect_page("xhtml", "t = xpath first //h1\n", &in, "field t: \"Hello\"\n");
	in.content_type = "text/html; charset=x-bogus";
	expect_page("unknown charset", "t = xpath first //h1\n", &in, "field t: \"Hello\"\n");
	in.content_type = "text/html; charset=\"UTF-16LE\"";
	in.body = "<\0h\0\x31\0>\0\xe9\0<\0/\0h\0\x31\0>\0";
	in.len = 20;
	expect_page("UTF-16 with NULs", "t = xpath first //h1\n", &in, "field t: \"é\"\n");
	in.body = html;
	in.len = sizeof(html) - 1;
	in.content_type = "text/html";
	in.url = "http://shop.example/a";
	expect_page("URL picks the section",
		    "[page /b$]\nb = xpath first //h1\n[page /a$]\na = xpath first //p\n", &in,
		    "field a: \"x\"\n");
	in.url = DEFAULT_URL;
	in.len = 0;
	expect_page("empty body", "t = xpath first //h1\n", &in, "");
	in.content_type = "text/html";
	in.body = "\0\0\0";
	in.len = 3;
	expect_page("only NULs", "t = xpath first //h1\n", &in, "");
	in.body = "<h1>a\0b</h1>";
	in.len = 12;
	expect_page("NUL inside", "t = xpath first //h1\n", &in, "field t: \"a b\"\n");

	/* the json handler: content types, status, depth */
	in = (page_in){DEFAULT_URL, "application/json", 200, json, sizeof(json) - 1};
	expect_page("json", "a = json first a\n", &in, "field a: \"1\"\n");
	in.content_type = " Application/JSON ; charset=utf-8";
	expect_page("json type case", "a = json first a\n", &in, "field a: \"1\"\n");
	in.content_type = "application/problem+json";
	expect_page("+json", "a = json first a\n", &in, "field a: \"1\"\n");
	in.content_type = "text/json";
	expect_page("text/json", "a = json first a\n", &in, "field a: \"1\"\n");
	in.content_type = "application/jsonx";
	expect_page("jsonx", "a = json first a\n", &in, "");
	in.content_type = "application/+json";
	expect_page("bare +json", "a = json first a\n", &in, "");
	in.content_type = "text/html";
	expect_page("json rules on HTML", "a = json first a\n", &in, "");
	in.content_type = "application/json";
	in.status = 500;
	in.body = "oops";
	in.len = 4;
	expect_page("500 not parsed", "a = json first a\n", &in, "");
	in.status = 200;
	expect_page("no json rule applies", "[page ^https://other/]\na = json first a\n", &in, "");
	expect_page("invalid json", "a = json first a\n", &in,
		    "error json: invalid JSON: unexpected character at offset 0\n");
	in.body = "{\"a\":1} {";
	in.len = 9;
	expect_page("trailing data", "a = json first a\n", &in,
		    "error json: invalid JSON: unexpected character at offset 8\n");
	in.body = "{\"a\":";
	in.len = 5;
	expect_page("truncated", "a = json first a\n", &in,
		    "error json: invalid JSON: unexpected end of data at offset 5\n");
	in.body = "\xEF\xBB\xBF 42 \n";
	in.len = 8;
	expect_page("BOM and a top-level number", "a = json first $\n", &in, "field a: \"42\"\n");
	in.body = "[1,\0 2]";
	in.len = 7;
	expect_page("NUL in JSON", "a = json first $\n", &in,
		    "error json: invalid JSON: unexpected end of data at offset 3\n");
	{
		char deep[300];
		size_t n = 0;
		for (int i = 0; i < TR_RULES_MAX_JSON_DEPTH; i++)
			deep[n++] = '[';
		deep[n++] = '7';
		for (int i = 0; i < TR_RULES_MAX_JSON_DEPTH; i++)
			deep[n++] = ']';
		in.body = deep;
		in.len = n;
		expect_page(
		    "64 levels", "a = json first [0][0][0][0][0][0][0][0][0][0]\n", &in,
		    "field a: "
		    "\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[7]]]]]]]]]]]]]]]]]"
		    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\"\n");
		memmove(deep + 1, deep, n);
		deep[0] = '[';
		deep[n + 1] = ']';
		in.len = n + 2;
		expect_page("65 levels", "a = json first [0]\n", &in,
			    "error json: invalid JSON: nesting too deep at offset 65\n");
	}
}

/* Caps: a rule takes at most TR_RULES_MAX_VALUES values; a page keeps at
 * most TR_PAGE_MAX_FIELD_VALUES (the rest is dropped, not an error). */
static void run_caps(void)
{
	size_t cap = 3000 * 16 + 64, n = 0;
	char *body = malloc(cap);
	tr_rules *rules;
	tr_pipeline *pl;
	lines got = {.n = 0};
	page_in in;

	if (body == NULL)
		return;
	n += (size_t)sprintf(body, "<ul>");
	for (int i = 0; i < 3000; i++)
		n += (size_t)sprintf(body + n, "<li>%d</li>", i);
	in = (page_in){DEFAULT_URL, "text/html", 200, body, n};
	pl = pipeline_from_text("li = xpath all //li\nmore = xpath all //li\n", &rules);
	if (pl != NULL) {
		run_page(pl, &in, &got);
		check(got.n == 1 && starts_with(got.v[0], "field li: [\"0\",\"1\","), "1000 values",
		      "%zu lines", got.n);
		check(got.n == 1 && strstr(got.v[0], ",\"999\"]") != NULL, "1000 values",
		      "last value");
		lines_free(&got);
		tr_pipeline_free(pl);
	}
	tr_rules_free(rules);
	pl = pipeline_from_text("a = xpath all (//li)[position() <= 600]\n"
				"b = xpath all //li\n",
				&rules);
	if (pl != NULL) {
		run_page(pl, &in, &got);
		check(got.n == 2 && strstr(got.v[1], "field b: [\"0\",") == got.v[1] &&
			  strstr(got.v[1], ",\"399\"]") != NULL,
		      "page cap", "%zu lines", got.n);
		lines_free(&got);
		tr_pipeline_free(pl);
	}
	tr_rules_free(rules);

	/* a quadratic expression on a big page hits the operation limit */
	pl = pipeline_from_text("ok = xpath first count(//li)\n"
				"slow = xpath all //li[count(//li[count(//li) > 0]) > 0]\n",
				&rules);
	if (pl != NULL) {
		run_page(pl, &in, &got);
		check(got.n == 2 &&
			  strcmp(got.v[0], "error xpath: XPath rule at line 2 failed on this page: "
					   "operation limit exceeded") == 0 &&
			  strcmp(got.v[1], "field ok: \"3000\"") == 0,
		      "operation limit", "%zu lines: %s", got.n, got.n ? got.v[0] : "");
		lines_free(&got);
		tr_pipeline_free(pl);
	}
	tr_rules_free(rules);

	/* JSON: [*] over 3000 elements */
	n = 0;
	n += (size_t)sprintf(body, "[");
	for (int i = 0; i < 3000; i++)
		n += (size_t)sprintf(body + n, "%s%d", i ? "," : "", i);
	n += (size_t)sprintf(body + n, "]");
	in = (page_in){DEFAULT_URL, "application/json", 200, body, n};
	pl = pipeline_from_text("v = json all [*]\n", &rules);
	if (pl != NULL) {
		run_page(pl, &in, &got);
		check(got.n == 1 && strstr(got.v[0], ",\"999\"]") != NULL, "json 1000 values",
		      "%zu lines", got.n);
		lines_free(&got);
		tr_pipeline_free(pl);
	}
	tr_rules_free(rules);
	free(body);
}

/* Deep nesting, binary junk, a huge text node: no crash, sane output. */
static void run_hostile(void)
{
	size_t depth = 100000, n = 0;
	char *body = malloc(depth * 5 + 200000);
	tr_rules *rules;
	tr_pipeline *pl;
	lines got = {.n = 0};
	page_in in;
	unsigned seed = 42;

	if (body == NULL)
		return;
	pl = pipeline_from_text("d = xpath first //div[last()]\nn = xpath first count(//div)\n"
				"t = xpath first string(//title)\nall = xpath all //*\n",
				&rules);
	if (pl == NULL) {
		tr_rules_free(rules);
		free(body);
		return;
	}
	for (size_t i = 0; i < depth; i++)
		n += (size_t)sprintf(body + n, "<div>");
	n += (size_t)sprintf(body + n, "deep");
	in = (page_in){DEFAULT_URL, "text/html", 200, body, n};
	run_page(pl, &in, &got);
	check(got.n >= 1, "deep nesting", "%zu lines", got.n);
	lines_free(&got);

	for (n = 0; n < 200000; n++) {
		seed = seed * 1103515245u + 12345u;
		body[n] = (char)(seed >> 16);
	}
	in.len = n;
	run_page(pl, &in, &got);
	for (size_t i = 0; i < got.n; i++)
		check(!starts_with(got.v[i], "error"), "binary junk", "%s", got.v[i]);
	lines_free(&got);
	tr_pipeline_free(pl);
	tr_rules_free(rules);

	pl = pipeline_from_text("b = xpath first //body\n", &rules);
	if (pl != NULL) {
		n = (size_t)sprintf(body, "<body>");
		memset(body + n, 'x', 150000);
		n += 150000;
		in.len = n;
		run_page(pl, &in, &got);
		check(got.n == 1 &&
			  strlen(got.v[0]) == strlen("field b: \"\"") + TR_PAGE_MAX_VALUE_BYTES,
		      "value cut at 64 KiB", "%zu lines", got.n);
		lines_free(&got);
		tr_pipeline_free(pl);
	}
	tr_rules_free(rules);
	free(body);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	tr_links_global_init();
	run_fixtures(dir);
	run_parser();
	run_config_errors(dir);
	run_handler_cases();
	run_caps();
	run_hostile();
	tr_links_global_cleanup();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
