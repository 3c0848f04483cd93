/* htmlinput.c - charset choice and NUL handling before libxml2 parses. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "htmlinput.h"

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

int tr_html_prepare(const char **html, size_t len, const char **charset, char **owned)
{
	const unsigned char *p = (const unsigned char *)*html;
	*owned = NULL;
	if (!*charset && tr_html_is_utf8(p, len))
		*charset = "UTF-8";
	if (!memchr(*html, '\0', len))
		return TR_OK;
	if (len >= 2 && ((p[0] == 0xff && p[1] == 0xfe) || (p[0] == 0xfe && p[1] == 0xff)))
		return TR_OK;
	if (*charset && (strstr(*charset, "16") || strstr(*charset, "32")))
		return TR_OK;
	char *copy = malloc(len);
	if (!copy)
		return TR_ENOMEM;
	for (size_t i = 0; i < len; i++)
		copy[i] = p[i] == 0 ? ' ' : (char)p[i];
	*owned = copy;
	*html = copy;
	return TR_OK;
}
