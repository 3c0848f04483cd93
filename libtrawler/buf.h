/* buf.h - a growable byte buffer with a hard size cap (for network input). */
#ifndef TR_BUF_H
#define TR_BUF_H

#include "common.h"

typedef struct tr_buf {
	char *data; /* NUL-terminated when len > 0 or after tr_buf_cstr() */
	size_t len; /* bytes used, excluding the terminator */
	size_t cap; /* bytes allocated */
	size_t max; /* hard cap on len; appends past it fail with TR_ETOOBIG */
} tr_buf;

/* Initialise an empty buffer that may grow to `max` bytes. No allocation. */
void tr_buf_init(tr_buf *b, size_t max);
/* Append n bytes. Returns 0, TR_ENOMEM, or TR_ETOOBIG (nothing appended,
 * buffer unchanged) when len + n would pass max. */
int tr_buf_add(tr_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. Same contract as tr_buf_add(). */
int tr_buf_adds(tr_buf *b, const char *s);
/* Append printf-formatted text. Same contract as tr_buf_add(). */
int tr_buf_printf(tr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the contents, keep the allocation. */
void tr_buf_reset(tr_buf *b);
/* Release memory; the buffer is empty and reusable afterwards. */
void tr_buf_free(tr_buf *b);
/* Take ownership of the data (free() it); the buffer is left empty. May
 * return NULL for an empty buffer. */
char *tr_buf_steal(tr_buf *b, size_t *len_out);

#endif
