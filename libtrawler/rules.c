/* rules.c - parser of the extraction rules file (format: docs/extract.md). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"
#include "rules.h"

/* The rules being built, and where the parser is. */
typedef struct rules_parser {
	tr_rules *r;
	size_t rules_cap, sections_cap;
	unsigned line;
	char *err;
	size_t errlen;
} rules_parser;

static void rules_err(rules_parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rules_err(rules_parser *ps, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (ps->errlen == 0)
		return;
	if (ps->line > 0)
		n = snprintf(ps->err, ps->errlen, "line %u: ", ps->line);
	if (n < 0 || (size_t)n >= ps->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool rules_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool rules_is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* Whether s[0..n) is the word `w`. */
static bool rules_word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(s, w, n) == 0;
}

static void rules_free_rule(tr_rule *rule)
{
	size_t i;

	for (i = 0; i < rule->nsteps; i++)
		free(rule->steps[i].key);
	free(rule->steps);
	free(rule->field);
	free(rule->expr);
}

void tr_rules_free(tr_rules *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nrules; i++)
		rules_free_rule(&r->rules[i]);
	for (i = 0; i < r->nsections; i++) {
		if (r->sections[i].pattern != NULL) {
			regfree(&r->sections[i].re);
			free(r->sections[i].pattern);
		}
	}
	free(r->rules);
	free(r->sections);
	free(r);
}

/* End of the bracket expression that starts at p[i] == '[' (the index of
 * its ']', or len when unterminated): a ']' right after "[" or "[^" is a
 * member; "[:", "[." and "[=" open classes that end with ":]", ".]", "=]". */
static size_t rules_bracket_end(const char *p, size_t len, size_t i)
{
	i++;
	if (i < len && p[i] == '^')
		i++;
	if (i < len && p[i] == ']')
		i++;
	while (i < len && p[i] != ']') {
		if (p[i] == '[' && i + 1 < len &&
		    (p[i + 1] == ':' || p[i + 1] == '.' || p[i + 1] == '=')) {
			char delim = p[i + 1];
			for (i += 2; i < len && !(p[i] == delim && i + 1 < len && p[i + 1] == ']');
			     i++)
				;
			i += i < len ? 2 : 0;
			continue;
		}
		i++;
	}
	return i < len ? i : len;
}

/*
 * POSIX regular expressions have no \d; people write it anyway (the
 * example in the issue does). Outside bracket expressions, \d becomes
 * [0-9] and \D [^0-9]; every other escape is left to regcomp (glibc
 * knows \w \s \b \< \> ...). Returns a malloc'd string or NULL.
 */
static char *rules_translate_regex(const char *p)
{
	size_t len = strlen(p), o = 0, i = 0, j;
	char *out = malloc(len * 3 + 1);

	if (out == NULL)
		return NULL;
	while (i < len) {
		if (p[i] == '\\' && i + 1 < len) {
			if (p[i + 1] == 'd' || p[i + 1] == 'D') {
				const char *cls = p[i + 1] == 'd' ? "[0-9]" : "[^0-9]";
				memcpy(out + o, cls, strlen(cls));
				o += strlen(cls);
			} else {
				out[o++] = p[i];
				out[o++] = p[i + 1];
			}
			i += 2;
			continue;
		}
		if (p[i] != '[') {
			out[o++] = p[i++];
			continue;
		}
		/* a bracket expression: copied as is, up to its closing ']' */
		j = rules_bracket_end(p, len, i);
		j = j < len ? j + 1 : len;
		memcpy(out + o, p + i, j - i);
		o += j - i;
		i = j;
	}
	out[o] = '\0';
	return out;
}

/*
 * glibc's regcomp copies the tree of a repeated expression once per
 * repetition ("(a{1,100}){1,100}" becomes 10000 nodes), its epsilon
 * closures grow with the square of that when the repeated part can be
 * empty ("(a*){1,9999}" takes seconds), and stacked quantifiers multiply
 * both ("(a*b*)*{1,1000}" takes half a minute, "a++++..." gigabytes), so a
 * typo in a pattern could stall or kill the consumer at start-up. Stacked
 * quantifiers are undefined in POSIX EREs anyway: they are rejected, as
 * are back-references (exponential matching), nesting past
 * RULES_REGEX_MAX_DEPTH and patterns whose estimated expansion (nested
 * repetitions multiply) passes RULES_REGEX_MAX_NODES.
 * Returns NULL when fine, or what is wrong.
 */
#define RULES_REGEX_MAX_NODES 2000.0
#define RULES_REGEX_MAX_DEPTH 64

static const char *rules_regex_cost(const char *p)
{
	size_t len = strlen(p), i, depth = 0;
	bool quantified = false; /* the last token was a quantifier */
	/* per open group: the size so far, and the size of its last atom */
	double total[RULES_REGEX_MAX_DEPTH + 1], last[RULES_REGEX_MAX_DEPTH + 1];

	total[0] = last[0] = 0;
	for (i = 0; i < len; i++) {
		double mult = 0;
		char c = p[i];

		if (c == '\\' && i + 1 < len && p[i + 1] >= '1' && p[i + 1] <= '9')
			return "back-references are not supported";
		if (c == '(') {
			if (++depth > RULES_REGEX_MAX_DEPTH)
				return "groups nested too deep";
			total[depth] = last[depth] = 0;
			quantified = false;
			continue;
		}
		if (c == ')' && depth > 0) {
			depth--;
			last[depth] = total[depth + 1] + 1;
			total[depth] += last[depth];
		} else if (c == '|') {
			last[depth] = 0;
		} else if (c == '*' || c == '+' || c == '?') {
			mult = 2;
		} else if (c == '{' && i + 1 < len && p[i + 1] >= '0' && p[i + 1] <= '9') {
			double m = 0, n = -1;
			size_t j = i + 1;
			for (; j < len && p[j] >= '0' && p[j] <= '9' && m < 1e6; j++)
				m = m * 10 + (p[j] - '0');
			if (j < len && p[j] == ',') {
				n = 0;
				for (j++; j < len && p[j] >= '0' && p[j] <= '9' && n < 1e6; j++)
					n = n * 10 + (p[j] - '0');
				if (p[j - 1] == ',')
					n = m + 1; /* {m,}: m copies and a star */
			}
			mult = (n >= 0 ? n : m) + 1;
			i = j < len ? j : len;
		} else {
			if (c == '[')
				i = rules_bracket_end(p, len, i);
			else if (c == '\\')
				i++;
			last[depth] = 1;
			total[depth] += 1;
		}
		if (mult > 0 && quantified)
			return "a quantifier right after another one ('++', '*{2}', ...)";
		quantified = mult > 0;
		if (mult > 0) {
			total[depth] += last[depth] * (mult - 1);
			last[depth] *= mult;
		}
		if (total[depth] > RULES_REGEX_MAX_NODES || last[depth] > RULES_REGEX_MAX_NODES)
			return "too complex (its repetitions expand past 2000 nodes)";
	}
	return NULL;
}

static int rules_add_section(rules_parser *ps, const char *pattern, size_t n)
{
	int rc = TR_OK;
	tr_rules *r = ps->r;
	tr_rules_section *sec;
	char *translated = NULL;
	const char *why;
	int rerr;

	if (r->nsections > TR_RULES_MAX_SECTIONS) {
		rules_err(ps, "more than %d sections", TR_RULES_MAX_SECTIONS);
		return TR_ETOOBIG;
	}
	if (r->nsections == ps->sections_cap) {
		size_t cap = ps->sections_cap * 2;
		tr_rules_section *s = realloc(r->sections, cap * sizeof(*s));
		if (s == NULL)
			return TR_ENOMEM;
		r->sections = s;
		ps->sections_cap = cap;
	}
	sec = &r->sections[r->nsections];
	memset(sec, 0, sizeof(*sec));
	sec->line = ps->line;
	if (n == 1 && pattern[0] == '*') {
		r->nsections++;
		goto out;
	}
	if (n > TR_RULES_MAX_EXPR) {
		rules_err(ps, "section pattern longer than %d bytes", TR_RULES_MAX_EXPR);
		rc = TR_ETOOBIG;
		goto out;
	}
	sec->pattern = strndup(pattern, n);
	if (sec->pattern == NULL || (translated = rules_translate_regex(sec->pattern)) == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	if ((why = rules_regex_cost(translated)) != NULL) {
		rules_err(ps, "invalid regular expression '%s': %s", sec->pattern, why);
		rc = TR_EINVAL;
		goto out;
	}
	rerr = regcomp(&sec->re, translated, REG_EXTENDED | REG_NOSUB);
	if (rerr != 0) {
		char msg[200];
		regerror(rerr, &sec->re, msg, sizeof(msg));
		rules_err(ps, "invalid regular expression '%s': %s", sec->pattern, msg);
		rc = rerr == REG_ESPACE ? TR_ENOMEM : TR_EINVAL;
		goto out;
	}
	r->nsections++;
out:
	if (rc != TR_OK) {
		free(sec->pattern);
		sec->pattern = NULL;
	}
	free(translated);
	return rc;
}

/* "[page PATTERN]" (s[0..n) is the trimmed line). */
static int rules_section(rules_parser *ps, const char *s, size_t n)
{
	if (n < 2 || s[n - 1] != ']') {
		rules_err(ps, "section header must end with ']': [page REGEX] or [page *]");
		return TR_EINVAL;
	}
	s++;
	n -= 2;
	while (n > 0 && rules_is_space(*s)) {
		s++;
		n--;
	}
	while (n > 0 && rules_is_space(s[n - 1]))
		n--;
	if (n < 5 || memcmp(s, "page", 4) != 0 || !rules_is_space(s[4])) {
		rules_err(ps, "unknown section header: expected [page REGEX] or [page *]");
		return TR_EINVAL;
	}
	s += 4;
	n -= 4;
	while (n > 0 && rules_is_space(*s)) {
		s++;
		n--;
	}
	return rules_add_section(ps, s, n);
}

static int rules_add_step(tr_rule *rule, tr_jstep_type type, const char *key, size_t keylen,
			  size_t index)
{
	tr_jstep *st = realloc(rule->steps, (rule->nsteps + 1) * sizeof(*st));

	if (st == NULL)
		return TR_ENOMEM;
	rule->steps = st;
	st = &rule->steps[rule->nsteps];
	memset(st, 0, sizeof(*st));
	st->type = type;
	st->index = index;
	if (type == TR_JSTEP_KEY && (st->key = strndup(key, keylen)) == NULL)
		return TR_ENOMEM;
	rule->nsteps++;
	return TR_OK;
}

/* A bare key runs up to '.', '[' or the end; it may not hold ']', '"' or
 * spaces (quote those: ["a b"]). */
static size_t rules_bare_key(const char *p)
{
	size_t n = 0;

	while (p[n] != '\0' && p[n] != '.' && p[n] != '[' && p[n] != ']' && p[n] != '"' &&
	       !rules_is_space(p[n]))
		n++;
	return n;
}

/* Parse rule->expr as a JSON path into rule->steps. */
static int rules_json_path(rules_parser *ps, tr_rule *rule)
{
	const char *e = rule->expr, *p = e;
	const char *what = NULL;
	int rc = TR_OK;
	size_t n;

	if (*p == '$')
		p++;
	else if (*p == '.' && p[1] == '\0')
		p++;
	else if (*p != '.' && *p != '[') {
		n = rules_bare_key(p);
		if (n == 0) {
			what = "expected a key";
			goto out;
		}
		if ((rc = rules_add_step(rule, TR_JSTEP_KEY, p, n, 0)) != TR_OK)
			goto out;
		p += n;
	}
	while (*p != '\0' && rc == TR_OK) {
		if (rule->nsteps >= TR_RULES_MAX_STEPS) {
			what = "too many steps";
			goto out;
		}
		if (*p == '.') {
			p++;
			n = rules_bare_key(p);
			if (n == 0) {
				what = "expected a key after '.'";
				goto out;
			}
			rc = rules_add_step(rule, TR_JSTEP_KEY, p, n, 0);
			p += n;
		} else if (*p == '[' && p[1] == '*' && p[2] == ']') {
			rc = rules_add_step(rule, TR_JSTEP_ALL, NULL, 0, 0);
			p += 3;
		} else if (*p == '[' && p[1] >= '0' && p[1] <= '9') {
			size_t index = 0, digits = 0;
			for (p++; *p >= '0' && *p <= '9'; p++, digits++)
				index = index * 10 + (size_t)(*p - '0');
			if (digits > 9 || *p != ']') {
				what =
				    digits > 9 ? "index too large" : "expected ']' after the index";
				goto out;
			}
			p++;
			rc = rules_add_step(rule, TR_JSTEP_INDEX, NULL, 0, index);
		} else if (*p == '[' && p[1] == '"') {
			/* ["key"]: \" and \\ are the only escapes */
			char *key = malloc(strlen(p) + 1);
			size_t k = 0;
			if (key == NULL) {
				rc = TR_ENOMEM;
				goto out;
			}
			for (p += 2; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				key[k++] = *p;
			}
			if (p[0] != '"' || p[1] != ']') {
				free(key);
				what = "unterminated quoted key (expected \"])";
				goto out;
			}
			p += 2;
			rc = rules_add_step(rule, TR_JSTEP_KEY, key, k, 0);
			free(key);
		} else {
			what = "expected .key, [N], [*] or [\"key\"]";
			goto out;
		}
	}
out:
	if (what != NULL) {
		rules_err(ps, "invalid JSON path '%s' at byte %zu: %s", e, (size_t)(p - e) + 1,
			  what);
		rc = TR_EINVAL;
	}
	return rc;
}

/* "NAME = KIND MODE EXPR" (s[0..n) is the trimmed line). */
static int rules_rule(rules_parser *ps, const char *s, size_t n)
{
	int rc = TR_OK;
	tr_rules *r = ps->r;
	tr_rule rule;
	const char *end = s + n, *tok;
	size_t name_len = 0, len;

	memset(&rule, 0, sizeof(rule));
	while (name_len < n && rules_is_name_char(s[name_len]))
		name_len++;
	tok = s + name_len;
	while (tok < end && rules_is_space(*tok))
		tok++;
	if (name_len == 0 || tok == end || *tok != '=') {
		rules_err(ps, "expected 'NAME = KIND MODE EXPR' (NAME: letters, digits, _ - .)");
		return TR_EINVAL;
	}
	if (name_len > TR_RULES_MAX_NAME) {
		rules_err(ps, "field name longer than %d bytes", TR_RULES_MAX_NAME);
		return TR_ETOOBIG;
	}
	if (r->nrules >= TR_RULES_MAX_RULES) {
		rules_err(ps, "more than %d rules", TR_RULES_MAX_RULES);
		return TR_ETOOBIG;
	}
	rule.line = ps->line;
	rule.section = r->nsections - 1;

	/* KIND */
	for (tok++; tok < end && rules_is_space(*tok); tok++)
		;
	for (len = 0; tok + len < end && !rules_is_space(tok[len]); len++)
		;
	if (rules_word_is(tok, len, "xpath")) {
		rule.kind = TR_RULE_XPATH;
	} else if (rules_word_is(tok, len, "json")) {
		rule.kind = TR_RULE_JSON;
	} else {
		rules_err(ps, "unknown kind '%.*s' (expected xpath or json)",
			  (int)(len > 40 ? 40 : len), tok);
		return TR_EINVAL;
	}
	/* MODE */
	for (tok += len; tok < end && rules_is_space(*tok); tok++)
		;
	for (len = 0; tok + len < end && !rules_is_space(tok[len]); len++)
		;
	if (rules_word_is(tok, len, "first")) {
		rule.mode = TR_RULE_FIRST;
	} else if (rules_word_is(tok, len, "all")) {
		rule.mode = TR_RULE_ALL;
	} else if (rules_word_is(tok, len, "follow")) {
		rule.mode = TR_RULE_FOLLOW;
	} else {
		rules_err(ps, "unknown mode '%.*s' (expected first, all or follow)",
			  (int)(len > 40 ? 40 : len), tok);
		return TR_EINVAL;
	}
	/* EXPR: the rest of the line */
	for (tok += len; tok < end && rules_is_space(*tok); tok++)
		;
	if (tok == end) {
		rules_err(ps, "missing expression after the mode");
		return TR_EINVAL;
	}
	if ((size_t)(end - tok) > TR_RULES_MAX_EXPR) {
		rules_err(ps, "expression longer than %d bytes", TR_RULES_MAX_EXPR);
		return TR_ETOOBIG;
	}
	rule.field = strndup(s, name_len);
	rule.expr = strndup(tok, (size_t)(end - tok));
	if (rule.field == NULL || rule.expr == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	if (rule.kind == TR_RULE_JSON && (rc = rules_json_path(ps, &rule)) != TR_OK)
		goto out;
	if (r->nrules == ps->rules_cap) {
		size_t cap = ps->rules_cap == 0 ? 16 : ps->rules_cap * 2;
		tr_rule *nr = realloc(r->rules, cap * sizeof(*nr));
		if (nr == NULL) {
			rc = TR_ENOMEM;
			goto out;
		}
		r->rules = nr;
		ps->rules_cap = cap;
	}
	r->rules[r->nrules++] = rule;
	memset(&rule, 0, sizeof(rule));
out:
	rules_free_rule(&rule);
	return rc;
}

int tr_rules_parse(tr_rules **out, const char *text, size_t len, char *err, size_t errlen)
{
	int rc = TR_OK;
	rules_parser ps;
	const char *p = text, *end = text + len;

	memset(&ps, 0, sizeof(ps));
	ps.err = err;
	ps.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	if (len > TR_RULES_MAX_BYTES) {
		rules_err(&ps, "rules file larger than %d bytes", TR_RULES_MAX_BYTES);
		return TR_ETOOBIG;
	}
	if (text == NULL && len > 0)
		return TR_EINVAL;
	if ((ps.r = calloc(1, sizeof(*ps.r))) == NULL ||
	    (ps.r->sections = calloc(4, sizeof(*ps.r->sections))) == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	ps.sections_cap = 4;
	ps.r->nsections = 1; /* the implicit "all pages" section */
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end && rc == TR_OK) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl != NULL ? nl : end;
		const char *s = p;
		size_t n;

		ps.line++;
		p = nl != NULL ? nl + 1 : end;
		if (memchr(s, '\0', (size_t)(eol - s)) != NULL) {
			rules_err(&ps, "NUL byte (not a text file?)");
			rc = TR_EINVAL;
			break;
		}
		while (s < eol && rules_is_space(*s))
			s++;
		n = (size_t)(eol - s);
		while (n > 0 && rules_is_space(s[n - 1]))
			n--;
		if (n == 0 || s[0] == '#')
			continue;
		rc = s[0] == '[' ? rules_section(&ps, s, n) : rules_rule(&ps, s, n);
	}
	if (rc == TR_ENOMEM && (errlen == 0 || err[0] == '\0'))
		rules_err(&ps, "out of memory");
	if (rc == TR_OK) {
		*out = ps.r;
		ps.r = NULL;
	}
out:
	tr_rules_free(ps.r);
	return rc;
}

int tr_rules_load(tr_rules **out, const char *path, char *err, size_t errlen)
{
	int rc = TR_OK;
	FILE *f = fopen(path, "rb");
	char *buf = NULL, msg[512];
	size_t n = 0, got;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return TR_EIO;
	}
	/* Read one byte past the cap to tell "at the cap" from "over it". */
	buf = malloc(TR_RULES_MAX_BYTES + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		rc = TR_ENOMEM;
		goto out;
	}
	while (n <= TR_RULES_MAX_BYTES &&
	       (got = fread(buf + n, 1, TR_RULES_MAX_BYTES + 1 - n, f)) > 0)
		n += got;
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		rc = TR_EIO;
		goto out;
	}
	rc = tr_rules_parse(out, buf, n, msg, sizeof(msg));
	if (rc != TR_OK)
		snprintf(err, errlen, "%s: %s", path, msg);
out:
	free(buf);
	fclose(f);
	return rc;
}

size_t tr_rules_count(const tr_rules *r, tr_rule_kind kind)
{
	size_t i, n = 0;

	for (i = 0; i < r->nrules; i++)
		n += r->rules[i].kind == kind;
	return n;
}

bool tr_rules_section_matches(const tr_rules *r, size_t section, const char *url)
{
	const tr_rules_section *sec;

	if (section >= r->nsections)
		return false;
	sec = &r->sections[section];
	return sec->pattern == NULL || regexec(&sec->re, url, 0, NULL, 0) == 0;
}

int tr_rules_for_handler(const tr_rules **use, tr_rules **owned, const char *handler,
			 const char *config, const void *payload)
{
	int rc;
	char path[4096], err[600];

	*owned = NULL;
	if (payload != NULL) {
		*use = payload;
		return TR_OK;
	}
	if (!tr_pipeline_conf(config, "file", path, sizeof(path)) || path[0] == '\0') {
		tr_log(TR_LOG_ERROR, "extraction handler needs a rules file: file=PATH", 2,
		       "handler", handler, "config", config);
		return TR_EINVAL;
	}
	rc = tr_rules_load(owned, path, err, sizeof(err));
	if (rc != TR_OK) {
		tr_log(TR_LOG_ERROR, "cannot load the extraction rules", 2, "handler", handler,
		       "error", err);
		return rc;
	}
	*use = *owned;
	return TR_OK;
}
