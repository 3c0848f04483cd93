/* jsonw.h - append JSON values to a tr_buf (always valid UTF-8 output). */
#ifndef TR_JSONW_H
#define TR_JSONW_H

#include "buf.h"

/* Append `s` (n bytes, may hold any bytes) as a JSON string literal with the
 * quotes. Invalid UTF-8 sequences become U+FFFD; control characters are
 * escaped. Returns 0 or the tr_buf_add() error (buffer may hold a partial
 * string then; callers reset the line). */
int tr_jsonw_str(tr_buf *b, const char *s, size_t n);
/* `"key":` followed by the string value; `first` omits the leading comma. */
int tr_jsonw_kv_str(tr_buf *b, bool first, const char *key, const char *value);
int tr_jsonw_kv_int(tr_buf *b, bool first, const char *key, long long value);
int tr_jsonw_kv_bool(tr_buf *b, bool first, const char *key, bool value);

#endif
