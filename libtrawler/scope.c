/* scope.c - link scope and query normalization rules of a crawl. */
#include <libpsl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metrics.h"
#include "scope.h"

#define MAX_QUERY_PARAMS 256

struct tr_scope {
	bool domain_mode;
	bool has_allow, has_deny;
	regex_t allow, deny;
	long max_url_length;
	char *strip; /* comma list */
	bool sort_query;
	const psl_ctx_t *psl;
};

int tr_scope_new(tr_scope **out, const tr_scope_opts *o, char *err, size_t errlen)
{
	int rc = TR_OK;
	tr_scope *s = calloc(1, sizeof(*s));
	if (!s)
		return TR_ENOMEM;
	if (!o->mode || !*o->mode || strcmp(o->mode, "host") == 0) {
		s->domain_mode = false;
	} else if (strcmp(o->mode, "domain") == 0) {
		s->domain_mode = true;
		s->psl = psl_builtin();
	} else {
		snprintf(err, errlen, "option scope: invalid value '%s' (accepted: host, domain)",
			 o->mode);
		rc = TR_EINVAL;
		goto out;
	}
	if (o->allow_regex && *o->allow_regex) {
		if (regcomp(&s->allow, o->allow_regex, REG_EXTENDED | REG_NOSUB) != 0) {
			snprintf(err, errlen, "option allow-regex: invalid regular expression '%s'",
				 o->allow_regex);
			rc = TR_EINVAL;
			goto out;
		}
		s->has_allow = true;
	}
	if (o->deny_regex && *o->deny_regex) {
		if (regcomp(&s->deny, o->deny_regex, REG_EXTENDED | REG_NOSUB) != 0) {
			snprintf(err, errlen, "option deny-regex: invalid regular expression '%s'",
				 o->deny_regex);
			rc = TR_EINVAL;
			goto out;
		}
		s->has_deny = true;
	}
	s->max_url_length = o->max_url_length;
	s->sort_query = o->sort_query;
	if (!(s->strip = strdup(o->strip_params ? o->strip_params : ""))) {
		rc = TR_ENOMEM;
		goto out;
	}
	*out = s;
	s = NULL;
out:
	tr_scope_free(s);
	return rc;
}

void tr_scope_free(tr_scope *s)
{
	if (!s)
		return;
	if (s->has_allow)
		regfree(&s->allow);
	if (s->has_deny)
		regfree(&s->deny);
	free(s->strip);
	free(s);
}

/* Does query parameter `name` (n bytes) match an entry of the strip list? */
static bool strip_match(const char *list, const char *name, size_t n)
{
	for (const char *e = list; *e;) {
		size_t len = strcspn(e, ",");
		if (len && e[len - 1] == '*') {
			if (n >= len - 1 && strncasecmp(e, name, len - 1) == 0)
				return true;
		} else if (len == n && strncasecmp(e, name, n) == 0) {
			return true;
		}
		e += len + (e[len] == ',');
	}
	return false;
}

typedef struct param {
	const char *p;
	size_t len, name_len;
} param;

static int cmp_param(const void *a, const void *b)
{
	const param *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->p, y->p, n);
	if (c == 0)
		c = (x->name_len > y->name_len) - (x->name_len < y->name_len);
	if (c == 0) /* same name: keep a stable order by value */
		c = x->p < y->p ? -1 : x->p > y->p;
	return c;
}

int tr_scope_normalize(const tr_scope *s, char **out, const char *url)
{
	const char *q = strchr(url, '?');
	param ps[MAX_QUERY_PARAMS];
	size_t n = 0;
	char *res;
	if (!q || (!s->strip[0] && !s->sort_query)) {
		res = strdup(url);
		goto done;
	}
	for (const char *p = q + 1; *p;) {
		size_t len = strcspn(p, "&");
		if (n == MAX_QUERY_PARAMS) { /* too many to rewrite safely: keep as is */
			tr_metrics_limit_hit("query_params");
			res = strdup(url);
			goto done;
		}
		size_t nl = strcspn(p, "=&");
		if (len && !strip_match(s->strip, p, nl)) {
			ps[n].p = p;
			ps[n].len = len;
			ps[n].name_len = nl;
			n++;
		}
		p += len + (p[len] == '&');
	}
	if (s->sort_query)
		qsort(ps, n, sizeof(*ps), cmp_param);
	res = malloc(strlen(url) + 2);
	if (res) {
		size_t pos = (size_t)(q - url);
		memcpy(res, url, pos);
		for (size_t i = 0; i < n; i++) {
			res[pos++] = i ? '&' : '?';
			memcpy(res + pos, ps[i].p, ps[i].len);
			pos += ps[i].len;
		}
		res[pos] = '\0';
	}
done:
	if (!res)
		return TR_ENOMEM;
	*out = res;
	return TR_OK;
}

/* The host part of a host key "host:port" (IPv6 in brackets kept). */
static void host_of_key(char *out, size_t outlen, const char *key)
{
	const char *colon = strrchr(key, ':');
	size_t n = colon ? (size_t)(colon - key) : strlen(key);
	snprintf(out, outlen, "%.*s", (int)n, key);
}

static bool same_domain(const tr_scope *s, const char *key_a, const char *key_b)
{
	char a[300], b[300];
	host_of_key(a, sizeof(a), key_a);
	host_of_key(b, sizeof(b), key_b);
	const char *ra = psl_registrable_domain(s->psl, a);
	const char *rb = psl_registrable_domain(s->psl, b);
	/* IP literals and public suffixes have no registrable domain: exact host */
	if (!ra || !rb)
		return strcasecmp(a, b) == 0;
	return strcasecmp(ra, rb) == 0;
}

int tr_scope_check(const tr_scope *s, const tr_crawl_info *info, const char *url,
		   const char *host_key)
{
	bool in = false;
	if (s->max_url_length > 0 && (long)strlen(url) > s->max_url_length) {
		tr_metrics_limit_hit("followed_url_length");
		return TR_SCOPE_TOO_LONG;
	}
	for (int i = 0; i < info->nscope && !in; i++)
		in = s->domain_mode ? same_domain(s, info->scope[i], host_key)
				    : strcmp(info->scope[i], host_key) == 0;
	if (!in)
		return TR_SCOPE_OFFSITE;
	if (s->has_allow && regexec(&s->allow, url, 0, NULL, 0) != 0)
		return TR_SCOPE_DENIED;
	if (s->has_deny && regexec(&s->deny, url, 0, NULL, 0) == 0)
		return TR_SCOPE_DENIED;
	return TR_SCOPE_OK;
}
