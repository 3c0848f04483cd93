/* test_warc.c - unit tests for the WARC sink (handler_warc.c): synthetic
 * fetch results through a pipeline, the files read back with zlib one gzip
 * member at a time, exact record headers, blocks and digests (the expected
 * digests were computed independently, with Python's hashlib + base32). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "pipeline.h"

#define UA "trawler-test/1.0 (+http://example.test/bot)"
#define MAX_RECORDS 64

/* --- building fetch results --- */

typedef struct fixture {
	Trawler__V1__FetchResult res;
	Trawler__V1__CrawlRequest req;
	Trawler__V1__ByteRange range;
	Trawler__V1__Header hv[8];
	Trawler__V1__Header *hp[8];
	tr_page pg;
} fixture;

static void fx_init(fixture *f, const char *req_url, const char *final_url, uint32_t status)
{
	memset(f, 0, sizeof(*f));
	trawler__v1__fetch_result__init(&f->res);
	trawler__v1__crawl_request__init(&f->req);
	f->req.url = (char *)req_url;
	f->req.crawl_id = (char *)"c1";
	f->res.request = &f->req;
	f->res.final_url = (char *)final_url;
	f->res.status = status;
	f->res.http_version = (char *)"1.1";
	f->res.remote_ip = (char *)"";
	f->res.content_type = (char *)"";
	f->res.headers = f->hp;
	f->pg.res = &f->res;
}

static void fx_header(fixture *f, const char *name, const char *value)
{
	size_t i = f->res.n_headers++;
	trawler__v1__header__init(&f->hv[i]);
	f->hv[i].name = (char *)name;
	f->hv[i].value = (char *)value;
	f->hp[i] = &f->hv[i];
}

static void fx_body(fixture *f, const void *data, size_t len)
{
	f->res.body.data = (uint8_t *)data;
	f->res.body.len = len;
}

static int errors_seen;
static char last_reason[256];

static void on_error(const char *handler, const char *reason, void *arg)
{
	errors_seen++;
	snprintf(last_reason, sizeof(last_reason), "%s: %s", handler, reason);
}

static void run(tr_pipeline *pl, fixture *f)
{
	tr_pipeline_process(pl, &f->pg, NULL, 0, on_error, NULL);
}

/* --- reading WARC files back --- */

typedef struct record {
	char *head;	/* WARC header block, NUL-terminated, without the blank line */
	uint8_t *block; /* NUL-terminated copy too */
	size_t blen;
	char file[256]; /* basename of the file it came from */
	int index;	/* position in its file */
} record;

static record recs[MAX_RECORDS];
static int nrecs;

static void free_records(void)
{
	for (int i = 0; i < nrecs; i++) {
		free(recs[i].head);
		free(recs[i].block);
	}
	nrecs = 0;
}

/* One gzip member must hold exactly one record: "WARC/1.1", headers, a
 * blank line, Content-Length bytes of block, then CRLF CRLF and the end. */
static int parse_member(const uint8_t *p, size_t n, const char *file, int index)
{
	const char *end = memmem(p, n, "\r\n\r\n", 4);
	if (n < 10 || memcmp(p, "WARC/1.1\r\n", 10) != 0 || !end || nrecs >= MAX_RECORDS)
		return -1;
	size_t hlen = (size_t)(end - (const char *)p) + 2; /* keep the last CRLF */
	record *r = &recs[nrecs];
	r->head = strndup((const char *)p, hlen);
	const char *cl = strstr(r->head, "\r\nContent-Length: ");
	if (!cl) {
		free(r->head);
		return -1;
	}
	r->blen = strtoul(cl + 18, NULL, 10);
	size_t start = hlen + 2;
	if (start + r->blen + 4 != n || memcmp(p + start + r->blen, "\r\n\r\n", 4) != 0) {
		fprintf(stderr, "member %d of %s: block length %zu does not end the member (%zu)\n",
			index, file, r->blen, n);
		free(r->head);
		return -1;
	}
	r->block = malloc(r->blen + 1);
	memcpy(r->block, p + start, r->blen);
	r->block[r->blen] = '\0';
	snprintf(r->file, sizeof(r->file), "%s", file);
	r->index = index;
	nrecs++;
	return 0;
}

/* Inflate a .warc.gz member by member; returns members read or -1. */
static int read_warc_file(const char *path, const char *base)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return -1;
	fseek(fp, 0, SEEK_END);
	size_t n = (size_t)ftell(fp);
	fseek(fp, 0, SEEK_SET);
	uint8_t *in = malloc(n ? n : 1);
	size_t got = fread(in, 1, n, fp);
	fclose(fp);
	if (got != n) {
		free(in);
		return -1;
	}
	size_t cap = 4 << 20;
	uint8_t *out = malloc(cap);
	int members = 0;
	size_t pos = 0;
	while (pos < n) {
		z_stream z;
		memset(&z, 0, sizeof(z));
		if (inflateInit2(&z, 15 + 16) != Z_OK)
			break;
		z.next_in = in + pos;
		z.avail_in = (uInt)(n - pos);
		size_t olen = 0;
		int zr;
		do {
			if (olen == cap) {
				cap *= 2;
				out = realloc(out, cap);
			}
			z.next_out = out + olen;
			z.avail_out = (uInt)(cap - olen);
			zr = inflate(&z, Z_NO_FLUSH);
			olen = cap - z.avail_out;
		} while (zr == Z_OK);
		size_t used = (size_t)(z.next_in - (in + pos));
		inflateEnd(&z);
		if (zr != Z_STREAM_END || parse_member(out, olen, base, members) != 0) {
			members = -1;
			break;
		}
		members++;
		pos += used;
	}
	free(in);
	free(out);
	return members;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Read every trawler-*.warc.gz of dir (in name order); returns the number
 * of files, or -1. */
static int read_dir(const char *dir)
{
	char *names[64];
	int nn = 0, rc = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	free_records();
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL && nn < 64)
		if (e->d_name[0] != '.')
			names[nn++] = strdup(e->d_name);
	closedir(d);
	qsort(names, (size_t)nn, sizeof(*names), cmp_names);
	for (int i = 0; i < nn; i++) {
		char path[1024];
		size_t l = strlen(names[i]);
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (strncmp(names[i], "trawler-", 8) != 0 || l < 9 ||
		    strcmp(names[i] + l - 8, ".warc.gz") != 0 || read_warc_file(path, names[i]) < 1)
			rc = -1;
		free(names[i]);
	}
	return rc < 0 ? -1 : nn;
}

/* Total size of the files in dir, -1 when there is none. */
static long long dir_bytes(const char *dir)
{
	long long total = -1;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		char path[1024];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_name[0] != '.' && stat(path, &st) == 0)
			total = (total < 0 ? 0 : total) + st.st_size;
	}
	if (d)
		closedir(d);
	return total;
}

/* Value of WARC header `name` in r (static buffer), or NULL. */
static const char *hdr(const record *r, const char *name)
{
	static char val[1024];
	char key[128];
	snprintf(key, sizeof(key), "\r\n%s: ", name);
	const char *p = strstr(r->head, key);
	if (!p)
		return NULL;
	p += strlen(key);
	snprintf(val, sizeof(val), "%.*s", (int)strcspn(p, "\r"), p);
	return val;
}

static bool is_record_id(const char *id)
{
	/* <urn:uuid:xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx> */
	if (!id || strlen(id) != 47 || strncmp(id, "<urn:uuid:", 10) != 0 || id[46] != '>')
		return false;
	for (int i = 10; i < 46; i++) {
		bool dash = i == 18 || i == 23 || i == 28 || i == 33;
		if (dash ? id[i] != '-' : !strchr("0123456789abcdef", id[i]))
			return false;
	}
	return id[24] == '4' && strchr("89ab", id[29]);
}

static char ids[3][64]; /* copies of header values: hdr() reuses its buffer */

/* Expected header block of a response/request record, with the IDs taken
 * from the records themselves (they are random). */
static void check_pair(const record *resp, const record *req, const record *info, const char *date,
		       const char *uri, const char *ip, const char *extra, const char *resp_block,
		       size_t resp_blen, const char *resp_bd, const char *payload_d,
		       const char *req_block, const char *req_bd)
{
	char want[4096], ipline[128] = "";
	snprintf(ids[0], 64, "%s", hdr(resp, "WARC-Record-ID") ? hdr(resp, "WARC-Record-ID") : "");
	snprintf(ids[1], 64, "%s", hdr(req, "WARC-Record-ID") ? hdr(req, "WARC-Record-ID") : "");
	snprintf(ids[2], 64, "%s", hdr(info, "WARC-Record-ID") ? hdr(info, "WARC-Record-ID") : "");
	CHECK(is_record_id(ids[0]));
	CHECK(is_record_id(ids[1]));
	CHECK(is_record_id(ids[2]));
	CHECK(strcmp(ids[0], ids[1]) != 0);
	if (ip)
		snprintf(ipline, sizeof(ipline), "WARC-IP-Address: %s\r\n", ip);
	snprintf(want, sizeof(want),
		 "WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: %s\r\nWARC-Date: %s\r\n"
		 "WARC-Target-URI: %s\r\n%sWARC-Warcinfo-ID: %s\r\nWARC-Concurrent-To: %s\r\n"
		 "WARC-Block-Digest: %s\r\nWARC-Payload-Digest: %s\r\n%s"
		 "Content-Type: application/http; msgtype=response\r\nContent-Length: %zu\r\n",
		 ids[0], date, uri, ipline, ids[2], ids[1], resp_bd, payload_d, extra, resp_blen);
	CHECK_STR(resp->head, want);
	CHECK(resp->blen == resp_blen && memcmp(resp->block, resp_block, resp_blen) == 0);
	snprintf(want, sizeof(want),
		 "WARC/1.1\r\nWARC-Type: request\r\nWARC-Record-ID: %s\r\nWARC-Date: %s\r\n"
		 "WARC-Target-URI: %s\r\n%sWARC-Warcinfo-ID: %s\r\nWARC-Concurrent-To: %s\r\n"
		 "WARC-Block-Digest: %s\r\n"
		 "Content-Type: application/http; msgtype=request\r\nContent-Length: %zu\r\n",
		 ids[1], date, uri, ipline, ids[2], ids[0], req_bd, strlen(req_block));
	CHECK_STR(req->head, want);
	CHECK_STR((const char *)req->block, req_block);
}

static void check_warcinfo(const record *r, bool with_ua)
{
	char host[256] = "", want[1024];
	gethostname(host, sizeof(host) - 1);
	CHECK(r->index == 0);
	CHECK_STR(hdr(r, "WARC-Type"), "warcinfo");
	CHECK_STR(hdr(r, "WARC-Filename"), r->file);
	CHECK_STR(hdr(r, "Content-Type"), "application/warc-fields");
	CHECK(hdr(r, "WARC-Date") && strlen(hdr(r, "WARC-Date")) == 24);
	CHECK(hdr(r, "WARC-Block-Digest") && strncmp(hdr(r, "WARC-Block-Digest"), "sha1:", 5) == 0);
	snprintf(want, sizeof(want),
		 "software: trawler/%s\r\nformat: WARC File Format 1.1\r\n"
		 "conformsTo: http://iipc.github.io/warc-specifications/specifications/"
		 "warc-format/warc-1.1/\r\nhostname: %s\r\n%s",
		 TRAWLER_VERSION, host, with_ua ? "http-header-user-agent: " UA "\r\n" : "");
	CHECK_STR((const char *)r->block, want);
}

/* --- the tests --- */

static void test_records(const char *tmp)
{
	char dir[512], conf[1024], err[256];
	static char big[1000000];
	fixture f;
	tr_pipeline *pl = tr_pipeline_new();
	memset(big, 'a', sizeof(big));
	snprintf(dir, sizeof(dir), "%s/a/warc", tmp); /* parents are created too */
	snprintf(conf, sizeof(conf), "dir=%s,user_agent=" UA, dir);
	CHECK(pl && tr_pipeline_add(pl, tr_pipeline_builtin("warc"), conf, NULL, err,
				    sizeof(err)) == TR_OK);
	errors_seen = 0;

	/* 1: GET 200, decoded body: encoding headers dropped, length fixed;
	 * repeated headers kept in order; CR LF in a value neutralised */
	fx_init(&f, "http://example.com:8080/start", "http://example.com:8080/a/b?x=1", 200);
	f.res.remote_ip = (char *)"127.0.0.2";
	f.res.fetched_at_ms = 1717243200123LL;
	fx_header(&f, "Content-Type", "text/html; charset=utf-8");
	fx_header(&f, "Content-Encoding", "gzip");
	fx_header(&f, "Transfer-Encoding", "chunked");
	fx_header(&f, "Content-Length", "999");
	fx_header(&f, "Set-Cookie", "a=1");
	fx_header(&f, "Set-Cookie", "b=2");
	fx_header(&f, "X-Evil", "a\r\nInjected: x");
	fx_body(&f, "<html>hello</html>", 18);
	run(pl, &f);

	/* 2: transport failure: no HTTP response, nothing written */
	fx_init(&f, "http://down.example/", "", 0);
	f.res.error = TRAWLER__V1__FETCH_ERROR__ERROR_CONNECT;
	run(pl, &f);

	/* 3: HEAD over HTTP/2: headers kept as received (no body was stored) */
	fx_init(&f, "http://user@example.org/doc.pdf", "http://user@example.org/doc.pdf", 200);
	f.req.method = TRAWLER__V1__METHOD__METHOD_HEAD;
	f.res.http_version = (char *)"2";
	f.res.fetched_at_ms = 1717243201000LL;
	fx_header(&f, "content-type", "application/pdf");
	fx_header(&f, "content-length", "12345");
	fx_header(&f, "content-encoding", "gzip");
	run(pl, &f);

	/* 4: body cut at the size cap (1 MB: many SHA-1 blocks, deflate chunks) */
	fx_init(&f, "http://example.com/big", "http://example.com/big", 200);
	f.res.truncated = true;
	f.res.fetched_at_ms = 1717243202005LL;
	f.res.remote_ip = (char *)"::1";
	fx_header(&f, "Content-Length", "5000000");
	fx_body(&f, big, sizeof(big));
	run(pl, &f);

	/* 5: range request, 206; unknown HTTP version -> 1.1 */
	fx_init(&f, "http://example.com/r", "http://example.com/r", 206);
	f.req.range = &f.range;
	trawler__v1__byte_range__init(&f.range);
	f.range.first = 0;
	f.range.last = 9;
	f.res.http_version = (char *)"";
	f.res.fetched_at_ms = 1717243203000LL;
	fx_header(&f, "Content-Range", "bytes 0-9/100");
	fx_body(&f, "abcdefghij", 10);
	run(pl, &f);

	/* 6: body refused by the content-type list, unknown status code, no
	 * final URL (the requested one is used), no path */
	fx_init(&f, "http://example.net?q", "", 299);
	f.res.error = TRAWLER__V1__FETCH_ERROR__ERROR_CONTENT_TYPE;
	f.res.fetched_at_ms = 1717243204000LL;
	fx_header(&f, "Content-Type", "image/png");
	run(pl, &f);

	CHECK(errors_seen == 0);
	/* records are buffered until flush: the file exists, still empty */
	CHECK(dir_bytes(dir) == 0);
	CHECK(tr_pipeline_flush(pl, err, sizeof(err)) == TR_OK);
	CHECK(read_dir(dir) == 1);
	CHECK(nrecs == 1 + 2 * 5);
	if (nrecs != 11)
		goto out;
	check_warcinfo(&recs[0], true);
	for (int i = 0; i < nrecs; i++) {
		CHECK(recs[i].index == i); /* one file, one record per member */
		CHECK_STR(hdr(&recs[i], "WARC-Type"),
			  i == 0 ? "warcinfo" : (i % 2 ? "response" : "request"));
	}
	check_pair(&recs[1], &recs[2], &recs[0], "2024-06-01T12:00:00.123Z",
		   "http://example.com:8080/a/b?x=1", "127.0.0.2", "",
		   "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
		   "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Evil: a  Injected: x\r\n"
		   "Content-Length: 18\r\n\r\n<html>hello</html>",
		   155, "sha1:CHUTH45OJ6RRKJL6ZPEI4XLVQNHFARRE",
		   "sha1:O57NSEYVH37NN5YSIJIQGZF2VAMOK4GK",
		   "GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: " UA "\r\n\r\n",
		   "sha1:L3ZNOVKAPQCJ7WDB7KAF5BL3SNMYUL3B");
	check_pair(&recs[3], &recs[4], &recs[0], "2024-06-01T12:00:01.000Z",
		   "http://user@example.org/doc.pdf", NULL, "",
		   "HTTP/2 200 OK\r\ncontent-type: application/pdf\r\ncontent-length: 12345\r\n"
		   "content-encoding: gzip\r\n\r\n",
		   95, "sha1:FJCQBIMEU4QKQQDQFGPLE535KW73WCDB",
		   "sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ", /* SHA-1 of nothing */
		   "HEAD /doc.pdf HTTP/2\r\nHost: example.org\r\nUser-Agent: " UA "\r\n\r\n",
		   "sha1:OFPKU57HHKWQOJJ3JSRMPCSMRE2LBMSU");
	{
		const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
		size_t hl = strlen(head);
		char *blk = malloc(hl + sizeof(big));
		memcpy(blk, head, hl);
		memcpy(blk + hl, big, sizeof(big));
		check_pair(&recs[5], &recs[6], &recs[0], "2024-06-01T12:00:02.005Z",
			   "http://example.com/big", "::1", "WARC-Truncated: length\r\n", blk,
			   hl + sizeof(big), "sha1:S6A43K2B2VLPMWMFRXM4K6HYC4UXYEUU",
			   "sha1:GSVJOPGUYTNKJ5Q65MV5XLJHGFSTIALP",
			   "GET /big HTTP/1.1\r\nHost: example.com\r\nUser-Agent: " UA "\r\n\r\n",
			   "sha1:DRVITTBFCXJYVYEVTXMNTEMC37YFQTP6");
		free(blk);
	}
	check_pair(&recs[7], &recs[8], &recs[0], "2024-06-01T12:00:03.000Z", "http://example.com/r",
		   NULL, "",
		   "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\n"
		   "Content-Length: 10\r\n\r\nabcdefghij",
		   92, "sha1:YGZG3JK4Z5QS3BSVM4E3UVV64DX4OW32",
		   "sha1:22GBTIFDIW36VN4NLYI6TEOAE3WGBW3D",
		   "GET /r HTTP/1.1\r\nHost: example.com\r\nUser-Agent: " UA
		   "\r\nRange: bytes=0-9\r\n\r\n",
		   "sha1:YPIU76VNXEVPBF5KSUBY67ZJJJIYQLDN");
	check_pair(&recs[9], &recs[10], &recs[0], "2024-06-01T12:00:04.000Z",
		   "http://example.net?q", NULL, "WARC-Truncated: unspecified\r\n",
		   "HTTP/1.1 299 \r\nContent-Type: image/png\r\nContent-Length: 0\r\n\r\n", 61,
		   "sha1:MVUFYDTDXZBV2HSKHC5RKAENT23TITHW", "sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ",
		   "GET /?q HTTP/1.1\r\nHost: example.net\r\nUser-Agent: " UA "\r\n\r\n",
		   "sha1:2JUJSJJPWSBQXD7JSIHZCCC6RKI6SRE7");
out:
	tr_pipeline_free(pl);
	free_records();
}

/* Rotation: max_bytes=1 closes a file after every page; each file starts
 * with its own warcinfo, which the records of that file point to. Without
 * user_agent the request has no User-Agent line. */
static void test_rotation(const char *tmp)
{
	char dir[512], conf[1024], err[256];
	fixture f;
	tr_pipeline *pl = tr_pipeline_new();
	snprintf(dir, sizeof(dir), "%s/b", tmp);
	snprintf(conf, sizeof(conf), "dir=%s,max_bytes=1,level=1", dir);
	CHECK(pl && tr_pipeline_add(pl, tr_pipeline_builtin("warc"), conf, NULL, err,
				    sizeof(err)) == TR_OK);
	errors_seen = 0;
	for (int i = 0; i < 3; i++) {
		fx_init(&f, "http://h.example/x", "http://h.example/x", 404);
		f.res.fetched_at_ms = 1717243200000LL + i;
		fx_body(&f, "gone", 4);
		run(pl, &f);
		if (i == 1) /* a flush between pages changes nothing */
			CHECK(tr_pipeline_flush(pl, err, sizeof(err)) == TR_OK);
	}
	tr_pipeline_free(pl); /* final flush */
	CHECK(errors_seen == 0);
	CHECK(read_dir(dir) == 3);
	CHECK(nrecs == 9);
	for (int i = 0; i + 2 < nrecs; i += 3) {
		char info_id[64];
		check_warcinfo(&recs[i], false);
		CHECK(strcmp(recs[i].file, recs[i + 1].file) == 0 &&
		      strcmp(recs[i].file, recs[i + 2].file) == 0);
		CHECK(i == 0 || strcmp(recs[i].file, recs[i - 1].file) != 0);
		snprintf(info_id, sizeof(info_id), "%s", hdr(&recs[i], "WARC-Record-ID"));
		CHECK_STR(hdr(&recs[i + 1], "WARC-Warcinfo-ID"), info_id);
		CHECK_STR(hdr(&recs[i + 2], "WARC-Warcinfo-ID"), info_id);
		CHECK_STR((const char *)recs[i + 1].block,
			  "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone");
		CHECK_STR((const char *)recs[i + 2].block,
			  "GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n");
	}
	free_records();
}

static void test_errors(const char *tmp)
{
	char dir[512], conf[1024], err[256];
	fixture f;
	tr_pipeline *pl = tr_pipeline_new();
	const tr_handler *h = tr_pipeline_builtin("warc");
	CHECK(h != NULL && strcmp(h->name, "warc") == 0);
	CHECK(tr_pipeline_add(pl, h, "dir=/proc/no/such/dir", NULL, err, sizeof(err)) != TR_OK);
	snprintf(conf, sizeof(conf), "dir=%s/c,level=0", tmp);
	CHECK(tr_pipeline_add(pl, h, conf, NULL, err, sizeof(err)) != TR_OK);
	snprintf(conf, sizeof(conf), "dir=%s/c,max_bytes=-5", tmp);
	CHECK(tr_pipeline_add(pl, h, conf, NULL, err, sizeof(err)) != TR_OK);

	/* the directory disappears: the page fails with a reason, and so does
	 * every flush after it (the consumer must not commit) */
	snprintf(dir, sizeof(dir), "%s/d", tmp);
	snprintf(conf, sizeof(conf), "dir=%s", dir);
	CHECK(tr_pipeline_add(pl, h, conf, NULL, err, sizeof(err)) == TR_OK);
	CHECK(rmdir(dir) == 0);
	errors_seen = 0;
	fx_init(&f, "http://h.example/", "http://h.example/", 200);
	run(pl, &f);
	CHECK(errors_seen == 1);
	CHECK_STR(last_reason, "warc: cannot write the WARC file");
	CHECK(tr_pipeline_flush(pl, err, sizeof(err)) != TR_OK);
	run(pl, &f);
	CHECK(errors_seen == 2);
	CHECK(tr_pipeline_flush(pl, err, sizeof(err)) != TR_OK);
	tr_pipeline_free(pl);
}

int main(void)
{
	char tmp[] = "/tmp/test_warc.XXXXXX";
	char cmd[600];
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	test_records(tmp);
	test_rotation(tmp);
	test_errors(tmp);
	int rc = check_summary();
	if (rc == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp);
	} else {
		fprintf(stderr, "kept %s\n", tmp);
	}
	return rc;
}
