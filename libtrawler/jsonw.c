/* jsonw.c - JSON string escaping and key/value writers. */
#include <string.h>

#include "jsonw.h"

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	if (p[0] < 0x80)
		return 1;
	size_t len;
	unsigned min;
	unsigned cp;
	if ((p[0] & 0xE0) == 0xC0) {
		len = 2;
		cp = p[0] & 0x1F;
		min = 0x80;
	} else if ((p[0] & 0xF0) == 0xE0) {
		len = 3;
		cp = p[0] & 0x0F;
		min = 0x800;
	} else if ((p[0] & 0xF8) == 0xF0) {
		len = 4;
		cp = p[0] & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

int tr_jsonw_str(tr_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	int rc = tr_buf_add(b, "\"", 1);
	size_t i = 0, run = 0;
	while (rc == TR_OK && i < n) {
		unsigned char c = p[i];
		size_t len = (c >= 0x20 && c != '"' && c != '\\') ? utf8_seq(p + i, n - i) : 0;
		if (len) {
			i += len;
			run += len;
			continue;
		}
		if (run && (rc = tr_buf_add(b, p + i - run, run)) != TR_OK)
			break;
		run = 0;
		if (c == '"')
			rc = tr_buf_add(b, "\\\"", 2);
		else if (c == '\\')
			rc = tr_buf_add(b, "\\\\", 2);
		else if (c == '\n')
			rc = tr_buf_add(b, "\\n", 2);
		else if (c == '\t')
			rc = tr_buf_add(b, "\\t", 2);
		else if (c == '\r')
			rc = tr_buf_add(b, "\\r", 2);
		else if (c < 0x20) {
			char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			rc = tr_buf_add(b, esc, 6);
		} else {
			rc = tr_buf_add(b, "\\ufffd", 6);
		}
		i++;
	}
	if (rc == TR_OK && run)
		rc = tr_buf_add(b, p + n - run, run);
	if (rc == TR_OK)
		rc = tr_buf_add(b, "\"", 1);
	return rc;
}

static int put_key(tr_buf *b, bool first, const char *key)
{
	int rc = first ? TR_OK : tr_buf_add(b, ",", 1);
	if (rc == TR_OK)
		rc = tr_jsonw_str(b, key, strlen(key));
	if (rc == TR_OK)
		rc = tr_buf_add(b, ":", 1);
	return rc;
}

int tr_jsonw_kv_str(tr_buf *b, bool first, const char *key, const char *value)
{
	int rc = put_key(b, first, key);
	if (rc == TR_OK)
		rc = value ? tr_jsonw_str(b, value, strlen(value)) : tr_buf_adds(b, "null");
	return rc;
}

int tr_jsonw_kv_int(tr_buf *b, bool first, const char *key, long long value)
{
	int rc = put_key(b, first, key);
	if (rc == TR_OK)
		rc = tr_buf_printf(b, "%lld", value);
	return rc;
}

int tr_jsonw_kv_bool(tr_buf *b, bool first, const char *key, bool value)
{
	int rc = put_key(b, first, key);
	if (rc == TR_OK)
		rc = tr_buf_adds(b, value ? "true" : "false");
	return rc;
}
