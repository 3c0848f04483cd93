/* url.h - URL resolution, canonicalization, host keys and fingerprints (libcurl URL API). */
#ifndef TR_URL_H
#define TR_URL_H

#include "common.h"

/* Longest URL (bytes, excluding the NUL) accepted as input or produced as
 * output; longer ones fail with TR_ETOOBIG. */
#define TR_URL_MAX_LEN 8192

/*
 * The canonical form of a URL, as produced by every function below that
 * returns a URL. Two URLs that canonicalize to the same string are the same
 * page for the crawler (dedup, Redis keys, fingerprints). Parsing, relative
 * resolution and dot-segment removal are libcurl's; the rules are:
 *
 *  Input clean-up (what browsers do with an href):
 *   1. Leading and trailing C0 controls and spaces are trimmed; TAB, CR and
 *      LF anywhere are removed. An input that is then empty is rejected.
 *   2. Everything from the first '#' on (the fragment) is dropped. A
 *      reference that was only a fragment ("#top") resolves to the base.
 *   3. Before the first '?', '\' is read as '/' (browsers do this for
 *      http/https).
 *   4. Other C0 controls, space and DEL are percent-encoded; non-ASCII bytes
 *      in the path and query are percent-encoded by libcurl.
 *
 *  Output:
 *   5. Scheme is "http" or "https" (lowercase); any other scheme, and
 *      anything libcurl rejects, fails with TR_EINVAL.
 *   6. Host is lowercased. It must be ASCII letters, digits, '-', '.', '_',
 *      '~' (after libcurl decoded any %XX in it), or a bracketed IPv6
 *      literal; IPv6 zone ids and non-ASCII (IDN) host names are rejected
 *      (use the xn-- form). libcurl normalizes numeric IPv4 forms
 *      ("0x7f.1" -> "127.0.0.1").
 *   7. The port is dropped when it is the scheme's default (80 for http, 443
 *      for https), written in decimal without leading zeros otherwise; port 0
 *      is rejected.
 *   8. User info ("user:password@") is kept, percent-normalized like the path.
 *   9. Path: dot segments removed (RFC 3986 5.2.4), empty path becomes "/".
 *  10. Path, query and user info are percent-normalized: %XX hex digits are
 *      uppercase; %XX that encode an unreserved character (ALPHA DIGIT - . _
 *      ~) are decoded; a '%' not followed by two hex digits becomes "%25";
 *      the characters " < > \ ^ ` { | } [ ] are percent-encoded. Nothing else
 *      is decoded or encoded. Dot segments revealed by decoding "%2E" are
 *      removed too.
 *  11. The query is kept as is otherwise (no reordering, '+' stays '+'); an
 *      empty query ("?" alone) is dropped.
 *  12. The fragment is dropped.
 *
 * Canonicalization is idempotent: canonicalizing a canonical URL returns
 * the same string.
 *
 * All functions are thread-safe, do no I/O and keep no global state.
 */

/* Resolve `ref` (typically an href) against the absolute http(s) URL `base`
 * and canonicalize the result (rules above).
 * Returns 0 and sets *out to a malloc'd NUL-terminated string the caller
 * frees with free(); TR_EINVAL when base or ref is NULL, empty,
 * whitespace-only, unparseable or resolves to a non-http(s) URL (mailto:,
 * javascript:, data:, ftp:, ...); TR_ETOOBIG when base, ref or the result
 * is longer than TR_URL_MAX_LEN; TR_ENOMEM. On failure *out is untouched. */
int tr_url_resolve(char **out, const char *base, const char *ref);

/* Canonicalize the absolute http(s) URL `url` (rules above). Returns and
 * owns like tr_url_resolve(); a relative URL fails with TR_EINVAL. */
int tr_url_canonicalize(char **out, const char *url);

/* Write "host:port" of the absolute http(s) URL `url` into out (outlen
 * bytes including the NUL): the canonical host and the effective port, the
 * default filled in: "example.com:443", "127.0.0.2:8080", "[::1]:80".
 * This is the Kafka message key and the politeness key.
 * Returns 0; TR_EINVAL for a URL tr_url_canonicalize() rejects; TR_ETOOBIG
 * when outlen is too small or the URL too long; TR_ENOMEM. On failure out
 * is untouched. */
int tr_url_host_key(char *out, size_t outlen, const char *url);

/* The same key read straight from a URL that tr_url_canonicalize() produced
 * (no parsing, for the per-link hot path). Returns 0, TR_EINVAL when
 * `canonical` is not in canonical form, or TR_ETOOBIG; out is untouched on
 * failure. For any URL u: tr_url_host_key(u) == this(canonicalize(u)). */
int tr_url_host_key_canonical(char *out, size_t outlen, const char *canonical);

/* 64-bit fingerprint of the first len bytes of canonical_url: FNV-1a 64
 * followed by the splitmix64 finalizer. Stable across platforms, builds and
 * runs (it is stored in Redis). Never fails; canonical_url may be NULL when
 * len is 0. The caller canonicalizes first. */
uint64_t tr_url_fingerprint(const char *canonical_url, size_t len);

/* True when `url` is an absolute http or https URL that tr_url_canonicalize()
 * accepts; false otherwise (including NULL). */
bool tr_url_is_http(const char *url);

/* Copy `url` (any text, parsed or not) into out with the password of its
 * user-info hidden: "redis://user:secret@h:1/0" -> "redis://user:***@h:1/0".
 * For messages and logs, which never carry secrets. Truncates to outlen
 * (outlen > 0); never fails. */
void tr_url_redact(char *out, size_t outlen, const char *url);

/*
 * A parsed base URL, for resolving many references against the same base
 * (one page's links) without parsing the base each time.
 */
typedef struct tr_url_base tr_url_base;

/* Parse the absolute http(s) URL `base`. Returns 0 and sets *out to a new
 * handle the caller frees with tr_url_base_free(); TR_EINVAL, TR_ETOOBIG or
 * TR_ENOMEM as tr_url_canonicalize(). On failure *out is untouched. */
int tr_url_base_new(tr_url_base **out, const char *base);

/* The canonical form of the base. Owned by the handle: valid until
 * tr_url_base_free(). */
const char *tr_url_base_url(const tr_url_base *base);

/* tr_url_resolve() against a parsed base; same returns and ownership. The
 * handle is only read: several threads may resolve against one handle. */
int tr_url_resolve_base(char **out, const tr_url_base *base, const char *ref);

/* Free a handle from tr_url_base_new(). NULL is a no-op. */
void tr_url_base_free(tr_url_base *base);

#endif
