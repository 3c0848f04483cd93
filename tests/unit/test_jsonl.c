/* test_jsonl.c - the pages.jsonl sink: one valid JSON line per page (fields
 * included), nothing written before flush, size rotation that keeps every
 * line whole. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "pipeline.h"

static void fake_result(Trawler__V1__FetchResult *r, Trawler__V1__CrawlRequest *q, const char *url)
{
	trawler__v1__crawl_request__init(q);
	trawler__v1__fetch_result__init(r);
	q->url = (char *)url;
	q->crawl_id = (char *)"c";
	q->depth = 2;
	r->request = q;
	r->final_url = (char *)url;
	r->status = 200;
	r->content_type = (char *)"text/plain";
}

static size_t count_lines(const char *path, size_t *bad)
{
	char line[4096];
	size_t n = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		n++;
		if (len < 2 || line[0] != '{' || line[len - 2] != '}' || line[len - 1] != '\n')
			(*bad)++;
	}
	fclose(f);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/trawler-jsonl-XXXXXX", conf[256], path[300], err[256];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(conf, sizeof(conf), "dir=%s,max_bytes=1000", dir);
	snprintf(path, sizeof(path), "%s/pages.jsonl", dir);
	tr_pipeline *pl = tr_pipeline_new();
	CHECK(tr_pipeline_add(pl, tr_pipeline_builtin("jsonl"), conf, NULL, err, sizeof(err)) ==
	      TR_OK);

	size_t total = 0;
	for (int batch = 0; batch < 10; batch++) {
		for (int i = 0; i < 5; i++) {
			char url[64];
			Trawler__V1__FetchResult r;
			Trawler__V1__CrawlRequest q;
			tr_page pg;
			snprintf(url, sizeof(url), "http://a/%d/%d", batch, i);
			fake_result(&r, &q, url);
			memset(&pg, 0, sizeof(pg));
			pg.res = &r;
			if (batch == 0 && i == 0) {
				CHECK(tr_page_add_field(&pg, "name", "ké\"ttle", false) == TR_OK);
				CHECK(tr_page_add_field(&pg, "tags", "a", true) == TR_OK);
			}
			CHECK(tr_pipeline_process(pl, &pg, NULL, 0, NULL, NULL) == 0);
			tr_page_clear(&pg);
			total++;
		}
		struct stat st;
		if (batch == 0) /* nothing on disk before the flush */
			CHECK(stat(path, &st) == 0 && st.st_size == 0);
		CHECK(tr_pipeline_flush(pl, err, sizeof(err)) == TR_OK);
	}
	/* the first line has its fields */
	char first[1024] = "";
	FILE *f = fopen(path, "r");
	size_t rotated = 0, lines = 0, bad = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char p[600];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		lines += count_lines(p, &bad);
		rotated += strcmp(e->d_name, "pages.jsonl") != 0;
		if (strcmp(e->d_name, "pages.jsonl") != 0) {
			FILE *rf = fopen(p, "r");
			if (rf && !first[0] && fgets(first, sizeof(first), rf) &&
			    !strstr(first, "http://a/0/0\""))
				first[0] = '\0';
			if (rf)
				fclose(rf);
		}
	}
	if (d)
		closedir(d);
	if (f)
		fclose(f);
	CHECK(lines == total); /* nothing lost across rotations */
	CHECK(bad == 0);       /* every line whole */
	CHECK(rotated >= 2);   /* 50 lines of ~200 bytes past 1000-byte files */
	CHECK(strstr(first, "\"fields\":{\"name\":\"k\xc3\xa9\\\"ttle\",\"tags\":[\"a\"]}") !=
	      NULL);
	tr_pipeline_free(pl);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return check_summary();
}
