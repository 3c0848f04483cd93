/* htmlinput.h - bytes from the network made ready for libxml2's HTML
 * parser, the same way for every module that parses pages (links, XPath):
 * the charset is chosen and the document converted to UTF-8 here, so that
 * libxml2 never decodes (libxml2 2.9 stops at the first invalid sequence of
 * a multibyte charset and loses the rest of the page).
 * Thread-safe; no I/O (a cap hit is counted in the metrics registry). */
#ifndef TR_HTMLINPUT_H
#define TR_HTMLINPUT_H

#include "common.h"

/* Bytes of the UTF-8 document handed to libxml2; a conversion that would
 * make more is cut there, at a character boundary, and counted in
 * trawler_limit_hits_total{limit="html_utf8"}. A Shift_JIS or single-byte
 * page at the 30,000,000-byte --max-body ceiling can need up to 3 times
 * its size in UTF-8. */
#define TR_HTML_UTF8_MAX (48u * 1024 * 1024)

/* Bytes at the start of a document searched for <meta charset> (the
 * HTML standard's prescan reads 1024; pages often put it later). */
#define TR_HTML_SNIFF_MAX 4096

/* The charset= parameter of a Content-Type value, copied into out (at most
 * outlen bytes with the NUL), or NULL when there is none. */
const char *tr_html_charset_of(const char *content_type, char *out, size_t outlen);

/* Whether p[0..len) is entirely well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
bool tr_html_is_utf8(const unsigned char *p, size_t len);

/* The charset a document is read in, as an iconv name ("UTF-8",
 * "WINDOWS-1252", "CP932", ...), copied into out (outlen >= 32): a byte
 * order mark; else the declared charset (Content-Type, may be NULL) when
 * iconv knows it; else UTF-8 when the bytes are valid UTF-8; else the
 * <meta> charset in the first TR_HTML_SNIFF_MAX bytes when iconv knows it;
 * else windows-1252 (what browsers read undeclared and ISO-8859-1 pages
 * as). Labels are matched the WHATWG way for the common aliases
 * (ISO-8859-1 and US-ASCII are windows-1252, Shift_JIS is CP932). *bom is
 * the length of the byte order mark to skip (0 when none). Returns out. */
const char *tr_html_sniff(char *out, size_t outlen, size_t *bom, const unsigned char *p, size_t len,
			  const char *declared);

/* Make html[0..*len) ready for htmlCtxtReadMemory with encoding "UTF-8"
 * and HTML_PARSE_IGNORE_ENC (so that a <meta> cannot switch it back): the charset is chosen by
 * tr_html_sniff() from the bytes and `charset` (declared or NULL), and the document converted to
 * UTF-8 where every invalid or unmappable sequence becomes U+FFFD and every NUL a space
 * (libxml2 2.9 stops at a NUL, browsers read U+FFFD), cut at TR_HTML_UTF8_MAX. A UTF-8 document
 * that is already valid and has no NUL is not copied. When a copy is made, *html and *len describe
 * it and *owned holds it (free it after parsing); otherwise *owned is NULL. Returns 0, or TR_ENOMEM
 * with *html and *len unchanged. */
int tr_html_prepare(const char **html, size_t *len, const char *charset, char **owned);

#endif
