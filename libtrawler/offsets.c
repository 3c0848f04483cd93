/* offsets.c - lowest-unfinished-offset tracker (a sorted deque per partition). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "offsets.h"

#define MAX_PARTITIONS 65536

typedef struct part {
	int64_t *offs;	     /* tracked offsets, increasing, from head */
	unsigned char *done; /* done flag per slot */
	size_t head, tail, cap;
	int64_t next_commit; /* committable offset; -1 when unknown */
	int64_t reported;    /* last value returned by tr_offsets_advanced */
} part;

struct tr_offsets {
	part *parts;
	int32_t nparts;
	size_t pending;
};

tr_offsets *tr_offsets_new(void)
{
	return calloc(1, sizeof(tr_offsets));
}

void tr_offsets_free(tr_offsets *t)
{
	if (!t)
		return;
	for (int32_t i = 0; i < t->nparts; i++) {
		free(t->parts[i].offs);
		free(t->parts[i].done);
	}
	free(t->parts);
	free(t);
}

static part *get_part(tr_offsets *t, int32_t p)
{
	if (p < 0 || p >= MAX_PARTITIONS)
		return NULL;
	if (p >= t->nparts) {
		int32_t n = p + 1;
		part *np = realloc(t->parts, (size_t)n * sizeof(*np));
		if (!np)
			return NULL;
		for (int32_t i = t->nparts; i < n; i++) {
			memset(&np[i], 0, sizeof(np[i]));
			np[i].next_commit = -1;
			np[i].reported = -1;
		}
		t->parts = np;
		t->nparts = n;
	}
	return &t->parts[p];
}

int tr_offsets_track(tr_offsets *t, int32_t partition, int64_t offset)
{
	part *pt = get_part(t, partition);
	if (!pt)
		return partition < 0 || partition >= MAX_PARTITIONS ? TR_EINVAL : TR_ENOMEM;
	if (pt->tail > pt->head && pt->offs[pt->tail - 1] >= offset)
		return TR_EINVAL;
	if (pt->tail == pt->head && pt->next_commit > offset)
		return TR_EINVAL;
	if (pt->tail == pt->cap) {
		/* compact first, grow if still full */
		size_t live = pt->tail - pt->head;
		if (pt->head > 0 && live < pt->cap / 2) {
			memmove(pt->offs, pt->offs + pt->head, live * sizeof(*pt->offs));
			memmove(pt->done, pt->done + pt->head, live);
			pt->head = 0;
			pt->tail = live;
		} else {
			size_t cap = pt->cap ? pt->cap * 2 : 64;
			int64_t *o = realloc(pt->offs, cap * sizeof(*o));
			if (!o)
				return TR_ENOMEM;
			pt->offs = o;
			unsigned char *d = realloc(pt->done, cap);
			if (!d)
				return TR_ENOMEM;
			pt->done = d;
			pt->cap = cap;
		}
	}
	pt->offs[pt->tail] = offset;
	pt->done[pt->tail] = 0;
	pt->tail++;
	if (pt->tail - pt->head == 1)
		pt->next_commit = offset;
	t->pending++;
	return TR_OK;
}

int tr_offsets_done(tr_offsets *t, int32_t partition, int64_t offset)
{
	if (partition < 0 || partition >= t->nparts)
		return TR_ENOTFOUND;
	part *pt = &t->parts[partition];
	size_t lo = pt->head, hi = pt->tail;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (pt->offs[mid] < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= pt->tail || pt->offs[lo] != offset || pt->done[lo])
		return TR_ENOTFOUND;
	pt->done[lo] = 1;
	t->pending--;
	while (pt->head < pt->tail && pt->done[pt->head]) {
		pt->next_commit = pt->offs[pt->head] + 1;
		pt->head++;
	}
	if (pt->head < pt->tail)
		pt->next_commit = pt->offs[pt->head];
	else
		pt->head = pt->tail = 0;
	return TR_OK;
}

bool tr_offsets_advanced(tr_offsets *t, int32_t partition, int64_t *out)
{
	if (partition < 0 || partition >= t->nparts)
		return false;
	part *pt = &t->parts[partition];
	if (pt->next_commit < 0 || pt->next_commit <= pt->reported)
		return false;
	pt->reported = pt->next_commit;
	*out = pt->next_commit;
	return true;
}

void tr_offsets_reset(tr_offsets *t, int32_t partition)
{
	if (partition < 0 || partition >= t->nparts)
		return;
	part *pt = &t->parts[partition];
	for (size_t i = pt->head; i < pt->tail; i++)
		if (!pt->done[i])
			t->pending--;
	pt->head = pt->tail = 0;
	pt->next_commit = -1;
	pt->reported = -1;
}

int32_t tr_offsets_partitions(const tr_offsets *t)
{
	return t->nparts;
}

size_t tr_offsets_pending(const tr_offsets *t)
{
	return t->pending;
}

int64_t tr_offsets_done_above(const tr_offsets *t, int32_t partition, char *out, size_t outlen)
{
	size_t n = 0;
	if (outlen)
		out[0] = '\0';
	if (partition < 0 || partition >= t->nparts)
		return -1;
	const part *pt = &t->parts[partition];
	int64_t base = pt->next_commit;
	for (size_t i = pt->head; i < pt->tail; i++) {
		if (!pt->done[i])
			continue;
		size_t j = i;
		while (j + 1 < pt->tail && pt->done[j + 1] && pt->offs[j + 1] == pt->offs[j] + 1)
			j++;
		char item[48];
		int len = i == j ? snprintf(item, sizeof(item), "%s%lld", n ? "," : "",
					    (long long)(pt->offs[i] - base))
				 : snprintf(item, sizeof(item), "%s%lld-%lld", n ? "," : "",
					    (long long)(pt->offs[i] - base),
					    (long long)(pt->offs[j] - base));
		if (n + (size_t)len + 1 > outlen)
			break;
		memcpy(out + n, item, (size_t)len + 1);
		n += (size_t)len;
		i = j;
	}
	return base;
}

size_t tr_offsets_parse_done(const char *desc, int64_t base, int64_t (*skip)[2], size_t max)
{
	size_t n = 0;
	const char *p = desc;
	while (p && *p && n < max) {
		char *end;
		long long a = strtoll(p, &end, 10), b = a;
		if (end == p || a < 0)
			break;
		if (*end == '-') {
			const char *q = end + 1;
			b = strtoll(q, &end, 10);
			if (end == q || b < a)
				break;
		}
		skip[n][0] = base + a;
		skip[n][1] = base + b;
		n++;
		if (*end != ',')
			break;
		p = end + 1;
	}
	return n;
}
