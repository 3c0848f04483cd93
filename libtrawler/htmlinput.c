/* htmlinput.c - charset choice and conversion to UTF-8 before libxml2
 * parses. */
#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "htmlinput.h"
#include "metrics.h"
#include "utf8.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

const char *tr_html_charset_of(const char *ct, char *out, size_t outlen)
{
	const char *p = ct ? strcasestr(ct, "charset=") : NULL;
	size_t n = 0;
	if (!p || outlen == 0)
		return NULL;
	p += 8;
	if (*p == '"')
		p++;
	while (p[n] && p[n] != ';' && p[n] != '"' && p[n] != ' ' && n + 1 < outlen) {
		out[n] = p[n];
		n++;
	}
	out[n] = '\0';
	return n ? out : NULL;
}

bool tr_html_is_utf8(const unsigned char *p, size_t len)
{
	size_t i = 0, n, k;
	uint64_t w;
	uint32_t cp;

	while (i < len) {
		/* fast path over ASCII, 8 bytes at a time */
		while (len - i >= 8) {
			memcpy(&w, p + i, 8);
			if ((w & UINT64_C(0x8080808080808080)) != 0)
				break;
			i += 8;
		}
		if (i == len)
			break;
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			n = 1;
			cp = p[i] & 0x1fu;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			n = 2;
			cp = p[i] & 0x0fu;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			n = 3;
			cp = p[i] & 0x07u;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3fu);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* WHATWG names for the labels whose iconv meaning differs from what
 * browsers read (or that iconv does not know); matched case-insensitively. */
static const struct {
	const char *label;
	const char *iconv;
} charset_aliases[] = {
    {"utf8", "UTF-8"},
    {"unicode-1-1-utf-8", "UTF-8"},
    {"iso-8859-1", "WINDOWS-1252"},
    {"iso8859-1", "WINDOWS-1252"},
    {"iso_8859-1", "WINDOWS-1252"},
    {"latin1", "WINDOWS-1252"},
    {"l1", "WINDOWS-1252"},
    {"cp819", "WINDOWS-1252"},
    {"ascii", "WINDOWS-1252"},
    {"us-ascii", "WINDOWS-1252"},
    {"iso-8859-9", "WINDOWS-1254"},
    {"latin5", "WINDOWS-1254"},
    {"iso-8859-11", "WINDOWS-874"},
    {"tis-620", "WINDOWS-874"},
    {"shift_jis", "CP932"},
    {"shift-jis", "CP932"},
    {"sjis", "CP932"},
    {"x-sjis", "CP932"},
    {"ms_kanji", "CP932"},
    {"windows-31j", "CP932"},
    {"csshiftjis", "CP932"},
    {"gb2312", "GB18030"},
    {"gbk", "GB18030"},
    {"x-gbk", "GB18030"},
    {"euc-kr", "CP949"},
    {"ks_c_5601-1987", "CP949"},
    {"big5", "BIG5-HKSCS"},
    {"x-user-defined", "WINDOWS-1252"},
};

/* Whether iconv can read `name` (tries it once; no caching, iconv_open is
 * cheap next to a parse). */
static bool charset_known(const char *name)
{
	iconv_t cd = iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1)
		return false;
	iconv_close(cd);
	return true;
}

/* Map a label from the network to an iconv name in out, or return NULL when
 * it is not one we read. Only [A-Za-z0-9._:-] and at most 40 bytes pass
 * (iconv's own "//" suffixes never do); UTF-7 is refused as browsers do. */
static const char *charset_name(char *out, size_t outlen, const char *label, bool from_meta)
{
	size_t n = 0, i;
	const char *res = NULL;

	if (label == NULL)
		goto out;
	while (*label == ' ' || *label == '\t' || *label == '\'' || *label == '"')
		label++;
	while (label[n] != '\0' && n < 41 &&
	       (isalnum((unsigned char)label[n]) || strchr("._:-", label[n]) != NULL))
		n++;
	if (n == 0 || n > 40 || n + 1 > outlen)
		goto out;
	memcpy(out, label, n);
	out[n] = '\0';
	for (i = 0; i < TR_ARRAY_LEN(charset_aliases); i++) {
		if (strcasecmp(out, charset_aliases[i].label) == 0) {
			snprintf(out, outlen, "%s", charset_aliases[i].iconv);
			res = out;
			goto out;
		}
	}
	if (strncasecmp(out, "utf-7", 5) == 0 || strncasecmp(out, "utf7", 4) == 0)
		goto out;
	/* a <meta> in the bytes cannot be UTF-16/32: those bytes are ASCII */
	if (from_meta && (strncasecmp(out, "utf-16", 6) == 0 ||
			  strncasecmp(out, "utf-32", 6) == 0 || strncasecmp(out, "ucs", 3) == 0)) {
		snprintf(out, outlen, "UTF-8");
		res = out;
		goto out;
	}
	if (charset_known(out))
		res = out;
out:
	return res;
}

/* The charset named by a <meta charset=...> or <meta http-equiv
 * content="...; charset=..."> in the first TR_HTML_SNIFF_MAX bytes, as an
 * iconv name in out, or NULL. */
static const char *charset_from_meta(char *out, size_t outlen, const unsigned char *p, size_t len)
{
	char head[TR_HTML_SNIFF_MAX + 1], val[48];
	const char *m, *end, *c;
	size_t n = len < TR_HTML_SNIFF_MAX ? len : TR_HTML_SNIFF_MAX, i, k;

	for (i = 0; i < n; i++) /* NUL-free copy for the string functions */
		head[i] = p[i] == 0 ? ' ' : (char)p[i];
	head[n] = '\0';
	for (m = strcasestr(head, "<meta"); m != NULL; m = strcasestr(m + 5, "<meta")) {
		end = strchr(m, '>');
		if (end == NULL)
			break;
		for (c = strcasestr(m, "charset"); c != NULL && c < end;
		     c = strcasestr(c + 7, "charset")) {
			c += 7;
			while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r')
				c++;
			if (*c != '=')
				continue;
			c++;
			while (*c == ' ' || *c == '\t' || *c == '"' || *c == '\'')
				c++;
			for (k = 0; k + 1 < sizeof(val) && c + k < end &&
				    (isalnum((unsigned char)c[k]) || strchr("._:-", c[k]) != NULL);
			     k++)
				val[k] = c[k];
			val[k] = '\0';
			if (k > 0)
				return charset_name(out, outlen, val, true);
		}
	}
	return NULL;
}

const char *tr_html_sniff(char *out, size_t outlen, size_t *bom, const unsigned char *p, size_t len,
			  const char *declared)
{
	*bom = 0;
	if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
		*bom = 3;
		snprintf(out, outlen, "UTF-8");
	} else if (len >= 2 && p[0] == 0xff && p[1] == 0xfe) {
		*bom = 2;
		snprintf(out, outlen, "UTF-16LE");
	} else if (len >= 2 && p[0] == 0xfe && p[1] == 0xff) {
		*bom = 2;
		snprintf(out, outlen, "UTF-16BE");
	} else if (charset_name(out, outlen, declared, false) != NULL) {
		/* the declared charset, in out */
	} else if (tr_html_is_utf8(p, len)) {
		snprintf(out, outlen, "UTF-8");
	} else if (charset_from_meta(out, outlen, p, len) != NULL) {
		/* the <meta> charset, in out */
	} else {
		snprintf(out, outlen, "WINDOWS-1252");
	}
	return out;
}

/* Output buffer of a conversion, capped at TR_HTML_UTF8_MAX. */
typedef struct {
	char *data;
	size_t len, cap;
	bool full; /* the cap was hit: the rest of the input is dropped */
} utf8_out;

/* Make room for `need` more bytes. Returns 0, TR_ETOOBIG (cap reached:
 * full is set) or TR_ENOMEM. */
static int out_room(utf8_out *o, size_t need)
{
	size_t cap = o->cap;
	char *d;

	if (o->len + need <= o->cap)
		return TR_OK;
	if (o->len + need > TR_HTML_UTF8_MAX) {
		o->full = true;
		return TR_ETOOBIG;
	}
	while (cap < o->len + need)
		cap = cap < TR_HTML_UTF8_MAX / 2 ? cap * 2 : TR_HTML_UTF8_MAX;
	d = realloc(o->data, cap);
	if (d == NULL)
		return TR_ENOMEM;
	o->data = d;
	o->cap = cap;
	return TR_OK;
}

static int out_put(utf8_out *o, const void *p, size_t n)
{
	int rc = out_room(o, n);
	if (rc == TR_OK) {
		memcpy(o->data + o->len, p, n);
		o->len += n;
	}
	return rc;
}

/* Copy UTF-8 with every invalid byte replaced by U+FFFD and NUL by space. */
static int convert_utf8(utf8_out *o, const unsigned char *p, size_t len)
{
	int rc = TR_OK;
	size_t i = 0, n;

	while (i < len && rc == TR_OK) {
		n = p[i] != 0 ? tr_utf8_seq(p + i, len - i) : 0;
		if (n > 0)
			rc = out_put(o, p + i, n);
		else if (p[i] == 0)
			rc = out_put(o, " ", 1);
		else
			rc = out_put(o, REPLACEMENT, 3);
		i += n > 0 ? n : 1;
	}
	return rc;
}

/* Convert from `from` with iconv; an invalid or unmappable byte becomes
 * U+FFFD and decoding resumes at the next byte (as browsers do), an
 * incomplete sequence at the end one U+FFFD. NULs become spaces. Returns 0,
 * TR_ETOOBIG (cut at the cap), TR_ENOMEM or TR_EINVAL (iconv cannot read
 * `from`). */
static int convert_iconv(utf8_out *o, const unsigned char *p, size_t len, const char *from)
{
	int rc = TR_OK;
	iconv_t cd = iconv_open("UTF-8", from);
	char *in = (char *)p, *dst;
	size_t inleft = len, outleft, r, start, i;
	int err;

	if (cd == (iconv_t)-1)
		return TR_EINVAL;
	start = o->len;
	while (rc == TR_OK) {
		/* room for about the rest; near the cap, for a few characters */
		rc = out_room(o, inleft / 2 + 64);
		if (rc == TR_ETOOBIG)
			rc = out_room(o, 16);
		if (rc != TR_OK)
			break;
		dst = o->data + o->len;
		outleft = o->cap - o->len;
		r = iconv(cd, inleft > 0 ? &in : NULL, &inleft, &dst, &outleft);
		o->len = (size_t)(dst - o->data);
		if (r != (size_t)-1) {
			if (inleft == 0)
				break; /* done, and the shift state is flushed */
			continue;
		}
		if (errno == E2BIG) {
			if (o->len + 16 > TR_HTML_UTF8_MAX) {
				o->full = true;
				rc = TR_ETOOBIG;
			}
			continue;
		}
		/* EILSEQ: invalid or unmappable here; EINVAL: cut at the end */
		err = errno;
		rc = out_put(o, REPLACEMENT, 3);
		if (err == EINVAL || inleft <= 1) {
			inleft = 0;
		} else {
			in++;
			inleft--;
		}
	}
	iconv_close(cd);
	for (i = start; i < o->len; i++)
		if (o->data[i] == '\0')
			o->data[i] = ' ';
	return rc;
}

int tr_html_prepare(const char **html, size_t *len, const char *charset, char **owned)
{
	int rc = TR_OK;
	const unsigned char *p = (const unsigned char *)*html;
	char name[64];
	size_t bom, n = *len;
	utf8_out o = {NULL, 0, 0, false};

	*owned = NULL;
	if (n == 0)
		goto out;
	tr_html_sniff(name, sizeof(name), &bom, p, n, charset);
	p += bom;
	n -= bom;
	if (strcmp(name, "UTF-8") == 0 && bom == 0 && memchr(p, '\0', n) == NULL &&
	    tr_html_is_utf8(p, n))
		goto out; /* already what libxml2 wants */
	o.cap = n < TR_HTML_UTF8_MAX / 2 ? n + n / 2 + 64 : TR_HTML_UTF8_MAX;
	o.data = malloc(o.cap);
	if (o.data == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	if (strcmp(name, "UTF-8") == 0)
		rc = convert_utf8(&o, p, n);
	else
		rc = convert_iconv(&o, p, n, name);
	if (rc == TR_EINVAL) /* iconv knew the name a moment ago: read UTF-8 */
		rc = convert_utf8(&o, p, n);
	if (rc == TR_ETOOBIG) {
		tr_metrics_limit_hit("html_utf8");
		rc = TR_OK;
	}
	if (rc != TR_OK)
		goto out;
	if (o.len == 0 && out_put(&o, " ", 1) != TR_OK) { /* only a BOM: a blank page */
		rc = TR_ENOMEM;
		goto out;
	}
	*owned = o.data;
	*html = o.data;
	*len = o.len;
	o.data = NULL;
out:
	free(o.data);
	return rc;
}
