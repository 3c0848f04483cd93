/* jsonw.c - JSON string escaping and key/value writers. */
#include <string.h>

#include "jsonw.h"
#include "utf8.h"

int tr_jsonw_str(tr_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	int rc = tr_buf_add(b, "\"", 1);
	size_t i = 0, run = 0;
	while (rc == TR_OK && i < n) {
		unsigned char c = p[i];
		size_t len = (c >= 0x20 && c != '"' && c != '\\') ? tr_utf8_seq(p + i, n - i) : 0;
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
