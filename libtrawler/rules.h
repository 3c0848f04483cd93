/* rules.h - the extraction rules file (docs/extract.md): field names mapped
 * to XPath or JSON-path expressions, grouped in sections that apply to the
 * page URLs matching a regular expression. Used by the "xpath" and "json"
 * handlers.
 *
 *   # comment
 *   [page ^https?://shop\.example/product/]
 *   title  = xpath first  //h1
 *   images = xpath all    //img/@src
 *   name   = json  first  product.name
 *   next   = json  follow links.next
 *
 * A parsed rule set is immutable: once tr_rules_parse() returns, every
 * function below may be called from any thread on it. */
#ifndef TR_RULES_H
#define TR_RULES_H

#include <regex.h>

#include "common.h"

#define TR_RULES_MAX_BYTES (1024 * 1024) /* a rules file larger than this is rejected */
#define TR_RULES_MAX_RULES 1000		 /* rules in one file */
#define TR_RULES_MAX_SECTIONS 1000	 /* [page ...] headers in one file */
#define TR_RULES_MAX_VALUES 1000	 /* values (or links) one rule takes from one page */
#define TR_RULES_MAX_NAME 100		 /* bytes in a field name */
#define TR_RULES_MAX_EXPR 4096		 /* bytes in an expression or a section pattern */
#define TR_RULES_MAX_STEPS 64		 /* steps in one JSON path */
#define TR_RULES_MAX_JSON_DEPTH 64	 /* JSON nesting the json handler accepts */

typedef enum {
	TR_RULE_XPATH = 1, /* expression is XPath 1.0, applied to HTML pages */
	TR_RULE_JSON = 2,  /* expression is a JSON path, applied to JSON responses */
} tr_rule_kind;

typedef enum {
	TR_RULE_FIRST = 1,  /* the first value; skipped when the field already has one */
	TR_RULE_ALL = 2,    /* every value, the field rendered as a list */
	TR_RULE_FOLLOW = 3, /* every value is a URL to crawl (no field is written) */
} tr_rule_mode;

typedef enum {
	TR_JSTEP_KEY = 1,   /* object member `key` */
	TR_JSTEP_INDEX = 2, /* array element `index` */
	TR_JSTEP_ALL = 3,   /* every array element, or every object member value */
} tr_jstep_type;

/* One step of a parsed JSON path. */
typedef struct tr_jstep {
	tr_jstep_type type;
	char *key;    /* TR_JSTEP_KEY: the member name (may be ""), owned */
	size_t index; /* TR_JSTEP_INDEX */
} tr_jstep;

typedef struct tr_rule {
	char *field; /* field name, owned */
	tr_rule_kind kind;
	tr_rule_mode mode;
	char *expr;	 /* the expression as written (trimmed), owned */
	unsigned line;	 /* 1-based line in the rules file, for messages */
	size_t section;	 /* index into tr_rules.sections */
	tr_jstep *steps; /* TR_RULE_JSON: the parsed path (empty: the whole document) */
	size_t nsteps;
} tr_rule;

typedef struct tr_rules_section {
	char *pattern; /* as written; NULL for "all pages" (no header, or [page *]) */
	regex_t re;    /* compiled pattern when pattern != NULL */
	unsigned line; /* line of the header, 0 for the implicit first section */
} tr_rules_section;

typedef struct tr_rules {
	tr_rule *rules; /* in file order */
	size_t nrules;
	tr_rules_section *sections; /* sections[0] is the implicit "all pages" section */
	size_t nsections;
} tr_rules;

/*
 * Parse `len` bytes of rules text (need not be NUL-terminated). Returns 0
 * and *out (free with tr_rules_free()); TR_EINVAL for a syntax error, an
 * invalid regular expression or JSON path, or a NUL byte; TR_ETOOBIG past
 * TR_RULES_MAX_BYTES, TR_RULES_MAX_RULES, TR_RULES_MAX_SECTIONS or a
 * length limit; TR_ENOMEM. On failure *out is untouched and a message
 * starting with "line N: " (when a line is at fault) is written to `err`.
 * XPath expressions are not compiled here (the xpath handler does it).
 * Pure computation, thread-safe.
 */
int tr_rules_parse(tr_rules **out, const char *text, size_t len, char *err, size_t errlen);

/* Read and parse the rules file `path`. Same contract as tr_rules_parse(),
 * plus TR_EIO when the file cannot be read; messages start with "PATH: ".
 * Does I/O. */
int tr_rules_load(tr_rules **out, const char *path, char *err, size_t errlen);

/* Number of rules of `kind`. */
size_t tr_rules_count(const tr_rules *r, tr_rule_kind kind);

/* Whether section `section` applies to `url`: the implicit section and
 * [page *] apply to every URL; otherwise the pattern must match somewhere
 * in the URL (regexec: anchor it with ^ and $ to match the whole URL). */
bool tr_rules_section_matches(const tr_rules *r, size_t section, const char *url);

/* Release a rule set. NULL is a no-op. */
void tr_rules_free(tr_rules *r);

/*
 * For the built-in handlers: the rules a handler runs with. When `payload`
 * is not NULL it is a `const tr_rules *` the caller keeps alive until the
 * handler is destroyed (tests, fuzzers); else `config` must say
 * `file=PATH` and the file is loaded. Returns 0 with *use set and *owned
 * set to what the handler must free with tr_rules_free() (NULL when
 * borrowed), or an error that was logged with `handler`'s name.
 */
int tr_rules_for_handler(const tr_rules **use, tr_rules **owned, const char *handler,
			 const char *config, const void *payload);

#endif
