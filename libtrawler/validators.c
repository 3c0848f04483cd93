/* validators.c - per-site ETag / Last-Modified store in Redis. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "url.h"
#include "validators.h"

#define KEY_MAX 330

/* "tr:val:{host:port}" and the path+query of a canonical URL. */
static int split(const char *url, char *key, size_t keylen, const char **path)
{
	char hk[300];
	if (tr_url_host_key(hk, sizeof(hk), url) != TR_OK)
		return TR_EINVAL;
	const char *p = strstr(url, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	*path = p ? p : "/";
	snprintf(key, keylen, "tr:val:{%s}", hk);
	return TR_OK;
}

static bool usable(const char *v, size_t max)
{
	size_t n = v ? strlen(v) : 0;
	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

int tr_validators_load(tr_redis *r, const char *url, char **etag, char **last_modified)
{
	char key[KEY_MAX];
	const char *path;
	int rc = TR_ENOTFOUND;
	char *e = NULL, *lm = NULL;
	if (split(url, key, sizeof(key), &path) != TR_OK)
		return TR_ENOTFOUND;
	redisReply *rep = tr_redis_cmd(r, "HGET %s %s", key, path);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		rc = TR_EIO;
		goto out;
	}
	if (rep->type != REDIS_REPLY_STRING)
		goto out;
	const char *nl = memchr(rep->str, '\n', rep->len);
	size_t elen = nl ? (size_t)(nl - rep->str) : rep->len;
	if (elen && !(e = strndup(rep->str, elen))) {
		rc = TR_EIO;
		goto out;
	}
	if (nl && nl[1]) {
		time_t t = (time_t)atoll(nl + 1);
		struct tm tmv;
		char buf[64];
		if (t > 0 && gmtime_r(&t, &tmv) &&
		    strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tmv) &&
		    !(lm = strdup(buf))) {
			rc = TR_EIO;
			goto out;
		}
	}
	if (!e && !lm)
		goto out;
	*etag = e;
	*last_modified = lm;
	e = lm = NULL;
	rc = TR_OK;
out:
	free(e);
	free(lm);
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int tr_validators_append_store(tr_redis *r, const char *url, const char *etag,
			       const char *last_modified, long ttl_s, int *queued)
{
	char key[KEY_MAX], val[TR_VALIDATORS_MAX_ETAG + 32], ttl[24];
	const char *path;
	long long epoch = 0;
	if (split(url, key, sizeof(key), &path) != TR_OK)
		return TR_OK;
	if (usable(last_modified, 128))
		epoch = (long long)curl_getdate(last_modified, NULL);
	bool has_etag = usable(etag, TR_VALIDATORS_MAX_ETAG);
	/* stored even without validators ("\n"): the page is then still listed
	 * for trawlerctl seed --revisit */
	int n = snprintf(val, sizeof(val), "%s\n", has_etag ? etag : "");
	if (epoch > 0)
		snprintf(val + n, sizeof(val) - (size_t)n, "%lld", epoch);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_s);
	const char *hset[] = {"HSET", key, path, val};
	const char *exp[] = {"EXPIRE", key, ttl};
	if (tr_redis_append_argv(r, 4, hset, NULL) != TR_OK)
		return TR_EIO;
	(*queued)++;
	if (tr_redis_append_argv(r, 3, exp, NULL) != TR_OK)
		return TR_EIO;
	(*queued)++;
	return TR_OK;
}

int tr_validators_append_forget(tr_redis *r, const char *url, int *queued)
{
	char key[KEY_MAX];
	const char *path;
	if (split(url, key, sizeof(key), &path) != TR_OK)
		return TR_OK;
	const char *hdel[] = {"HDEL", key, path};
	if (tr_redis_append_argv(r, 3, hdel, NULL) != TR_OK)
		return TR_EIO;
	(*queued)++;
	return TR_OK;
}

int tr_validators_flush(tr_redis *r, int queued)
{
	int rc = TR_OK;
	for (int i = 0; i < queued; i++) {
		redisReply *rep = tr_redis_get_reply(r);
		if (!rep) /* connection reset: the rest of the replies are lost */
			return TR_EIO;
		if (rep->type == REDIS_REPLY_ERROR)
			rc = TR_EIO;
		freeReplyObject(rep);
	}
	return rc;
}

long tr_validators_scan(tr_redis *r, const char *host_key, long max,
			void (*cb)(const char *path, void *payload), void *payload)
{
	char key[KEY_MAX], cursor[32] = "0";
	long n = 0;
	snprintf(key, sizeof(key), "tr:val:{%s}", host_key);
	do {
		redisReply *rep = tr_redis_cmd(r, "HSCAN %s %s COUNT 1000", key, cursor);
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING) {
			if (rep)
				freeReplyObject(rep);
			return TR_EIO;
		}
		snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
		const redisReply *kv = rep->element[1];
		for (size_t i = 0; i + 1 < kv->elements && n < max; i += 2) {
			if (kv->element[i]->type != REDIS_REPLY_STRING)
				continue;
			cb(kv->element[i]->str, payload);
			n++;
		}
		freeReplyObject(rep);
	} while (strcmp(cursor, "0") != 0 && n < max);
	return n;
}
