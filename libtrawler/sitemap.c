/* sitemap.c - streaming sitemap parser (libxml2 xmlReader, zlib). */
#include <libxml/xmlreader.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "metrics.h"
#include "sitemap.h"

#define INFLATE_STEP 65536

/* Inflate a gzip body into a new buffer of at most max bytes. Returns 0
 * with *out (free()) and *outlen; TR_ENOMEM; TR_EINVAL when it is not
 * gzip at all. *cut is set when the cap or a corrupt stream stopped it. */
static int gunzip(const unsigned char *in, size_t len, size_t max, unsigned char **out,
		  size_t *outlen, bool *cut)
{
	z_stream zs;
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	int rc = TR_OK, zr = Z_OK;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return TR_ENOMEM;
	zs.next_in = (unsigned char *)in;
	zs.avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
	while (zr == Z_OK && n < max) {
		if (n == cap) {
			size_t ncap = cap + INFLATE_STEP > max ? max : cap + INFLATE_STEP;
			unsigned char *nb = realloc(buf, ncap + 1);
			if (!nb) {
				rc = TR_ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		zs.next_out = buf + n;
		zs.avail_out = (uInt)(cap - n);
		zr = inflate(&zs, Z_NO_FLUSH);
		n = cap - zs.avail_out;
		if (zr == Z_BUF_ERROR && zs.avail_out > 0)
			break; /* input ended early */
		if (zr == Z_BUF_ERROR)
			zr = Z_OK; /* output full: grow */
	}
	if (zr != Z_STREAM_END)
		*cut = true;
	if (n == 0 && zr != Z_STREAM_END) {
		rc = TR_EINVAL;
		goto out;
	}
	*out = buf;
	*outlen = n;
	buf = NULL;
out:
	inflateEnd(&zs);
	free(buf);
	return rc;
}

static const char *local_name(xmlTextReaderPtr r)
{
	const xmlChar *n = xmlTextReaderConstLocalName(r);
	return n ? (const char *)n : "";
}

/* Deliver one <loc> text, trimmed. */
static void emit(const xmlChar *text, tr_sitemap_loc_cb cb, void *payload)
{
	const char *s = (const char *)text;
	size_t n;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (!n)
		return;
	char *v = malloc(n + 1);
	if (!v)
		return;
	memcpy(v, s, n);
	v[n] = '\0';
	cb(v, payload);
	free(v);
}

int tr_sitemap_parse(const void *body, size_t len, size_t max_bytes, size_t max_urls,
		     tr_sitemap_loc_cb cb, void *payload, bool *truncated)
{
	const unsigned char *data = body;
	unsigned char *plain = NULL;
	size_t plen = len, count = 0;
	bool cut = false;
	int kind = TR_SITEMAP_NONE, rc;
	xmlTextReaderPtr r = NULL;
	if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
		rc = gunzip(data, len, max_bytes, &plain, &plen, &cut);
		if (rc == TR_ENOMEM)
			return rc;
		if (rc != TR_OK)
			goto out;
		data = plain;
	} else if (plen > max_bytes) {
		plen = max_bytes;
		cut = true;
	}
	if (!plen || plen > INT32_MAX)
		goto out;
	r = xmlReaderForMemory((const char *)data, (int)plen, NULL, NULL,
			       XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!r) {
		kind = TR_ENOMEM;
		goto out;
	}
	for (;;) {
		int st = xmlTextReaderRead(r);
		if (st != 1) {
			cut = cut || st < 0;
			break;
		}
		if (xmlTextReaderNodeType(r) != XML_READER_TYPE_ELEMENT)
			continue;
		int depth = xmlTextReaderDepth(r);
		const char *name = local_name(r);
		if (depth == 0) {
			kind = strcmp(name, "urlset") == 0	   ? TR_SITEMAP_URLSET
			       : strcmp(name, "sitemapindex") == 0 ? TR_SITEMAP_INDEX
								   : TR_SITEMAP_NONE;
			if (kind == TR_SITEMAP_NONE)
				break;
			continue;
		}
		/* <loc> as a child of <url> / <sitemap>: depth 2 */
		if (depth != 2 || strcmp(name, "loc") != 0)
			continue;
		if (count >= max_urls) {
			cut = true;
			break;
		}
		xmlChar *text = xmlTextReaderReadString(r);
		if (text) {
			emit(text, cb, payload);
			count++;
			xmlFree(text);
		}
	}
out:
	if (r)
		xmlFreeTextReader(r);
	free(plain);
	if (cut && kind > 0)
		tr_metrics_limit_hit("sitemap");
	if (truncated)
		*truncated = cut && kind > 0;
	return kind;
}
