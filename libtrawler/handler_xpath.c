/* handler_xpath.c - the "xpath" handler: applies the xpath rules of a rules
 * file (rules.h, docs/extract.md) to 2xx HTML pages, parsed into a tree
 * with libxml2's recovering HTML parser. Config: file=PATH (the rules
 * file). Every expression is compiled and tried on an empty document at
 * create(), so an invalid one is a configuration error naming its line. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "metrics.h"
#include "log.h"
#include "htmlinput.h"
#include "pipeline.h"
#include "rules.h"
#include "url.h"

#define XPATHH_PARSE_OPTIONS                                                                       \
	(HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |       \
	 HTML_PARSE_COMPACT | HTML_PARSE_IGNORE_ENC)

/* XPath steps one rule may take on one page (libxml2 counts operations and
 * visited nodes): bounds the time a pathological page can cost. */
#define XPATHH_OP_LIMIT 20000000UL

typedef struct xpathh {
	const tr_rules *rules;
	tr_rules *owned;
	const tr_page_api *api;
	xmlXPathCompExprPtr *comp; /* per rule; NULL for json rules */
	bool *section_on;	   /* per section: applies to the current page */
	int last_error;		   /* XPath error code of the last evaluation */
	char reason[256];
} xpathh;

/* One rule's values on one page. */
typedef struct xpathh_run {
	const tr_rule *rule;
	tr_page *pg;
	const char *base; /* for follow: the page's effective base URL */
	size_t taken, limit;
	int rc;	   /* first error */
	bool full; /* stop taking values */
} xpathh_run;

/* Error text captured while compiling (create() only). */
typedef struct xpathh_msg {
	char text[200];
	int offset;
} xpathh_msg;

static void xpathh_capture(void *ctx, xmlErrorPtr e)
{
	xpathh_msg *m = ctx;
	size_t n;

	if (m->text[0] != '\0' || e == NULL)
		return;
	snprintf(m->text, sizeof(m->text), "%s", e->message != NULL ? e->message : "XPath error");
	n = strlen(m->text);
	while (n > 0 && (m->text[n - 1] == '\n' || m->text[n - 1] == ' '))
		m->text[--n] = '\0';
	m->offset = e->int1;
}

static void xpathh_generic_silent(void *ctx, const char *fmt, ...)
{
	TR_UNUSED(ctx);
	TR_UNUSED(fmt);
}

/* Evaluation errors on pages: recorded, never printed. */
static void xpathh_silent(void *ctx, xmlErrorPtr e)
{
	xpathh *h = ctx;

	if (e != NULL)
		h->last_error = e->code;
}

static void xpathh_free(xpathh *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; h->comp != NULL && i < h->rules->nrules; i++)
		if (h->comp[i] != NULL)
			xmlXPathFreeCompExpr(h->comp[i]);
	free(h->comp);
	free(h->section_on);
	tr_rules_free(h->owned);
	free(h);
}

/* Compile every xpath rule, and evaluate it once on an empty document:
 * libxml2 only finds unknown functions and variables when evaluating. */
static int xpathh_compile(xpathh *h, const char *config)
{
	int rc = TR_OK;
	xmlDocPtr doc = NULL;
	xmlXPathContextPtr ctx = NULL;
	xmlStructuredErrorFunc old_fn = xmlStructuredError;
	void *old_ctx = xmlStructuredErrorContext;
	xmlGenericErrorFunc old_generic = xmlGenericError;
	void *old_generic_ctx = xmlGenericErrorContext;
	xpathh_msg msg;
	size_t i;

	if (tr_rules_count(h->rules, TR_RULE_XPATH) == 0)
		return TR_OK;
	doc = htmlReadMemory("<html><body></body></html>", 26, NULL, "UTF-8", XPATHH_PARSE_OPTIONS);
	ctx = doc != NULL ? xmlXPathNewContext(doc) : NULL;
	if (ctx == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	memset(&msg, 0, sizeof(msg));
	/* libxml2 reports some evaluation errors ("function not found")
	 * through the generic handler too: silenced while we try the rules */
	xmlSetGenericErrorFunc(NULL, xpathh_generic_silent);
	xmlSetStructuredErrorFunc(&msg, xpathh_capture);
	for (i = 0; i < h->rules->nrules && rc == TR_OK; i++) {
		const tr_rule *rule = &h->rules->rules[i];
		xmlXPathObjectPtr res = NULL;
		char line[16], where[300], path[4096];

		if (rule->kind != TR_RULE_XPATH)
			continue;
		msg.text[0] = '\0';
		ctx->node = (xmlNodePtr)doc;
		h->comp[i] = xmlXPathCtxtCompile(ctx, (const xmlChar *)rule->expr);
		if (h->comp[i] != NULL)
			res = xmlXPathCompiledEval(h->comp[i], ctx);
		if (res != NULL) {
			xmlXPathFreeObject(res);
			continue;
		}
		if (!tr_pipeline_conf(config, "file", path, sizeof(path)))
			snprintf(path, sizeof(path), "(rules given by the caller)");
		snprintf(line, sizeof(line), "%u", rule->line);
		snprintf(where, sizeof(where), "%s (at byte %d)",
			 msg.text[0] != '\0' ? msg.text : "invalid expression", msg.offset + 1);
		tr_log(TR_LOG_ERROR, "invalid XPath expression in the extraction rules", 5, "rules",
		       path, "line", line, "field", rule->field, "expression", rule->expr, "error",
		       where);
		rc = TR_EINVAL;
	}
	xmlSetStructuredErrorFunc(old_ctx, old_fn);
	xmlSetGenericErrorFunc(old_generic_ctx, old_generic);
out:
	if (ctx != NULL)
		xmlXPathFreeContext(ctx);
	if (doc != NULL)
		xmlFreeDoc(doc);
	return rc;
}

static int xpathh_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	int rc;
	xpathh *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return TR_ENOMEM;
	xmlInitParser();
	rc = tr_rules_for_handler(&h->rules, &h->owned, "xpath", config, payload);
	if (rc != TR_OK)
		goto out;
	h->comp = calloc(h->rules->nrules + 1, sizeof(*h->comp));
	h->section_on = calloc(h->rules->nsections, sizeof(*h->section_on));
	if (h->comp == NULL || h->section_on == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	h->api = api;
	rc = xpathh_compile(h, config);
	if (rc == TR_OK) {
		*state = h;
		h = NULL;
	}
out:
	xpathh_free(h);
	return rc;
}

/*
 * Parse the page the way links.c does, so both see the same document:
 * converted to UTF-8 by tr_html_prepare() (htmlinput.h says which charset
 * is read; invalid sequences become U+FFFD, NULs spaces). *doc is NULL
 * when nothing could be parsed.
 */
static int xpathh_parse(xmlDocPtr *doc, const char *body, size_t len, const char *content_type)
{
	char cs[64], *copy = NULL;
	const char *charset = tr_html_charset_of(content_type, cs, sizeof(cs));

	*doc = NULL;
	if (len > INT_MAX)
		return TR_ETOOBIG;
	if (tr_html_prepare(&body, &len, charset, &copy) != TR_OK)
		return TR_ENOMEM;
	if (len > INT_MAX) {
		free(copy);
		return TR_ETOOBIG;
	}
	*doc = htmlReadMemory(body, (int)len, NULL, "UTF-8", XPATHH_PARSE_OPTIONS);
	free(copy);
	return TR_OK;
}

/* Collapse runs of ASCII whitespace to one space and trim, in place. */
static char *xpathh_collapse(char *s)
{
	char *r = s, *w = s;
	bool space = false;

	for (; *r != '\0'; r++) {
		if (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r' || *r == '\f') {
			space = w != s;
			continue;
		}
		if (space)
			*w++ = ' ';
		space = false;
		*w++ = *r;
	}
	*w = '\0';
	return s;
}

/* Take one value (empty ones are skipped). */
static void xpathh_take(xpathh_run *run, const char *value)
{
	const tr_rule *rule = run->rule;
	char *abs = NULL;
	int rc;

	if (run->full || value[0] == '\0')
		return;
	if (rule->mode == TR_RULE_FOLLOW) {
		/* against the page's <base href>, which tr_page_add_link does not know */
		rc = tr_url_resolve(&abs, run->base, value);
		if (rc == TR_OK)
			rc = tr_page_add_link(run->pg, abs);
		free(abs);
		if (rc == TR_EINVAL || rc == TR_ETOOBIG) /* not an http(s) URL */
			return;
	} else {
		rc = tr_page_add_field(run->pg, rule->field, value, rule->mode == TR_RULE_ALL);
		if (rc == TR_ETOOBIG) { /* the page's value cap: keep what we have */
			run->full = true;
			return;
		}
	}
	if (rc != TR_OK) {
		run->rc = rc;
		run->full = true;
		return;
	}
	if (++run->taken >= run->limit) {
		run->full = true;
		if (run->limit == TR_RULES_MAX_VALUES)
			tr_metrics_limit_hit("rule_values");
	}
}

/* A number as XPath 1.0's string() writes it. libxml2 2.9 switches to
 * exponent notation past 1e9 ("1e+12"), which XPath does not allow, so
 * integers are written here; fractions, NaN and Infinity are libxml2's. */
static void xpathh_number(xpathh_run *run, double v)
{
	char num[32];
	xmlChar *s;

	if (isfinite(v) && v == floor(v) && fabs(v) < 1e18) {
		snprintf(num, sizeof(num), "%.0f", v == 0 ? 0.0 : v); /* -0 is "0" */
		xpathh_take(run, num);
		return;
	}
	s = xmlXPathCastNumberToString(v);
	if (s == NULL) {
		run->rc = TR_ENOMEM;
		return;
	}
	xpathh_take(run, (const char *)s);
	xmlFree(s);
}

/* Take the values of one XPath result. */
static void xpathh_values(xpathh_run *run, xmlXPathObjectPtr res)
{
	xmlChar *s;
	int k;

	switch (res->type) {
	case XPATH_NODESET:
		for (k = 0; res->nodesetval != NULL && k < res->nodesetval->nodeNr && !run->full;
		     k++) {
			s = xmlXPathCastNodeToString(res->nodesetval->nodeTab[k]);
			if (s == NULL) {
				run->rc = TR_ENOMEM;
				return;
			}
			xpathh_take(run, xpathh_collapse((char *)s));
			xmlFree(s);
		}
		break;
	case XPATH_STRING:
		if (res->stringval != NULL)
			xpathh_take(run, xpathh_collapse((char *)res->stringval));
		break;
	case XPATH_NUMBER:
		xpathh_number(run, res->floatval);
		break;
	case XPATH_BOOLEAN:
		xpathh_take(run, res->boolval ? "true" : "false");
		break;
	default: /* XSLT result trees and the like: not produced by plain XPath */
		break;
	}
}

static const char *xpathh_error_text(int code)
{
	switch (code) {
	case XPATH_OP_LIMIT_EXCEEDED:
		return "operation limit exceeded";
	case XPATH_RECURSION_LIMIT_EXCEEDED:
		return "recursion limit exceeded";
	case XPATH_MEMORY_ERROR:
		return "out of memory";
	default:
		return "evaluation error";
	}
}

static int xpathh_run_rules(xpathh *h, tr_page_view *view, xmlDocPtr doc)
{
	int rc = TR_OK;
	const tr_rules *rules = h->rules;
	tr_page *pg = tr_pipeline_page(view);
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	size_t i;

	if (ctx == NULL) {
		snprintf(h->reason, sizeof(h->reason), "out of memory");
		return TR_ENOMEM;
	}
	ctx->error = xpathh_silent;
	ctx->userData = h;
	ctx->opLimit = XPATHH_OP_LIMIT;
	for (i = 0; i < rules->nrules && rc == TR_OK; i++) {
		const tr_rule *rule = &rules->rules[i];
		xmlXPathObjectPtr res;
		xpathh_run run;

		if (h->comp[i] == NULL || !h->section_on[rule->section])
			continue;
		if (rule->mode == TR_RULE_FIRST && h->api->field_count(view, rule->field) > 0)
			continue; /* an earlier rule filled it: "first" rules are fallbacks */
		memset(&run, 0, sizeof(run));
		run.rule = rule;
		run.pg = pg;
		run.base = pg->links.base != NULL ? pg->links.base : h->api->url(view);
		run.limit = rule->mode == TR_RULE_FIRST ? 1 : TR_RULES_MAX_VALUES;
		ctx->opCount = 0;
		ctx->node = (xmlNodePtr)doc;
		h->last_error = 0;
		res = xmlXPathCompiledEval(h->comp[i], ctx);
		if (res == NULL) {
			int code = h->last_error - XML_XPATH_EXPRESSION_OK + XPATH_EXPRESSION_OK;
			snprintf(h->reason, sizeof(h->reason),
				 "XPath rule at line %u failed on this page: %s", rule->line,
				 xpathh_error_text(code));
			rc = code == XPATH_MEMORY_ERROR ? TR_ENOMEM : TR_EINVAL;
			break;
		}
		xpathh_values(&run, res);
		xmlXPathFreeObject(res);
		if (run.rc != TR_OK) {
			rc = run.rc;
			snprintf(h->reason, sizeof(h->reason), "XPath rule at line %u: %s",
				 rule->line,
				 rc == TR_ENOMEM ? "out of memory" : "cannot add value");
		}
	}
	xmlXPathFreeContext(ctx);
	return rc;
}

static int xpathh_process(void *state, tr_page_view *view, const char **reason, void *payload)
{
	xpathh *h = state;
	const tr_page_api *api = h->api;
	const tr_rules *rules = h->rules;
	xmlDocPtr doc = NULL;
	const uint8_t *body;
	const char *url;
	size_t len, i;
	bool any = false;
	int rc = TR_OK;

	if (api->error(view) != NULL || api->status(view) < 200 || api->status(view) > 299 ||
	    !tr_page_is_html_type(api->content_type(view)))
		goto out;
	body = api->body(view, &len);
	if (len == 0)
		goto out;
	url = api->url(view);
	for (i = 0; i < rules->nsections; i++)
		h->section_on[i] = tr_rules_section_matches(rules, i, url);
	for (i = 0; i < rules->nrules && !any; i++)
		any = h->comp[i] != NULL && h->section_on[rules->rules[i].section];
	if (!any)
		goto out;
	rc = xpathh_parse(&doc, (const char *)body, len, api->content_type(view));
	if (rc != TR_OK) {
		snprintf(h->reason, sizeof(h->reason),
			 rc == TR_ENOMEM ? "out of memory" : "page too large to parse");
		goto out;
	}
	if (doc != NULL) /* NULL: nothing parseable, so nothing to extract */
		rc = xpathh_run_rules(h, view, doc);
out:
	if (doc != NULL)
		xmlFreeDoc(doc);
	if (rc != TR_OK)
		*reason = h->reason;
	return rc;
}

static void xpathh_destroy(void *state, void *payload)
{
	xpathh_free(state);
}

const tr_handler tr_handler_xpath = {
    TR_HANDLER_ABI_VERSION, "xpath", xpathh_create, xpathh_process, NULL, xpathh_destroy,
};
