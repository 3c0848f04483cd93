/* robots.h - robots.txt parsing and matching (RFC 9309), plus Crawl-delay and Sitemap. */
#ifndef TR_ROBOTS_H
#define TR_ROBOTS_H

#include "common.h"

#define TR_ROBOTS_MAX_BYTES (500 * 1024) /* bytes of a body read (RFC 9309 2.5) */
#define TR_ROBOTS_MAX_RULES 10000	 /* allow/disallow rules kept; later ones ignored */
#define TR_ROBOTS_MAX_PATTERN 2048	 /* bytes of a rule as written; longer rules ignored */
#define TR_ROBOTS_MAX_SITEMAPS 100	 /* sitemap URLs kept; later ones ignored */
#define TR_ROBOTS_MAX_SITEMAP_LEN 8192	 /* bytes of a sitemap URL; longer ones ignored */
#define TR_ROBOTS_MAX_DELAY_MS (24 * 3600 * 1000) /* longer crawl-delays are cut to this */

/*
 * The rules of one robots.txt for one crawler. Immutable once made: every
 * query below only reads it, so several threads may query one handle
 * concurrently. Nothing here does I/O or keeps global state.
 *
 * Parsing (RFC 9309 2.1-2.2; anything else is ignored, line by line):
 *  - Only the first TR_ROBOTS_MAX_BYTES bytes are read; when the body is
 *    longer, the line cut by that limit is dropped too (a cut "Allow:
 *    /public-area" must not become "Allow: /p"). A UTF-8 BOM at the start
 *    is skipped. Lines end with LF, CR or CRLF; '#' starts a comment; a line
 *    is "key : value" with optional spaces and tabs around key and value.
 *  - Keys are case-insensitive: user-agent, allow, disallow, crawl-delay,
 *    sitemap, and the misspellings Google accepts (useragent, user agent,
 *    dissallow, dissalow, disalow, diasllow, disallaw, crawldelay,
 *    crawl delay, site-map). Unknown keys and lines without ':' are skipped
 *    and do not end a group.
 *  - Groups: a run of consecutive user-agent lines starts a group; the
 *    allow, disallow and crawl-delay lines after it belong to it until the
 *    next user-agent line that follows one of them. Rules before the first
 *    user-agent line belong to no group and are ignored.
 *  - A user-agent value names a product token: its leading bytes up to the
 *    first '/', space or tab ("trawler/1.0 (+http://x)" names "trawler"),
 *    compared case-insensitively with the crawler's token; "*" names every
 *    crawler. The rules used are those of all groups naming the crawler's
 *    token, merged; when no group names it, those of all "*" groups, merged;
 *    when there are none either, everything is allowed.
 *  - An empty allow or disallow value is no rule (an empty Disallow allows
 *    everything). A pattern should start with '/' or '*'; one that does not
 *    can never match a path (RFC 9309 2.2.2) and is kept but inert.
 *  - Sitemap lines count wherever they are (in any group or none).
 *
 * Matching (RFC 9309 2.2.2-2.2.3):
 *  - Patterns and paths are compared after the same percent-normalization as
 *    the canonical URLs of url.h (rule 10): %XX of an unreserved character
 *    (ALPHA DIGIT - . _ ~) is decoded, other %XX get uppercase hex, a '%'
 *    not followed by two hex digits becomes %25, and controls, space, DEL,
 *    non-ASCII bytes (UTF-8 patterns) and " < > \ ^ ` { | } [ ] are
 *    percent-encoded; so are '$' and a path's '*' (see below). So "/a%7eb"
 *    matches "/a~b" and "/caf\xc3\xa9" matches "/caf%C3%A9".
 *  - A pattern matches a path when it matches a prefix of the path; '*'
 *    matches any sequence of bytes; a '$' ending the pattern anchors it at
 *    the end of the path, any other '$' is literal. A literal '*' is written
 *    %2A and matches '*' or %2A in a path; a literal final '$' is written
 *    %24 and matches '$' or %24.
 *  - Of the rules that match, the one with the longest pattern (in bytes as
 *    written in the file) decides; on a tie between allow and disallow,
 *    allow wins. No matching rule: allowed. "/robots.txt" is always allowed.
 *  - Cost: at most O(rules x (path + pattern)) per query, never exponential
 *    (patterns are split at '*' and their pieces found left to right with a
 *    linear-time search).
 */
typedef struct tr_robots tr_robots;

/* Parse `body` (len bytes, any bytes; NULL only with len 0) and keep what
 * applies to the crawler named `product_token` (e.g. "trawler"; only its
 * leading token up to '/', space or tab is used; NULL, "" or "*" mean no
 * product token: only "*" groups apply). Malformed input is never an
 * error; see the rules above.
 * Returns 0 and sets *out to a new handle the caller frees with
 * tr_robots_free(); TR_EINVAL when out is NULL, or body is NULL with len > 0;
 * TR_ENOMEM. On failure *out is untouched and nothing is left allocated. */
int tr_robots_parse(tr_robots **out, const char *body, size_t len, const char *product_token);

/* A handle that allows every path (e.g. robots.txt answered 4xx), or
 * disallows every path except "/robots.txt" (e.g. 5xx or unreachable). No
 * crawl-delay, no sitemaps. Returns NULL when out of memory; free with
 * tr_robots_free(). */
tr_robots *tr_robots_new_allow_all(void);
tr_robots *tr_robots_new_disallow_all(void);

/* Whether the crawler may fetch `path`: the path of a URL, with its
 * "?query" if any, starting with '/' (a "#fragment" is ignored; NULL, ""
 * and a bare fragment are read as "/"). Returns true when allowed; false
 * when disallowed, when r is NULL, or when memory for normalizing a long
 * path ran out (failing closed). */
bool tr_robots_allowed(const tr_robots *r, const char *path);

/* The Crawl-delay of the groups used, in milliseconds: the first valid
 * value among their crawl-delay lines (a non-negative decimal number of
 * seconds such as "10" or "0.5"; fractions below 1 ms are dropped; values
 * above TR_ROBOTS_MAX_DELAY_MS are cut to it). Returns -1 when there is
 * none, when every one was invalid ("-1", "5s", "abc", ""), or when r is
 * NULL. Crawl-delay is not in RFC 9309 but widely used. */
int64_t tr_robots_crawl_delay_ms(const tr_robots *r);

/* The Sitemap URLs of the file, in file order, as written (spaces around
 * them trimmed), keeping only http:// and https:// ones (scheme
 * case-insensitive) without control bytes, no longer than
 * TR_ROBOTS_MAX_SITEMAP_LEN, each once, at most TR_ROBOTS_MAX_SITEMAPS.
 * Returns their number and, when out is not NULL, sets *out to the array
 * (NULL when there are none). The array and strings are owned by r and
 * valid until tr_robots_free(r). r NULL: returns 0. */
size_t tr_robots_sitemaps(const tr_robots *r, const char *const **out);

/* Free a handle. NULL is a no-op. */
void tr_robots_free(tr_robots *r);

#endif
