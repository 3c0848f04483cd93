/* test_links.c - replays tests/data/links/NAME.{html,expected} and edge cases of
 * tr_links_extract(). */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "links.h"
#include "url.h"

#define MAX_LINES 4096

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

/* A list of output lines. */
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
	size_t i;

	for (i = 0; i < l->n; i++)
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

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The output lines for an extraction, in the .expected order. */
static void render(lines *out, const tr_links *links)
{
	size_t i;

	if (links->title != NULL)
		lines_add(out, "title: %s", links->title);
	lines_add(out, "base: %s", links->base);
	if (links->canonical != NULL)
		lines_add(out, "canonical: %s", links->canonical);
	if (links->meta_nofollow)
		lines_add(out, "meta: nofollow");
	if (links->meta_noindex)
		lines_add(out, "meta: noindex");
	lines_add(out, "dropped: %zu", links->dropped);
	for (i = 0; i < links->count; i++)
		lines_add(out, "%s: %s",
			  (links->items[i].flags & TR_LINK_NOFOLLOW) != 0 ? "nofollow" : "link",
			  links->items[i].url);
}

/* Invariants every successful extraction keeps. */
static void check_invariants(const char *what, const tr_links *links, size_t max_links)
{
	size_t i, j;
	char *again = NULL;

	check(links->count <= max_links, what, "count %zu > max %zu", links->count, max_links);
	check(links->base != NULL, what, "no base");
	check(links->title == NULL ||
		  (strlen(links->title) > 0 && strlen(links->title) <= TR_LINKS_TITLE_MAX),
	      what, "bad title length");
	for (i = 0; i < links->count; i++) {
		int rc = tr_url_canonicalize(&again, links->items[i].url);
		check(rc == 0 && strcmp(again, links->items[i].url) == 0, what,
		      "link not canonical: %s", links->items[i].url);
		free(again);
		again = NULL;
		for (j = 0; j < i; j++)
			check(strcmp(links->items[i].url, links->items[j].url) != 0, what,
			      "duplicate link %s", links->items[i].url);
	}
}

static void run_fixture(const char *dir, const char *name)
{
	char path[4096], *html = NULL, *expected = NULL, *line, *save = NULL;
	char *page_url = NULL, *charset = NULL;
	size_t html_len = 0, exp_len = 0, max_links = 1000;
	lines want = {.n = 0}, got = {.n = 0};
	tr_links links;
	int rc;
	bool same;
	size_t i;

	snprintf(path, sizeof(path), "%s/links/%s.html", dir, name);
	html = read_file(path, &html_len);
	snprintf(path, sizeof(path), "%s/links/%s.expected", dir, name);
	expected = read_file(path, &exp_len);
	if (html == NULL || expected == NULL) {
		check(false, name, "cannot read %s.html or %s.expected", name, name);
		goto out;
	}
	for (line = strtok_r(expected, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (starts_with(line, "url: "))
			page_url = line + 5;
		else if (starts_with(line, "max: "))
			max_links = strtoul(line + 5, NULL, 10);
		else if (starts_with(line, "charset: "))
			charset = line + 9;
		else
			lines_add(&want, "%s", line);
	}
	if (page_url == NULL) {
		check(false, name, "%s.expected has no url: line", name);
		goto out;
	}
	rc = tr_links_extract_charset(&links, html, html_len, page_url, charset, max_links);
	if (rc != 0) {
		check(false, name, "tr_links_extract returned %d", rc);
		goto out;
	}
	render(&got, &links);
	check_invariants(name, &links, max_links);
	tr_links_free(&links);
	same = want.n == got.n;
	for (i = 0; same && i < want.n; i++)
		same = strcmp(want.v[i], got.v[i]) == 0;
	check(same, name, "output differs from %s.expected", name);
	if (!same)
		print_diff(&want, &got);
out:
	lines_free(&want);
	lines_free(&got);
	free(html);
	free(expected);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_fixtures(const char *dir)
{
	char path[4096], *names[1024];
	size_t n = 0, i, len;
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/links", dir);
	d = opendir(path);
	if (d == NULL) {
		check(false, "fixtures", "cannot open %s", path);
		return;
	}
	while ((e = readdir(d)) != NULL && n < TR_ARRAY_LEN(names)) {
		len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".html") == 0)
			names[n++] = strndup(e->d_name, len - 5);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	check(n >= 10, "fixtures", "only %zu fixtures", n);
	for (i = 0; i < n; i++) {
		if (names[i] != NULL)
			run_fixture(dir, names[i]);
		free(names[i]);
	}
}

static void run_contract(void)
{
	tr_links links, untouched;
	int rc;

	memset(&untouched, 0x5a, sizeof(untouched));
	links = untouched;
	rc = tr_links_extract(&links, "<a href=x>", 10, "mailto:a@b", 10);
	check(rc == TR_EINVAL && memcmp(&links, &untouched, sizeof(links)) == 0, "bad page url",
	      "rc=%d, out touched?", rc);
	rc = tr_links_extract(&links, "<a href=x>", 10, NULL, 10);
	check(rc == TR_EINVAL, "NULL page url", "rc=%d", rc);
	rc = tr_links_extract(&links, NULL, 3, "http://a/", 10);
	check(rc == TR_EINVAL, "NULL html", "rc=%d", rc);
	rc = tr_links_extract(NULL, "", 0, "http://a/", 10);
	check(rc == TR_EINVAL, "NULL out", "rc=%d", rc);
	check(memcmp(&links, &untouched, sizeof(links)) == 0, "untouched", "out written on error");

	rc = tr_links_extract(&links, NULL, 0, "HTTP://A/b#c", 10);
	check(rc == 0 && links.count == 0 && strcmp(links.base, "http://a/b") == 0 &&
		  links.title == NULL && links.canonical == NULL,
	      "empty page", "rc=%d", rc);
	if (rc == 0)
		tr_links_free(&links);

	rc = tr_links_extract(&links, "<a href=x></a><a href=y>", 24, "http://a/", 0);
	check(rc == 0 && links.count == 0 && links.dropped == 2 && links.items == NULL,
	      "max_links 0", "rc=%d", rc);
	if (rc == 0)
		tr_links_free(&links);
	tr_links_free(&links);
	tr_links_free(NULL);
}

/* A title longer than the cap, made of 2-byte characters at an odd offset:
 * cut at a character boundary, never inside one. */
static void run_title_cap(void)
{
	size_t n = 0, i;
	char *html = malloc(8192);
	tr_links links;
	int rc;

	if (html == NULL)
		return;
	n += (size_t)sprintf(html, "<title>  ab\n\n");
	for (i = 0; i < 2000; i++) {
		memcpy(html + n, "\xc3\xa9", 2);
		n += 2;
	}
	n += (size_t)sprintf(html + n, "</title>");
	rc = tr_links_extract(&links, html, n, "http://a/", 10);
	check(rc == 0 && links.title != NULL, "title cap", "rc=%d", rc);
	if (rc == 0 && links.title != NULL) {
		size_t len = strlen(links.title);
		/* "ab " then whole 2-byte characters: 1024 would split one. */
		check(len == TR_LINKS_TITLE_MAX - 1, "title cap", "title length %zu", len);
		check(strncmp(links.title, "ab \xc3\xa9", 5) == 0 &&
			  (unsigned char)links.title[len - 1] == 0xa9,
		      "title cap", "title cut inside a character");
	}
	if (rc == 0)
		tr_links_free(&links);
	free(html);
}

/* Hostile shapes: deep nesting, many links over the cap, NULs and junk. */
static void run_hostile(void)
{
	size_t depth = 200000, n = 0, i;
	char *html = malloc(depth * 14 + 64);
	tr_links links;
	int rc;
	unsigned seed = 12345;

	if (html == NULL)
		return;
	for (i = 0; i < depth; i++)
		n += (size_t)sprintf(html + n, "<div><a href=");
	n += (size_t)sprintf(html + n, "deep>");
	rc = tr_links_extract(&links, html, n, "http://a/", 100);
	check(rc == 0, "deep nesting", "rc=%d", rc);
	if (rc == 0) {
		check_invariants("deep nesting", &links, 100);
		tr_links_free(&links);
	}

	n = 0;
	for (i = 0; i < 20000; i++)
		n += (size_t)sprintf(html + n, "<a href=/%zu>", i % 5000);
	rc = tr_links_extract(&links, html, n, "http://a/", 1000);
	check(rc == 0 && links.count == 1000 && links.dropped == 19000, "over cap",
	      "rc=%d count=%zu dropped=%zu", rc, links.count, links.dropped);
	if (rc == 0)
		tr_links_free(&links);

	n = 0;
	for (i = 0; i < 4096; i++) {
		seed = seed * 1103515245u + 12345u;
		html[n++] = (char)(seed >> 16);
	}
	memcpy(html + 100, "<a href=\"/x\0y\">\0<title>t\0u</title>", 34);
	rc = tr_links_extract(&links, html, n, "http://a/", 100);
	check(rc == 0, "binary junk", "rc=%d", rc);
	if (rc == 0) {
		check_invariants("binary junk", &links, 100);
		tr_links_free(&links);
	}
	free(html);
}

/* A ~15 KB page with 20 links, mostly text, like a blog index. */
static char *bench_page(size_t *len)
{
	size_t cap = 32768, n = 0, i;
	char *p = malloc(cap);

	if (p == NULL)
		return NULL;
	n += (size_t)snprintf(p + n, cap - n,
			      "<!DOCTYPE html><html><head><meta charset=utf-8><title>Bench "
			      "page</title><link rel=stylesheet href=/s.css></head><body>"
			      "<nav><a href=/>Home</a> <a href=/about>About</a></nav>");
	for (i = 0; i < 18; i++) {
		n += (size_t)snprintf(
		    p + n, cap - n,
		    "<div class=\"entry\"><h2>Entry %zu</h2><p>Lorem ipsum dolor sit amet, "
		    "consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
		    "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation "
		    "ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure "
		    "dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla "
		    "pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui "
		    "officia deserunt mollit anim id est laborum. <a href=\"../articles/%zu.html?"
		    "ref=list#c\">Read more</a></p><p><em>Tags:</em> <span>one</span>, "
		    "<span>two</span>, <span>three</span></p><p class=\"meta\">Posted by "
		    "<b>author</b> on <time>2024-01-%02zu</time> in <i>category</i>, 3 comments, "
		    "12 shares.</p></div>\n",
		    i, i, i + 1);
	}
	for (i = 0; i < 12; i++)
		n += (size_t)snprintf(p + n, cap - n,
				      "<aside><h3>Sidebar %zu</h3><p>Sed ut perspiciatis unde "
				      "omnis iste natus error sit voluptatem accusantium "
				      "doloremque laudantium.</p></aside>\n",
				      i);
	n += (size_t)snprintf(p + n, cap - n, "<footer>&copy; 2024</footer></body></html>");
	*len = n;
	return p;
}

static void run_bench(bool long_run)
{
	size_t len = 0, pages = 0, i, count = 0;
	char *page = bench_page(&len);
	tr_links links;
	struct timespec t0, t1, c0, c1;
	double secs = 0, cpu, limit = long_run ? 5.0 : 0.3;

	if (page == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	while (secs < limit) {
		for (i = 0; i < 50; i++, pages++) {
			if (tr_links_extract(&links, page, len,
					     "http://bench.example/dir/list.html", 1000) != 0) {
				check(false, "bench", "extract failed");
				goto out;
			}
			count = links.count;
			tr_links_free(&links);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	check(count == 20, "bench", "expected 20 links, got %zu", count);
	/* Informational only: no threshold, machines differ. */
	printf("bench: %zu-byte page, %zu links: %.0f pages/s of CPU time, %.0f pages/s wall "
	       "(%zu pages)\n",
	       len, count, (double)pages / cpu, (double)pages / secs, pages);
out:
	free(page);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/data";

	tr_links_global_init();
	run_fixtures(dir);
	run_contract();
	run_title_cap();
	run_hostile();
	run_bench(argc > 2 && strcmp(argv[2], "--bench") == 0);
	tr_links_global_cleanup();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
