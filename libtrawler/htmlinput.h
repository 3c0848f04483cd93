/* htmlinput.h - bytes from the network made ready for libxml2's HTML
 * parser, the same way for every module that parses pages (links, XPath):
 * which charset to declare, and NUL bytes that would end the parse.
 * Pure functions, thread-safe. */
#ifndef TR_HTMLINPUT_H
#define TR_HTMLINPUT_H

#include "common.h"

/* The charset= parameter of a Content-Type value, copied into out (at most
 * outlen bytes with the NUL), or NULL when there is none. */
const char *tr_html_charset_of(const char *content_type, char *out, size_t outlen);

/* Whether p[0..len) is entirely well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
bool tr_html_is_utf8(const unsigned char *p, size_t len);

/* Prepare a document for htmlCtxtReadMemory: *charset (in: declared or
 * NULL) becomes "UTF-8" when undeclared and the bytes are valid UTF-8
 * (libxml2 2.9 would read them as ISO-8859-1); NUL bytes become spaces
 * (libxml2 2.9 stops at a NUL, browsers read U+FFFD) except in UTF-16/32
 * documents. When a copy is needed *html points to it and *owned holds it
 * (free it after parsing; NULL otherwise). Returns 0 or TR_ENOMEM (nothing
 * changed). */
int tr_html_prepare(const char **html, size_t len, const char **charset, char **owned);

#endif
