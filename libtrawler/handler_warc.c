/* handler_warc.c - the WARC/1.1 sink: for every page with an HTTP response,
 * a `response` and a `request` record (linked both ways by
 * WARC-Concurrent-To), each its own gzip member, appended to
 * DIR/trawler-<YYYYmmddHHMMSS>-<pid>-<serial>.warc.gz; every file opens
 * with a `warcinfo` record. Records are buffered in memory and written,
 * then fdatasync'ed, on flush (earlier, unsynced, past WARC_SPILL_BYTES).
 *
 * Config: dir=DIR (default out/warc; created with its parents),
 * max_bytes=N (start a new file once one holds N bytes, default 1 GiB;
 * 0 = never; a file passes N by at most one record pair), level=1..9 (gzip
 * level, default 6), user_agent=UA (the User-Agent the fetchers send, for
 * the request records; omitted when not given, as FetchResult does not
 * carry it).
 *
 * What is stored (WARC/1.1, iipc.github.io/warc-specifications):
 * - response block: "HTTP/<version> <status> <reason>" (the reason phrase
 *   is RFC 9110's for the code: FetchResult does not keep the server's),
 *   the final response's headers in order, then the body as fetched. The
 *   body is stored decoded (libcurl undid gzip/deflate/br and chunking), so
 *   for a response with a body Content-Encoding and Transfer-Encoding are
 *   dropped and Content-Length is set to the stored length; a HEAD, 1xx,
 *   204 or 304 response keeps its headers (less Transfer-Encoding).
 * - WARC-Payload-Digest: SHA-1 of that stored body; WARC-Block-Digest: of
 *   the whole block; both "sha1:" + base32 (RFC 4648).
 * - WARC-Truncated: "length" when the body was cut at the size cap,
 *   "unspecified" when a response came with a transport error (e.g. a body
 *   refused by the content-type allow list).
 * - request block: "GET|HEAD <path?query> HTTP/1.1" (HTTP/2 or /3 when the
 *   response came over that), Host, User-Agent when configured, Range when
 *   the request had one.
 * Redirect hops are not archived (FetchResult keeps only their URL and
 * status). A write error is sticky: later process() calls fail and flush()
 * reports it, so the consumer stops without committing. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "log.h"
#include "pipeline.h"

#define WARC_SPILL_BYTES (16u * 1024 * 1024) /* buffered past this: written (not synced) */
#define WARC_OUT_MAX (512u * 1024 * 1024)    /* hard cap on the compressed buffer */
#define WARC_HEAD_MAX (1024u * 1024)	     /* a record header or an HTTP head */
#define WARC_CHUNK 65536		     /* deflate output step */
#define WARC_CONFORMS_TO                                                                           \
	"http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"

/* --- SHA-1 (FIPS 180-4), for the digests --- */

typedef struct sha1_ctx {
	uint32_t h[5];
	uint64_t len; /* bytes hashed */
	uint8_t blk[64];
	size_t n; /* bytes in blk */
} sha1_ctx;

static uint32_t rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static void sha1_init(sha1_ctx *s)
{
	static const uint32_t iv[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->n = 0;
}

static void sha1_update(sha1_ctx *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	if (len == 0)
		return; /* data may be NULL then */
	s->len += len;
	if (s->n) {
		size_t take = 64 - s->n < len ? 64 - s->n : len;
		memcpy(s->blk + s->n, p, take);
		s->n += take;
		p += take;
		len -= take;
		if (s->n < 64)
			return;
		sha1_block(s->h, s->blk);
		s->n = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha1_block(s->h, p);
	memcpy(s->blk, p, len);
	s->n = len;
}

static void sha1_final(sha1_ctx *s, uint8_t out[20])
{
	uint64_t bits = s->len * 8;
	uint8_t pad[72] = {0x80};
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;
	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha1_update(s, pad, padlen + 8);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

/* "sha1:" + RFC 4648 base32 of the digest (160 bits: 32 chars, no padding). */
static void sha1_label(sha1_ctx *s, char out[38])
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint8_t d[20];
	sha1_final(s, d);
	memcpy(out, "sha1:", 5);
	for (int i = 0; i < 32; i++) {
		int bit = i * 5, byte = bit / 8, off = bit % 8;
		unsigned v = (unsigned)d[byte] << 8 | (byte + 1 < 20 ? d[byte + 1] : 0);
		out[5 + i] = b32[(v >> (11 - off)) & 31];
	}
	out[37] = '\0';
}

/* --- small formatting helpers --- */

/* "<urn:uuid:xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx>" from the kernel RNG. */
static int make_record_id(char out[48])
{
	uint8_t r[16];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return TR_EIO;
		got += (size_t)n;
	}
	r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 48,
		 "<urn:uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x>",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
		 r[13], r[14], r[15]);
	return TR_OK;
}

/* WARC-Date: ISO 8601 UTC with milliseconds (WARC/1.1 allows sub-second). */
static void warc_date(int64_t ms, char out[32])
{
	struct tm tm;
	time_t t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/* Append s with CR, LF and NUL replaced by spaces: a header value taken
 * from the network must not be able to start a header of its own. */
static int add_field_text(tr_buf *b, const char *s)
{
	size_t mark = b->len;
	for (const char *p = s ? s : ""; *p;) {
		size_t n = strcspn(p, "\r\n");
		if (tr_buf_add(b, p, n) != TR_OK || (p[n] && tr_buf_add(b, " ", 1) != TR_OK)) {
			b->len = mark;
			return TR_ETOOBIG;
		}
		p += n + (p[n] != '\0');
	}
	return TR_OK;
}

static int add_header(tr_buf *b, const char *name, const char *value)
{
	if (add_field_text(b, name) != TR_OK || tr_buf_adds(b, ": ") != TR_OK ||
	    add_field_text(b, value) != TR_OK || tr_buf_adds(b, "\r\n") != TR_OK)
		return TR_ETOOBIG;
	return TR_OK;
}

/* Reason phrases of RFC 9110 section 15; "" for other codes. */
static const char *reason_phrase(uint32_t status)
{
	/* clang-format off */
	static const struct {
		uint32_t code;
		const char *text;
	} tab[] = {
		{100, "Continue"}, {101, "Switching Protocols"}, {103, "Early Hints"},
		{200, "OK"}, {201, "Created"}, {202, "Accepted"},
		{203, "Non-Authoritative Information"}, {204, "No Content"},
		{205, "Reset Content"}, {206, "Partial Content"}, {300, "Multiple Choices"},
		{301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"},
		{304, "Not Modified"}, {305, "Use Proxy"}, {307, "Temporary Redirect"},
		{308, "Permanent Redirect"}, {400, "Bad Request"}, {401, "Unauthorized"},
		{402, "Payment Required"}, {403, "Forbidden"}, {404, "Not Found"},
		{405, "Method Not Allowed"}, {406, "Not Acceptable"},
		{407, "Proxy Authentication Required"}, {408, "Request Timeout"},
		{409, "Conflict"}, {410, "Gone"}, {411, "Length Required"},
		{412, "Precondition Failed"}, {413, "Content Too Large"}, {414, "URI Too Long"},
		{415, "Unsupported Media Type"}, {416, "Range Not Satisfiable"},
		{417, "Expectation Failed"}, {421, "Misdirected Request"},
		{422, "Unprocessable Content"}, {426, "Upgrade Required"},
		{428, "Precondition Required"}, {429, "Too Many Requests"},
		{431, "Request Header Fields Too Large"}, {451, "Unavailable For Legal Reasons"},
		{500, "Internal Server Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
		{503, "Service Unavailable"}, {504, "Gateway Timeout"},
		{505, "HTTP Version Not Supported"}, {511, "Network Authentication Required"},
	};
	/* clang-format on */
	for (size_t i = 0; i < TR_ARRAY_LEN(tab); i++)
		if (tab[i].code == status)
			return tab[i].text;
	return "";
}

/* Host (authority without userinfo) and request target (path and query,
 * "/" when empty, no fragment) of an absolute URL. */
static void split_url(const char *url, char *host, size_t hostlen, const char **target,
		      size_t *targetlen)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t alen = strcspn(p, "/?#");
	const char *at = memchr(p, '@', alen);
	if (at) {
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	snprintf(host, hostlen, "%.*s", (int)alen, p);
	*target = p + alen;
	*targetlen = strcspn(*target, "#");
}

/* --- the handler --- */

typedef struct warc {
	char dir[2048];
	char user_agent[512];
	long long max_bytes;
	int level;
	z_stream z;
	bool z_ready;
	tr_buf head;	   /* scratch: WARC header of the record being built */
	tr_buf http;	   /* scratch: HTTP head of the record being built */
	tr_buf out;	   /* compressed records not yet written */
	int fd;		   /* current file, -1 before the first record */
	char path[2200];   /* of the current file */
	char info_id[48];  /* WARC-Record-ID of its warcinfo record */
	long long written; /* bytes of the current file on disk */
	unsigned nrec;	   /* page records (pairs) in the current file */
	bool unsynced;	   /* written since the last fdatasync */
	bool dir_unsynced; /* a file was created since the directory was synced */
	int failed;	   /* sticky I/O error (0: none) */
} warc;

static atomic_uint file_serial;

static int mkdir_p(const char *dir)
{
	char tmp[2048];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return TR_EIO;
		*p = '/';
	}
	return mkdir(tmp, 0755) != 0 && errno != EEXIST ? TR_EIO : TR_OK;
}

/* Compress pieces[0..n) as one gzip member appended to w->out. On failure
 * w->out is left as it was. */
static int gzip_member(warc *w, const void *const *data, const size_t *len, int n)
{
	size_t mark = w->out.len;
	int rc = TR_OK;
	unsigned char chunk[WARC_CHUNK];
	if (deflateReset(&w->z) != Z_OK)
		return TR_EIO;
	for (int i = 0; i < n && rc == TR_OK; i++) {
		const unsigned char *p = data[i];
		size_t left = len[i];
		int zr;
		do {
			uInt step = left > (1u << 30) ? (1u << 30) : (uInt)left;
			int last = i == n - 1 && step == left;
			w->z.next_in = (unsigned char *)p;
			w->z.avail_in = step;
			do {
				w->z.next_out = chunk;
				w->z.avail_out = sizeof(chunk);
				zr = deflate(&w->z, last ? Z_FINISH : Z_NO_FLUSH);
				if (zr == Z_STREAM_ERROR) {
					rc = TR_EIO;
					break;
				}
				rc = tr_buf_add(&w->out, chunk, sizeof(chunk) - w->z.avail_out);
			} while (rc == TR_OK && zr != Z_STREAM_END &&
				 (w->z.avail_out == 0 || last));
			p += step;
			left -= step;
		} while (rc == TR_OK && left > 0);
	}
	if (rc != TR_OK)
		w->out.len = mark;
	return rc;
}

/* Write all of w->out to the current file. On failure the file is cut back
 * to its last complete record and the error is sticky. */
static int write_out(warc *w)
{
	const char *p = w->out.data;
	size_t n = w->out.len;
	while (n > 0) {
		ssize_t r = write(w->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			tr_log(TR_LOG_ERROR, "cannot write WARC file", 2, "path", w->path, "error",
			       r < 0 ? strerror(errno) : "short write");
			if (ftruncate(w->fd, (off_t)w->written) != 0)
				tr_log(TR_LOG_ERROR, "cannot cut WARC file back", 1, "path",
				       w->path);
			w->failed = TR_EIO;
			return TR_EIO;
		}
		p += r;
		n -= (size_t)r;
	}
	w->written += (long long)w->out.len;
	w->unsynced = w->unsynced || w->out.len > 0;
	tr_buf_reset(&w->out);
	return TR_OK;
}

static int sync_all(warc *w)
{
	if (w->fd >= 0 && w->unsynced) {
		if (fdatasync(w->fd) != 0) {
			tr_log(TR_LOG_ERROR, "cannot sync WARC file", 2, "path", w->path, "error",
			       strerror(errno));
			w->failed = TR_EIO;
			return TR_EIO;
		}
		w->unsynced = false;
	}
	if (w->dir_unsynced) {
		int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) != 0) {
			tr_log(TR_LOG_ERROR, "cannot sync WARC directory", 2, "dir", w->dir,
			       "error", strerror(errno));
			if (dfd >= 0)
				close(dfd);
			w->failed = TR_EIO;
			return TR_EIO;
		}
		close(dfd);
		w->dir_unsynced = false;
	}
	return TR_OK;
}

/* Header lines every record starts with; `date` and `uri` may be NULL. */
static int record_head(tr_buf *h, const char *type, const char *id, const char *date,
		       const char *uri)
{
	tr_buf_reset(h);
	if (tr_buf_adds(h, "WARC/1.1\r\n") != TR_OK || add_header(h, "WARC-Type", type) != TR_OK ||
	    add_header(h, "WARC-Record-ID", id) != TR_OK ||
	    (date && add_header(h, "WARC-Date", date) != TR_OK) ||
	    (uri && add_header(h, "WARC-Target-URI", uri) != TR_OK))
		return TR_ETOOBIG;
	return TR_OK;
}

/* Finish h with Content-Type, Content-Length and the blank line, then
 * compress header + block (+ the two CRLFs that end a record). */
static int emit_record(warc *w, tr_buf *h, const char *ctype, const void *b1, size_t l1,
		       const void *b2, size_t l2)
{
	if (add_header(h, "Content-Type", ctype) != TR_OK ||
	    tr_buf_printf(h, "Content-Length: %zu\r\n\r\n", l1 + l2) != TR_OK)
		return TR_ETOOBIG;
	const void *data[4] = {h->data, b1 ? b1 : "", b2 ? b2 : "", "\r\n\r\n"};
	size_t len[4] = {h->len, l1, l2, 4};
	return gzip_member(w, data, len, 4);
}

/* Create the next file and buffer its warcinfo record. */
static int open_file(warc *w)
{
	char stamp[32], host[256] = "", date[32], digest[38];
	time_t now = time(NULL);
	struct tm tm;
	sha1_ctx sha;
	int rc;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	for (int tries = 0; w->fd < 0; tries++) {
		unsigned serial = atomic_fetch_add(&file_serial, 1);
		snprintf(w->path, sizeof(w->path), "%s/trawler-%s-%d-%05u.warc.gz", w->dir, stamp,
			 (int)getpid(), serial);
		w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (w->fd < 0 && (errno != EEXIST || tries >= 1000)) {
			tr_log(TR_LOG_ERROR, "cannot create WARC file", 2, "path", w->path, "error",
			       strerror(errno));
			w->failed = TR_EIO;
			return TR_EIO;
		}
	}
	w->written = 0;
	w->dir_unsynced = true;
	gethostname(host, sizeof(host) - 1);
	tr_buf_reset(&w->http);
	rc = TR_ETOOBIG;
	if (add_header(&w->http, "software", "trawler/" TRAWLER_VERSION) == TR_OK &&
	    add_header(&w->http, "format", "WARC File Format 1.1") == TR_OK &&
	    add_header(&w->http, "conformsTo", WARC_CONFORMS_TO) == TR_OK &&
	    add_header(&w->http, "hostname", host) == TR_OK &&
	    (!w->user_agent[0] ||
	     add_header(&w->http, "http-header-user-agent", w->user_agent) == TR_OK))
		rc = TR_OK;
	sha1_init(&sha);
	sha1_update(&sha, w->http.data, w->http.len);
	sha1_label(&sha, digest);
	warc_date(tr_now_ms(), date);
	if (rc != TR_OK || (rc = make_record_id(w->info_id)) != TR_OK ||
	    (rc = record_head(&w->head, "warcinfo", w->info_id, date, NULL)) != TR_OK ||
	    (rc = add_header(&w->head, "WARC-Filename", strrchr(w->path, '/') + 1)) != TR_OK ||
	    (rc = add_header(&w->head, "WARC-Block-Digest", digest)) != TR_OK ||
	    (rc = emit_record(w, &w->head, "application/warc-fields", w->http.data, w->http.len,
			      NULL, 0)) != TR_OK) {
		/* a file must start with its warcinfo: give this one up */
		tr_log(TR_LOG_ERROR, "cannot build the warcinfo record", 1, "path", w->path);
		close(w->fd);
		unlink(w->path);
		w->fd = -1;
		w->failed = rc;
		return rc;
	}
	w->nrec = 0;
	return TR_OK;
}

/* Finish the current file: write, sync, close. */
static int close_file(warc *w)
{
	int rc = TR_OK;
	if (w->fd < 0)
		return TR_OK;
	if ((rc = write_out(w)) == TR_OK)
		rc = sync_all(w);
	if (close(w->fd) != 0 && rc == TR_OK) {
		w->failed = TR_EIO;
		rc = TR_EIO;
	}
	w->fd = -1;
	return rc;
}

static bool has_body(const Trawler__V1__FetchResult *r)
{
	bool head = r->request->method == TRAWLER__V1__METHOD__METHOD_HEAD;
	return !head && r->status >= 200 && r->status != 204 && r->status != 304;
}

/* The reconstructed HTTP response head (status line, headers, blank line). */
static int response_head(tr_buf *b, const Trawler__V1__FetchResult *r)
{
	const char *ver = r->http_version && *r->http_version ? r->http_version : "1.1";
	bool body = has_body(r);
	tr_buf_reset(b);
	if (tr_buf_adds(b, "HTTP/") != TR_OK || add_field_text(b, ver) != TR_OK ||
	    tr_buf_printf(b, " %u %s\r\n", r->status, reason_phrase(r->status)) != TR_OK)
		return TR_ETOOBIG;
	for (size_t i = 0; i < r->n_headers; i++) {
		const char *name = r->headers[i]->name ? r->headers[i]->name : "";
		if (!*name || strcasecmp(name, "Transfer-Encoding") == 0 ||
		    (body && (strcasecmp(name, "Content-Encoding") == 0 ||
			      strcasecmp(name, "Content-Length") == 0)))
			continue;
		if (add_header(b, name, r->headers[i]->value) != TR_OK)
			return TR_ETOOBIG;
	}
	if (body && tr_buf_printf(b, "Content-Length: %zu\r\n", r->body.len) != TR_OK)
		return TR_ETOOBIG;
	return tr_buf_adds(b, "\r\n");
}

static int request_head(warc *w, tr_buf *b, const Trawler__V1__FetchResult *r, const char *url)
{
	const Trawler__V1__CrawlRequest *q = r->request;
	const char *target, *ver = "1.1";
	char host[1024];
	size_t tlen;
	if (r->http_version &&
	    (strcmp(r->http_version, "2") == 0 || strcmp(r->http_version, "3") == 0))
		ver = r->http_version;
	split_url(url, host, sizeof(host), &target, &tlen);
	tr_buf_reset(b);
	if (tr_buf_printf(b, "%s %s%.*s HTTP/%s\r\n",
			  q->method == TRAWLER__V1__METHOD__METHOD_HEAD ? "HEAD" : "GET",
			  tlen && *target == '/' ? "" : "/", (int)tlen, target, ver) != TR_OK ||
	    add_header(b, "Host", host) != TR_OK ||
	    (w->user_agent[0] && add_header(b, "User-Agent", w->user_agent) != TR_OK))
		return TR_ETOOBIG;
	if (q->range && (q->range->first || q->range->last)) {
		int rc = q->range->last ? tr_buf_printf(b, "Range: bytes=%llu-%llu\r\n",
							(unsigned long long)q->range->first,
							(unsigned long long)q->range->last)
					: tr_buf_printf(b, "Range: bytes=%llu-\r\n",
							(unsigned long long)q->range->first);
		if (rc != TR_OK)
			return TR_ETOOBIG;
	}
	return tr_buf_adds(b, "\r\n");
}

static int warc_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	char num[32];
	warc *w = calloc(1, sizeof(*w));
	if (!w)
		return TR_ENOMEM;
	w->fd = -1;
	w->max_bytes = 1LL << 30;
	w->level = 6;
	snprintf(w->dir, sizeof(w->dir), "out/warc");
	tr_pipeline_conf(config, "dir", w->dir, sizeof(w->dir));
	tr_pipeline_conf(config, "user_agent", w->user_agent, sizeof(w->user_agent));
	if (tr_pipeline_conf(config, "max_bytes", num, sizeof(num)))
		w->max_bytes = atoll(num);
	if (tr_pipeline_conf(config, "level", num, sizeof(num)))
		w->level = atoi(num);
	tr_buf_init(&w->head, WARC_HEAD_MAX);
	tr_buf_init(&w->http, WARC_HEAD_MAX);
	tr_buf_init(&w->out, WARC_OUT_MAX);
	if (w->max_bytes < 0 || w->level < 1 || w->level > 9 || !w->dir[0]) {
		tr_log(TR_LOG_ERROR, "warc: bad configuration", 1, "config", config);
		free(w);
		return TR_EINVAL;
	}
	if (mkdir_p(w->dir) != TR_OK) {
		tr_log(TR_LOG_ERROR, "cannot create WARC directory", 2, "dir", w->dir, "error",
		       strerror(errno));
		free(w);
		return TR_EIO;
	}
	if (deflateInit2(&w->z, w->level, Z_DEFLATED, 15 + 16 /* gzip wrapper */, 8,
			 Z_DEFAULT_STRATEGY) != Z_OK) {
		free(w);
		return TR_ENOMEM;
	}
	w->z_ready = true;
	*state = w;
	return TR_OK;
}

static int warc_process(void *state, tr_page_view *view, const char **reason, void *payload)
{
	warc *w = state;
	const Trawler__V1__FetchResult *r = tr_pipeline_page(view)->res;
	char date[32], resp_id[48], req_id[48], block_digest[38], payload_digest[38];
	sha1_ctx sha;
	size_t mark;
	if (!r || !r->request || r->status == 0)
		return TR_OK; /* no HTTP response, nothing to archive */
	if (w->failed) {
		*reason = "WARC output failed earlier";
		return w->failed;
	}
	const char *url = r->final_url && *r->final_url ? r->final_url : r->request->url;
	if (w->fd >= 0 && w->max_bytes > 0 && w->nrec > 0 &&
	    w->written + (long long)w->out.len >= w->max_bytes && close_file(w) != TR_OK)
		goto io_error;
	if (w->fd < 0 && open_file(w) != TR_OK)
		goto io_error;
	mark = w->out.len;
	warc_date(r->fetched_at_ms > 0 ? r->fetched_at_ms : tr_now_ms(), date);
	if (make_record_id(resp_id) != TR_OK || make_record_id(req_id) != TR_OK) {
		*reason = "no random bytes for a WARC-Record-ID";
		return TR_EIO;
	}

	/* response: digests first, they go in the header */
	if (response_head(&w->http, r) != TR_OK)
		goto too_big;
	sha1_init(&sha);
	sha1_update(&sha, r->body.data, r->body.len);
	sha1_label(&sha, payload_digest);
	sha1_init(&sha);
	sha1_update(&sha, w->http.data, w->http.len);
	sha1_update(&sha, r->body.data, r->body.len);
	sha1_label(&sha, block_digest);
	if (record_head(&w->head, "response", resp_id, date, url) != TR_OK ||
	    (r->remote_ip && *r->remote_ip &&
	     add_header(&w->head, "WARC-IP-Address", r->remote_ip) != TR_OK) ||
	    add_header(&w->head, "WARC-Warcinfo-ID", w->info_id) != TR_OK ||
	    add_header(&w->head, "WARC-Concurrent-To", req_id) != TR_OK ||
	    add_header(&w->head, "WARC-Block-Digest", block_digest) != TR_OK ||
	    add_header(&w->head, "WARC-Payload-Digest", payload_digest) != TR_OK ||
	    (r->truncated && add_header(&w->head, "WARC-Truncated", "length") != TR_OK) ||
	    (!r->truncated && r->error != TRAWLER__V1__FETCH_ERROR__ERROR_NONE &&
	     add_header(&w->head, "WARC-Truncated", "unspecified") != TR_OK))
		goto too_big;
	if (emit_record(w, &w->head, "application/http; msgtype=response", w->http.data,
			w->http.len, r->body.data, r->body.len) != TR_OK)
		goto too_big;

	/* request */
	if (request_head(w, &w->http, r, url) != TR_OK)
		goto too_big;
	sha1_init(&sha);
	sha1_update(&sha, w->http.data, w->http.len);
	sha1_label(&sha, block_digest);
	if (record_head(&w->head, "request", req_id, date, url) != TR_OK ||
	    (r->remote_ip && *r->remote_ip &&
	     add_header(&w->head, "WARC-IP-Address", r->remote_ip) != TR_OK) ||
	    add_header(&w->head, "WARC-Warcinfo-ID", w->info_id) != TR_OK ||
	    add_header(&w->head, "WARC-Concurrent-To", resp_id) != TR_OK ||
	    add_header(&w->head, "WARC-Block-Digest", block_digest) != TR_OK ||
	    emit_record(w, &w->head, "application/http; msgtype=request", w->http.data, w->http.len,
			NULL, 0) != TR_OK)
		goto too_big;

	w->nrec++;
	if (w->out.len > WARC_SPILL_BYTES && write_out(w) != TR_OK)
		goto io_error;
	return TR_OK;
too_big:
	w->out.len = mark; /* neither record of the pair is kept */
	*reason = "WARC records not built: over the size cap or out of memory";
	return TR_ETOOBIG;
io_error:
	*reason = "cannot write the WARC file";
	return TR_EIO;
}

static int warc_flush(void *state, void *payload)
{
	warc *w = state;
	if (w->failed)
		return w->failed;
	if (w->fd < 0)
		return TR_OK;
	if (write_out(w) != TR_OK || sync_all(w) != TR_OK)
		return TR_EIO;
	return TR_OK;
}

static void warc_destroy(void *state, void *payload)
{
	warc *w = state;
	if (w->fd >= 0 && !w->failed)
		close_file(w);
	else if (w->fd >= 0)
		close(w->fd);
	if (w->z_ready)
		deflateEnd(&w->z);
	tr_buf_free(&w->head);
	tr_buf_free(&w->http);
	tr_buf_free(&w->out);
	free(w);
}

const tr_handler tr_handler_warc = {
    TR_HANDLER_ABI_VERSION, "warc", warc_create, warc_process, warc_flush, warc_destroy,
};
