/* handler_json.c - the "json" handler: applies the json rules of a rules
 * file (rules.h, docs/extract.md) to 2xx responses with a JSON content type
 * (application/json, application/NAME+json, text/json), parsed with json-c.
 * Config: file=PATH (the rules file). Invalid JSON is a processing error
 * ("invalid JSON: ..."): the page goes to the dead-letter topic. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "metrics.h"
#include "log.h"
#include "pipeline.h"
#include "rules.h"

typedef struct jsonh {
	const tr_rules *rules;
	tr_rules *owned;
	const tr_page_api *api;
	bool *section_on; /* per section: applies to the current page */
	char reason[256];
} jsonh;

/* One rule applied to one document. */
typedef struct jsonh_run {
	jsonh *h;
	const tr_rule *rule;
	tr_page *pg;
	size_t taken; /* values (or links) taken so far */
	size_t limit;
	int rc;	   /* first error */
	bool full; /* stop: limit reached, page cap, or error */
} jsonh_run;

/* application/json, text/json or application/<anything>+json, with
 * optional parameters. */
static bool jsonh_is_json_type(const char *ct)
{
	size_t n;

	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	if ((n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	    (n == 9 && strncasecmp(ct, "text/json", 9) == 0))
		return true;
	return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static int jsonh_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	int rc;
	jsonh *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return TR_ENOMEM;
	rc = tr_rules_for_handler(&h->rules, &h->owned, "json", config, payload);
	if (rc != TR_OK)
		goto out;
	h->section_on = calloc(h->rules->nsections, sizeof(*h->section_on));
	if (h->section_on == NULL) {
		rc = TR_ENOMEM;
		goto out;
	}
	h->api = api;
	*state = h;
	h = NULL;
out:
	if (h != NULL) {
		tr_rules_free(h->owned);
		free(h->section_on);
		free(h);
	}
	return rc;
}

/* Take one matched value. */
static void jsonh_take(jsonh_run *run, json_object *v)
{
	const tr_rule *rule = run->rule;
	const char *text;
	int rc = TR_OK;

	if (v == NULL) /* JSON null: no value */
		return;
	if (rule->mode == TR_RULE_FOLLOW) {
		if (!json_object_is_type(v, json_type_string))
			return;
		rc = tr_page_add_link(run->pg, json_object_get_string(v));
		if (rc == TR_EINVAL) /* not an http(s) URL */
			return;
	} else {
		if (json_object_is_type(v, json_type_string))
			text = json_object_get_string(v);
		else
			text = json_object_to_json_string_ext(
			    v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		if (text == NULL) {
			rc = TR_ENOMEM;
		} else {
			rc = tr_page_add_field(run->pg, rule->field, text,
					       rule->mode == TR_RULE_ALL);
			if (rc == TR_ETOOBIG) { /* the page's value cap: keep what we have */
				run->full = true;
				return;
			}
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

/* Apply steps [i..) of the rule's path to v, in document order. Recursion
 * is bounded by TR_RULES_MAX_STEPS. */
static void jsonh_walk(jsonh_run *run, json_object *v, size_t i)
{
	const tr_jstep *st;
	json_object *child;

	if (run->full)
		return;
	if (i == run->rule->nsteps) {
		jsonh_take(run, v);
		return;
	}
	st = &run->rule->steps[i];
	switch (st->type) {
	case TR_JSTEP_KEY:
		if (json_object_is_type(v, json_type_object) &&
		    json_object_object_get_ex(v, st->key, &child))
			jsonh_walk(run, child, i + 1);
		break;
	case TR_JSTEP_INDEX:
		if (json_object_is_type(v, json_type_array) &&
		    st->index < json_object_array_length(v))
			jsonh_walk(run, json_object_array_get_idx(v, st->index), i + 1);
		break;
	case TR_JSTEP_ALL:
		if (json_object_is_type(v, json_type_array)) {
			size_t k, n = json_object_array_length(v);
			for (k = 0; k < n && !run->full; k++)
				jsonh_walk(run, json_object_array_get_idx(v, k), i + 1);
		} else if (json_object_is_type(v, json_type_object)) {
			json_object_object_foreach(v, key, val)
			{
				(void)key;
				if (run->full)
					break;
				jsonh_walk(run, val, i + 1);
			}
		}
		break;
	}
}

/* Parse the whole body as one JSON text. On failure *doc is NULL and
 * h->reason says why. */
static int jsonh_parse(jsonh *h, json_object **doc, const char *body, size_t len)
{
	int rc = TR_OK;
	json_tokener *tok = NULL;
	enum json_tokener_error jerr;
	size_t end;

	*doc = NULL;
	if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0) {
		body += 3;
		len -= 3;
	}
	if (len > INT_MAX - 1) {
		snprintf(h->reason, sizeof(h->reason), "invalid JSON: document too large");
		return TR_ETOOBIG;
	}
	/* depth counts the top level too: N+1 allows N nested levels */
	tok = json_tokener_new_ex(TR_RULES_MAX_JSON_DEPTH + 1);
	if (tok == NULL) {
		snprintf(h->reason, sizeof(h->reason), "out of memory");
		return TR_ENOMEM;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	*doc = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	/* A top-level number needs to see the end of the input: feed the NUL
	 * json-c takes as end of data. */
	if (*doc == NULL && jerr == json_tokener_continue) {
		*doc = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		end = len;
	}
	if (*doc != NULL && jerr == json_tokener_success) {
		while (end < len && (body[end] == ' ' || body[end] == '\t' || body[end] == '\n' ||
				     body[end] == '\r'))
			end++;
		if (end == len)
			goto out;
		jerr = json_tokener_error_parse_unexpected;
	}
	json_object_put(*doc);
	*doc = NULL;
	if (end > len)
		end = len;
	snprintf(h->reason, sizeof(h->reason), "invalid JSON: %s at offset %zu",
		 jerr == json_tokener_success ? "trailing data" : json_tokener_error_desc(jerr),
		 end);
	rc = TR_EINVAL;
out:
	json_tokener_free(tok);
	return rc;
}

static int jsonh_process(void *state, tr_page_view *view, const char **reason, void *payload)
{
	jsonh *h = state;
	const tr_page_api *api = h->api;
	const tr_rules *rules = h->rules;
	tr_page *pg = tr_pipeline_page(view);
	json_object *doc = NULL;
	const uint8_t *body;
	const char *url;
	size_t len, i;
	bool any = false;
	int rc = TR_OK;

	if (api->error(view) != NULL || api->status(view) < 200 || api->status(view) > 299 ||
	    !jsonh_is_json_type(api->content_type(view)))
		goto out;
	body = api->body(view, &len);
	if (len == 0)
		goto out;
	url = api->url(view);
	for (i = 0; i < rules->nsections; i++)
		h->section_on[i] = tr_rules_section_matches(rules, i, url);
	for (i = 0; i < rules->nrules && !any; i++)
		any =
		    rules->rules[i].kind == TR_RULE_JSON && h->section_on[rules->rules[i].section];
	if (!any) /* not even parsed: invalid JSON nobody extracts from is no error */
		goto out;
	rc = jsonh_parse(h, &doc, (const char *)body, len);
	if (rc != TR_OK)
		goto out;
	for (i = 0; i < rules->nrules; i++) {
		const tr_rule *rule = &rules->rules[i];
		jsonh_run run;

		if (rule->kind != TR_RULE_JSON || !h->section_on[rule->section])
			continue;
		if (rule->mode == TR_RULE_FIRST && api->field_count(view, rule->field) > 0)
			continue; /* an earlier rule filled it: "first" rules are fallbacks */
		memset(&run, 0, sizeof(run));
		run.h = h;
		run.rule = rule;
		run.pg = pg;
		run.limit = rule->mode == TR_RULE_FIRST ? 1 : TR_RULES_MAX_VALUES;
		jsonh_walk(&run, doc, 0);
		if (run.rc != TR_OK) {
			rc = run.rc;
			snprintf(h->reason, sizeof(h->reason), "JSON rule at line %u: %s",
				 rule->line,
				 rc == TR_ENOMEM ? "out of memory" : "cannot add value");
			goto out;
		}
	}
out:
	json_object_put(doc);
	if (rc != TR_OK)
		*reason = h->reason;
	return rc;
}

static void jsonh_destroy(void *state, void *payload)
{
	jsonh *h = state;

	tr_rules_free(h->owned);
	free(h->section_on);
	free(h);
}

const tr_handler tr_handler_json = {
    TR_HANDLER_ABI_VERSION, "json", jsonh_create, jsonh_process, NULL, jsonh_destroy,
};
