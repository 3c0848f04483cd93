/* scope.h - which links a crawl follows, and the query rules that make
 * two URLs the same page: scope by seed host or registrable domain
 * (libpsl), allow/deny regular expressions, a URL length cap, tracking
 * parameters stripped, optional query sorting. Thread-safe after
 * creation (read-only); no I/O. */
#ifndef TR_SCOPE_H
#define TR_SCOPE_H

#include "crawlstate.h"

typedef struct tr_scope_opts {
	const char *mode;	 /* "host" (host:port of a seed) or "domain" (registrable domain) */
	const char *allow_regex; /* POSIX ERE a URL must match ("" = any) */
	const char *deny_regex;	 /* POSIX ERE a URL must not match ("" = none) */
	long max_url_length;	 /* longer URLs are not followed (0 = no cap) */
	const char *strip_params; /* query parameters removed: names, "prefix*" */
	bool sort_query;	  /* order query parameters by name */
} tr_scope_opts;

typedef struct tr_scope tr_scope;

/* Compile the rules. Returns 0 and *out, or TR_EINVAL with a message
 * naming the bad option in err, or TR_ENOMEM. */
int tr_scope_new(tr_scope **out, const tr_scope_opts *o, char *err, size_t errlen);
void tr_scope_free(tr_scope *s);

/* Apply the query rules to a canonical URL: *out is a malloc'd copy (the
 * caller frees it), written only on success. Returns 0 or TR_ENOMEM. */
int tr_scope_normalize(const tr_scope *s, char **out, const char *url);

/* Why a URL is not followed (TR_SCOPE_OK when it is). */
#define TR_SCOPE_OK 0
#define TR_SCOPE_OFFSITE 1  /* not a seed host / registrable domain */
#define TR_SCOPE_DENIED 2   /* allow/deny regular expressions */
#define TR_SCOPE_TOO_LONG 3 /* over max_url_length */

/* Decide for normalized `url` with host key `host_key` in crawl `info`. */
int tr_scope_check(const tr_scope *s, const tr_crawl_info *info, const char *url,
		   const char *host_key);

#endif
