/* utf8.h - UTF-8 validity and repair for text that leaves the crawler
 * (titles, extracted fields, protobuf strings must be valid UTF-8). */
#ifndef TR_UTF8_H
#define TR_UTF8_H

#include "common.h"

/* Length of the valid UTF-8 sequence at p (n bytes left, n > 0), or 0 when
 * p does not start one (RFC 3629: no overlong forms, no surrogates). */
size_t tr_utf8_seq(const unsigned char *p, size_t n);

/* A malloc'd copy of s[0..n) where every byte that does not start a valid
 * sequence is replaced by U+FFFD (the caller frees it), or NULL when out of
 * memory. */
char *tr_utf8_clean(const char *s, size_t n);

#endif
