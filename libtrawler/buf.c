/* buf.c - growable byte buffer with a hard cap. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void tr_buf_init(tr_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static int buf_reserve(tr_buf *b, size_t need)
{
	if (need + 1 <= b->cap)
		return TR_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return TR_ENOMEM;
	b->data = p;
	b->cap = cap;
	return TR_OK;
}

int tr_buf_add(tr_buf *b, const void *p, size_t n)
{
	int rc;
	if (n > b->max || b->len > b->max - n)
		return TR_ETOOBIG;
	if ((rc = buf_reserve(b, b->len + n)) != TR_OK)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return TR_OK;
}

int tr_buf_adds(tr_buf *b, const char *s)
{
	return tr_buf_add(b, s, strlen(s));
}

int tr_buf_printf(tr_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int rc;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return TR_EINVAL;
	if ((size_t)n < sizeof(small))
		return tr_buf_add(b, small, (size_t)n);
	if ((size_t)n > b->max || b->len > b->max - (size_t)n)
		return TR_ETOOBIG;
	if ((rc = buf_reserve(b, b->len + (size_t)n)) != TR_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return TR_OK;
}

void tr_buf_reset(tr_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void tr_buf_free(tr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

char *tr_buf_steal(tr_buf *b, size_t *len_out)
{
	char *p = b->data;
	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
