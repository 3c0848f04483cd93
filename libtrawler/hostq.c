/* hostq.c - per-host queues and a ready-time heap for polite scheduling. */
#include <stdint.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>

#include "hostq.h"

typedef struct qnode {
	void *item;
	struct qnode *next;
} qnode;

typedef struct host {
	char *key;
	uint64_t hash;
	struct host *chain; /* hash bucket chain */
	qnode *head, *tail;
	size_t nqueued;
	int conns;
	int64_t next_ms;       /* earliest next start */
	int64_t prev_next_ms;  /* next_ms before the last pop (for refunds) */
	int64_t last_start_ms; /* time of the last pop, -1 before the first */
	int64_t delay_ms;      /* this host's delay */
	ssize_t heap_idx;      /* position in the ready heap, -1 if absent */
} host;

struct tr_hostq {
	host **buckets;
	size_t nbuckets, nhosts;
	host **heap; /* hosts with queued items and a free connection, by next_ms */
	size_t heap_len, heap_cap;
	size_t queued;
	int64_t delay_ms;
	int max_conns;
	int64_t last_gc_ms;
};

static uint64_t hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

tr_hostq *tr_hostq_new(int64_t delay_ms, int max_conns)
{
	tr_hostq *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->nbuckets = 1024;
	q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
	if (!q->buckets) {
		free(q);
		return NULL;
	}
	q->delay_ms = delay_ms;
	q->max_conns = max_conns > 0 ? max_conns : 1;
	return q;
}

static void host_free(host *h, void (*free_item)(void *))
{
	qnode *n = h->head;
	while (n) {
		qnode *next = n->next;
		if (free_item)
			free_item(n->item);
		free(n);
		n = next;
	}
	free(h->key);
	free(h);
}

void tr_hostq_free(tr_hostq *q, void (*free_item)(void *item))
{
	if (!q)
		return;
	for (size_t i = 0; i < q->nbuckets; i++) {
		host *h = q->buckets[i];
		while (h) {
			host *next = h->chain;
			host_free(h, free_item);
			h = next;
		}
	}
	free(q->buckets);
	free(q->heap);
	free(q);
}

/* --- min-heap on next_ms --- */

static void heap_swap(tr_hostq *q, size_t a, size_t b)
{
	host *t = q->heap[a];
	q->heap[a] = q->heap[b];
	q->heap[b] = t;
	q->heap[a]->heap_idx = (ssize_t)a;
	q->heap[b]->heap_idx = (ssize_t)b;
}

static void heap_up(tr_hostq *q, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (q->heap[p]->next_ms <= q->heap[i]->next_ms)
			break;
		heap_swap(q, p, i);
		i = p;
	}
}

static void heap_down(tr_hostq *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->heap_len && q->heap[l]->next_ms < q->heap[m]->next_ms)
			m = l;
		if (r < q->heap_len && q->heap[r]->next_ms < q->heap[m]->next_ms)
			m = r;
		if (m == i)
			break;
		heap_swap(q, m, i);
		i = m;
	}
}

static int heap_push(tr_hostq *q, host *h)
{
	if (q->heap_len == q->heap_cap) {
		size_t cap = q->heap_cap ? q->heap_cap * 2 : 64;
		host **nh = realloc(q->heap, cap * sizeof(*nh));
		if (!nh)
			return TR_ENOMEM;
		q->heap = nh;
		q->heap_cap = cap;
	}
	q->heap[q->heap_len] = h;
	h->heap_idx = (ssize_t)q->heap_len;
	q->heap_len++;
	heap_up(q, q->heap_len - 1);
	return TR_OK;
}

static void heap_remove(tr_hostq *q, host *h)
{
	size_t i = (size_t)h->heap_idx;
	q->heap_len--;
	if (i != q->heap_len) {
		heap_swap(q, i, q->heap_len);
		heap_down(q, i);
		heap_up(q, i);
	}
	h->heap_idx = -1;
}

/* Put h in the heap if it has work and a free connection. */
static void host_schedule(tr_hostq *q, host *h)
{
	bool want = h->head && h->conns < q->max_conns;
	if (want && h->heap_idx < 0)
		heap_push(q, h); /* on ENOMEM the host waits for the next release */
	else if (!want && h->heap_idx >= 0)
		heap_remove(q, h);
}

/* --- host table --- */

static host *host_find(const tr_hostq *q, const char *key, uint64_t hv)
{
	for (host *h = q->buckets[hv % q->nbuckets]; h; h = h->chain)
		if (h->hash == hv && strcmp(h->key, key) == 0)
			return h;
	return NULL;
}

static void table_grow(tr_hostq *q)
{
	size_t nb = q->nbuckets * 2;
	host **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep the longer chains */
	for (size_t i = 0; i < q->nbuckets; i++) {
		host *h = q->buckets[i];
		while (h) {
			host *next = h->chain;
			h->chain = b[h->hash % nb];
			b[h->hash % nb] = h;
			h = next;
		}
	}
	free(q->buckets);
	q->buckets = b;
	q->nbuckets = nb;
}

/* Drop idle hosts whose politeness window has passed (bounded memory). */
static void table_gc(tr_hostq *q, int64_t now_ms)
{
	for (size_t i = 0; i < q->nbuckets; i++) {
		host **pp = &q->buckets[i];
		while (*pp) {
			host *h = *pp;
			if (!h->head && h->conns == 0 && h->next_ms <= now_ms && h->heap_idx < 0) {
				*pp = h->chain;
				host_free(h, NULL);
				q->nhosts--;
			} else {
				pp = &h->chain;
			}
		}
	}
}

static host *host_get(tr_hostq *q, const char *key)
{
	uint64_t hv = hash_key(key);
	host *h = host_find(q, key, hv);
	if (h)
		return h;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->key = strdup(key))) {
		free(h);
		return NULL;
	}
	h->hash = hv;
	h->heap_idx = -1;
	h->last_start_ms = -1;
	h->delay_ms = q->delay_ms;
	if (q->nhosts + 1 > q->nbuckets * 2)
		table_grow(q);
	h->chain = q->buckets[hv % q->nbuckets];
	q->buckets[hv % q->nbuckets] = h;
	q->nhosts++;
	return h;
}

int tr_hostq_push(tr_hostq *q, const char *key, void *item)
{
	host *h = host_get(q, key);
	qnode *n = malloc(sizeof(*n));
	if (!h || !n) {
		free(n);
		return TR_ENOMEM;
	}
	n->item = item;
	n->next = NULL;
	if (h->tail)
		h->tail->next = n;
	else
		h->head = n;
	h->tail = n;
	h->nqueued++;
	q->queued++;
	host_schedule(q, h);
	return TR_OK;
}

int tr_hostq_push_front(tr_hostq *q, const char *key, void *item)
{
	host *h = host_get(q, key);
	qnode *n = malloc(sizeof(*n));
	if (!h || !n) {
		free(n);
		return TR_ENOMEM;
	}
	n->item = item;
	n->next = h->head;
	h->head = n;
	if (!h->tail)
		h->tail = n;
	h->nqueued++;
	q->queued++;
	host_schedule(q, h);
	return TR_OK;
}

void *tr_hostq_pop_ready(tr_hostq *q, int64_t now_ms, const char **key_out)
{
	if (q->heap_len == 0 || q->heap[0]->next_ms > now_ms)
		return NULL;
	host *h = q->heap[0];
	qnode *n = h->head;
	void *item = n->item;
	h->head = n->next;
	if (!h->head)
		h->tail = NULL;
	free(n);
	h->nqueued--;
	q->queued--;
	h->conns++;
	h->prev_next_ms = h->next_ms;
	h->last_start_ms = now_ms;
	h->next_ms = now_ms + h->delay_ms;
	heap_down(q, 0);
	host_schedule(q, h);
	*key_out = h->key;
	return item;
}

void tr_hostq_release(tr_hostq *q, const char *key, int64_t now_ms)
{
	host *h = host_find(q, key, hash_key(key));
	if (!h)
		return;
	if (h->conns > 0)
		h->conns--;
	host_schedule(q, h);
	if (now_ms - q->last_gc_ms > 10000 && q->nhosts > 1024) {
		q->last_gc_ms = now_ms;
		table_gc(q, now_ms);
	}
}

void tr_hostq_charge_send(tr_hostq *q, const char *key, int64_t now_ms)
{
	host *h = host_find(q, key, hash_key(key));
	if (h)
		tr_hostq_defer(q, key, now_ms + h->delay_ms);
}

void tr_hostq_refund(tr_hostq *q, const char *key)
{
	host *h = host_find(q, key, hash_key(key));
	if (!h)
		return;
	if (h->conns > 0)
		h->conns--;
	if (h->prev_next_ms < h->next_ms) {
		h->next_ms = h->prev_next_ms;
		if (h->heap_idx >= 0)
			heap_up(q, (size_t)h->heap_idx);
	}
	host_schedule(q, h);
}

void tr_hostq_defer(tr_hostq *q, const char *key, int64_t not_before_ms)
{
	host *h = host_get(q, key);
	if (!h || h->next_ms >= not_before_ms)
		return;
	h->next_ms = not_before_ms;
	if (h->heap_idx >= 0) {
		heap_down(q, (size_t)h->heap_idx);
		heap_up(q, (size_t)h->heap_idx);
	}
}

void tr_hostq_set_delay(tr_hostq *q, const char *key, int64_t delay_ms)
{
	host *h = host_get(q, key);
	if (!h || delay_ms <= h->delay_ms)
		return;
	h->delay_ms = delay_ms;
	/* a delay learned after a start (robots.txt) applies to the next one */
	if (h->last_start_ms >= 0 && h->next_ms < h->last_start_ms + delay_ms)
		tr_hostq_defer(q, key, h->last_start_ms + delay_ms);
}

int64_t tr_hostq_delay(const tr_hostq *q, const char *key)
{
	const host *h = host_find(q, key, hash_key(key));
	return h ? h->delay_ms : q->delay_ms;
}

int64_t tr_hostq_next_start_ms(const tr_hostq *q, const char *key)
{
	const host *h = host_find(q, key, hash_key(key));
	return h ? h->next_ms : 0;
}

int64_t tr_hostq_next_ready_ms(const tr_hostq *q)
{
	return q->heap_len ? q->heap[0]->next_ms : INT64_MAX;
}

bool tr_hostq_has(const tr_hostq *q, const char *key)
{
	return host_find(q, key, hash_key(key)) != NULL;
}

void tr_hostq_foreach_pending(const tr_hostq *q, int64_t now_ms,
			      void (*fn)(const char *key, int64_t next_ms, void *arg), void *arg)
{
	for (size_t i = 0; i < q->nbuckets; i++)
		for (host *h = q->buckets[i]; h; h = h->chain)
			if (h->next_ms > now_ms)
				fn(h->key, h->next_ms, arg);
}

size_t tr_hostq_deepest(const tr_hostq *q, size_t k, const char *keys[], size_t depths[])
{
	size_t n = 0;
	for (size_t b = 0; b < q->nbuckets; b++) {
		for (const host *h = q->buckets[b]; h; h = h->chain) {
			if (h->nqueued == 0 || (n == k && (k == 0 || depths[k - 1] >= h->nqueued)))
				continue;
			size_t i = n < k ? n++ : k - 1; /* the slot to fill, then bubble up */
			while (i > 0 && depths[i - 1] < h->nqueued) {
				keys[i] = keys[i - 1];
				depths[i] = depths[i - 1];
				i--;
			}
			keys[i] = h->key;
			depths[i] = h->nqueued;
		}
	}
	return n;
}

size_t tr_hostq_queued(const tr_hostq *q)
{
	return q->queued;
}

size_t tr_hostq_hosts(const tr_hostq *q)
{
	return q->nhosts;
}

void tr_hostq_drop_if(tr_hostq *q, bool (*pred)(void *item, void *arg),
		      void (*drop)(void *item, void *arg), void *arg)
{
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (host *h = q->buckets[i]; h; h = h->chain) {
			qnode **pp = &h->head;
			h->tail = NULL;
			while (*pp) {
				qnode *n = *pp;
				if (pred(n->item, arg)) {
					*pp = n->next;
					drop(n->item, arg);
					free(n);
					h->nqueued--;
					q->queued--;
				} else {
					h->tail = n;
					pp = &n->next;
				}
			}
			host_schedule(q, h);
		}
	}
}
