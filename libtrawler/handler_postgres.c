/* handler_postgres.c - the PostgreSQL sink (libpq): one row per page, upserted
 * by URL, so a redelivered page updates its row instead of adding one.
 *
 * Config: conninfo=CONNINFO (a libpq connection string, keyword=value pairs
 * separated by spaces, or a postgresql:// URI; it may hold spaces but no
 * commas, since commas separate handler config keys), table=NAME (default
 * trawler_pages; letters, digits and _, optionally schema.table).
 * Keep passwords out of the config (it is logged when rejected): use
 * PGPASSWORD or ~/.pgpass, which libpq reads itself.
 *
 * create() connects (connect_timeout 10 unless conninfo sets it) and creates
 * the table if missing. process() buffers the row; flush() writes the buffer
 * in one transaction of multi-row INSERT ... ON CONFLICT (url) DO UPDATE
 * statements (values always as parameters) and commits. A broken connection
 * is reset and the transaction retried once; upserts make the retry safe
 * even when the first COMMIT did reach the server. On failure the rows stay
 * buffered and flush() returns an error: the consumer stops without
 * committing offsets and the pages are redelivered. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

#define PG_COLS 8			   /* parameters per row */
#define PG_ROWS_PER_STMT 1000		   /* 8000 parameters, under libpq's 65535 */
#define PG_FLUSH_BYTES (64u * 1024 * 1024) /* process() flushes past this much */
#define PG_FIELDS_MAX (128u * 1024 * 1024) /* fields JSON of one page */
#define PG_SQL_MAX (1024u * 1024)	   /* generated statement text */

/* Parameter order of a row, as in the INSERT column list. */
enum { C_URL, C_CRAWL, C_STATUS, C_CTYPE, C_DEPTH, C_TITLE, C_FIELDS, C_FETCHED };

typedef struct row {
	size_t seq;		/* arrival order: the last row of a URL wins */
	size_t size;		/* bytes allocated, for the memory bound */
	const char *v[PG_COLS]; /* NULL = SQL NULL; all point into this block */
} row;

typedef struct pg {
	PGconn *conn;
	char table[140]; /* quoted identifier, "schema"."table" */
	const tr_page_api *api;
	row **rows;
	size_t nrows, cap, bytes, seq;
	bool failing; /* last flush failed: process() leaves retries to the consumer */
	tr_buf json;  /* scratch for a page's fields */
} pg;

static void pg_notice(void *arg, const char *msg)
{
	/* "relation already exists, skipping" and the like: not worth stderr */
	char m[512];
	snprintf(m, sizeof(m), "%s", msg);
	m[strcspn(m, "\n")] = '\0';
	tr_log(TR_LOG_DEBUG, "postgres notice", 1, "message", m);
}

/* Log a libpq failure once, without the connection string (it may hold a
 * password); host, port and database say where. */
static void pg_log_error(pg *p, const char *what, const PGresult *res)
{
	char m[1024];
	snprintf(m, sizeof(m), "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
	m[strcspn(m, "\n")] = '\0';
	tr_log(TR_LOG_ERROR, what, 5, "error", m[0] ? m : "unknown error", "host", PQhost(p->conn),
	       "port", PQport(p->conn), "database", PQdb(p->conn), "table", p->table);
}

/* `name` or `schema.name`, each part [A-Za-z_][A-Za-z0-9_]{0,62}, written
 * out quoted (so the case is kept and reserved words work). */
static int quote_table(char *out, size_t outlen, const char *name)
{
	size_t o = 0;
	const char *part = name;
	for (int parts = 0; parts < 2; parts++) {
		size_t n = strcspn(part, ".");
		if (n == 0 || n > 63 || (part[0] >= '0' && part[0] <= '9'))
			return TR_EINVAL;
		for (size_t i = 0; i < n; i++) {
			char c = part[i];
			if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9')))
				return TR_EINVAL;
		}
		o += (size_t)snprintf(out + o, outlen - o, "%s\"%.*s\"", parts ? "." : "", (int)n,
				      part);
		if (part[n] == '\0')
			return o < outlen ? TR_OK : TR_EINVAL;
		part += n + 1;
	}
	return TR_EINVAL; /* more than one dot */
}

/* Length of the valid UTF-8 sequence at s (PostgreSQL's rules: no
 * overlongs, surrogates or code points past U+10FFFF), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
		return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80
			   ? 4
			   : 0;
	}
	return 0;
}

/* Bytes copy_text() writes for s (with the NUL). */
static size_t text_size(const char *s)
{
	size_t n = 1;
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t k = utf8_seq(p);
		n += k ? k : 3;
		p += k ? k : 1;
	}
	return n;
}

/* Copy s to dst with invalid UTF-8 bytes replaced by U+FFFD (the server
 * would reject the whole batch for one bad title). Returns past the NUL. */
static char *copy_text(char *dst, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t k = utf8_seq(p);
		if (k) {
			memcpy(dst, p, k);
			dst += k;
			p += k;
		} else {
			memcpy(dst, "\xEF\xBF\xBD", 3);
			dst += 3;
			p++;
		}
	}
	*dst++ = '\0';
	return dst;
}

/* The page's fields as a JSON object of string arrays into p->json. */
static int fields_json(pg *p, const tr_page *page)
{
	int rc = tr_buf_add(&p->json, "{", 1);
	for (size_t i = 0; !rc && i < page->nfields; i++) {
		const tr_field *f = &page->fields[i];
		if (i)
			rc = tr_buf_add(&p->json, ",", 1);
		if (!rc)
			rc = tr_jsonw_str(&p->json, f->name, strlen(f->name));
		if (!rc)
			rc = tr_buf_add(&p->json, ":[", 2);
		for (size_t k = 0; !rc && k < f->count; k++) {
			if (k)
				rc = tr_buf_add(&p->json, ",", 1);
			if (!rc)
				rc = tr_jsonw_str(&p->json, f->values[k], strlen(f->values[k]));
		}
		if (!rc)
			rc = tr_buf_add(&p->json, "]", 1);
	}
	if (!rc)
		rc = tr_buf_add(&p->json, "}", 1);
	return rc;
}

static PGresult *exec(pg *p, const char *sql, int n, const char *const *values)
{
	return PQexecParams(p->conn, sql, n, NULL, values, NULL, NULL, 0);
}

/* Run a command; true when it succeeded (errors logged). */
static bool command(pg *p, const char *what, const char *sql, int n, const char *const *values)
{
	PGresult *res = exec(p, sql, n, values);
	bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		pg_log_error(p, what, res);
	PQclear(res);
	return ok;
}

static int create_table(pg *p)
{
	char sql[1024];
	const char *key[1] = {p->table};
	snprintf(sql, sizeof(sql),
		 "CREATE TABLE IF NOT EXISTS %s (url text PRIMARY KEY, crawl_id text, status int, "
		 "content_type text, depth int, title text, fields jsonb, fetched_at timestamptz, "
		 "updated_at timestamptz DEFAULT now())",
		 p->table);
	/* Consumers starting together would race on the catalog (a unique
	 * violation in pg_type): serialise them on an advisory lock. */
	if (!command(p, "postgres: cannot begin", "BEGIN", 0, NULL))
		return TR_EIO;
	if (!command(p, "postgres: cannot lock", "SELECT pg_advisory_xact_lock(hashtext($1))", 1,
		     key) ||
	    !command(p, "postgres: cannot create the table", sql, 0, NULL) ||
	    !command(p, "postgres: cannot commit", "COMMIT", 0, NULL)) {
		PQclear(PQexec(p->conn, "ROLLBACK"));
		return TR_EIO;
	}
	return TR_OK;
}

static void pg_destroy(void *state, void *payload)
{
	pg *p = state;
	for (size_t i = 0; i < p->nrows; i++)
		free(p->rows[i]);
	free(p->rows);
	tr_buf_free(&p->json);
	PQfinish(p->conn);
	free(p);
}

static int pg_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	char conninfo[4096] = "", table[140] = "trawler_pages";
	pg *p = calloc(1, sizeof(*p));
	int rc = TR_EIO;
	if (!p)
		return TR_ENOMEM;
	p->api = api;
	tr_buf_init(&p->json, PG_FIELDS_MAX);
	tr_pipeline_conf(config, "conninfo", conninfo, sizeof(conninfo));
	tr_pipeline_conf(config, "table", table, sizeof(table));
	if (quote_table(p->table, sizeof(p->table), table) != TR_OK) {
		tr_log(TR_LOG_ERROR,
		       "postgres: invalid table name (letters, digits, _; schema.table)", 1,
		       "table", table);
		rc = TR_EINVAL;
		goto fail;
	}
	/* conninfo comes after the defaults, so its own settings win. */
	const char *const keys[] = {"connect_timeout", "application_name", "client_encoding",
				    "dbname", NULL};
	const char *const vals[] = {"10", "trawler-consumer", "UTF8", conninfo, NULL};
	p->conn = PQconnectdbParams(keys, vals, 1);
	if (!p->conn) {
		rc = TR_ENOMEM;
		goto fail;
	}
	if (PQstatus(p->conn) != CONNECTION_OK) {
		pg_log_error(p, "postgres: cannot connect", NULL);
		goto fail;
	}
	PQsetNoticeProcessor(p->conn, pg_notice, NULL);
	if (create_table(p) != TR_OK)
		goto fail;
	tr_log(TR_LOG_INFO, "postgres sink ready", 4, "host", PQhost(p->conn), "port",
	       PQport(p->conn), "database", PQdb(p->conn), "table", p->table);
	*state = p;
	return TR_OK;
fail:
	pg_destroy(p, payload);
	return rc;
}

/* Write every buffered row in one transaction; true on COMMIT. */
static bool write_rows(pg *p, row **rows, size_t n)
{
	static const char head[] = "INSERT INTO %s (url, crawl_id, status, content_type, depth, "
				   "title, fields, fetched_at) VALUES ";
	static const char tail[] =
	    " ON CONFLICT (url) DO UPDATE SET crawl_id = EXCLUDED.crawl_id, status = "
	    "EXCLUDED.status, content_type = EXCLUDED.content_type, depth = EXCLUDED.depth, "
	    "title = EXCLUDED.title, fields = EXCLUDED.fields, fetched_at = EXCLUDED.fetched_at, "
	    "updated_at = now()";
	const char **vals = malloc(sizeof(*vals) * PG_COLS * PG_ROWS_PER_STMT);
	tr_buf sql;
	bool ok = false;
	tr_buf_init(&sql, PG_SQL_MAX);
	if (!vals) {
		tr_log(TR_LOG_ERROR, "postgres: out of memory", 0);
		return false;
	}
	if (!command(p, "postgres: cannot begin", "BEGIN", 0, NULL))
		goto out;
	for (size_t at = 0; at < n;) {
		size_t k = n - at < PG_ROWS_PER_STMT ? n - at : PG_ROWS_PER_STMT;
		int rc = tr_buf_printf(&sql, head, p->table);
		for (size_t i = 0; !rc && i < k; i++) {
			int b = (int)(i * PG_COLS);
			rc = tr_buf_printf(&sql,
					   "%s($%d, $%d, $%d::int, $%d, $%d::int, $%d, $%d::jsonb, "
					   "to_timestamp($%d::float8 / 1000))",
					   i ? ", " : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6,
					   b + 7, b + 8);
			memcpy(&vals[i * PG_COLS], rows[at + i]->v, sizeof(rows[at + i]->v));
		}
		if (!rc)
			rc = tr_buf_adds(&sql, tail);
		if (rc) {
			tr_log(TR_LOG_ERROR, "postgres: cannot build the statement", 0);
			goto rollback;
		}
		if (!command(p, "postgres: upsert failed", sql.data, (int)(k * PG_COLS), vals))
			goto rollback;
		tr_buf_reset(&sql);
		at += k;
	}
	ok = command(p, "postgres: commit failed", "COMMIT", 0, NULL);
	goto out;
rollback:
	PQclear(PQexec(p->conn, "ROLLBACK"));
out:
	tr_buf_free(&sql);
	free(vals);
	return ok;
}

static int row_cmp(const void *a, const void *b)
{
	const row *x = *(row *const *)a, *y = *(row *const *)b;
	int c = strcmp(x->v[C_URL], y->v[C_URL]);
	return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static int pg_flush(void *state, void *payload)
{
	pg *p = state;
	size_t n = 0;
	bool ok;
	if (p->nrows == 0)
		return TR_OK;
	/* One statement may not touch a row twice (a URL fetched twice in one
	 * batch, e.g. two redirects to one page): keep each URL's last row.
	 * Sorted by URL, consumers also lock rows in one order: no deadlocks. */
	qsort(p->rows, p->nrows, sizeof(*p->rows), row_cmp);
	for (size_t i = 0; i < p->nrows; i++) {
		if (i + 1 < p->nrows &&
		    strcmp(p->rows[i]->v[C_URL], p->rows[i + 1]->v[C_URL]) == 0) {
			p->bytes -= p->rows[i]->size;
			free(p->rows[i]);
			continue;
		}
		p->rows[n++] = p->rows[i];
	}
	p->nrows = n;
	ok = PQstatus(p->conn) == CONNECTION_OK && write_rows(p, p->rows, n);
	if (!ok && PQstatus(p->conn) != CONNECTION_OK) {
		tr_log(TR_LOG_WARN, "postgres: connection lost, reconnecting once", 2, "host",
		       PQhost(p->conn), "port", PQport(p->conn));
		PQreset(p->conn);
		if (PQstatus(p->conn) == CONNECTION_OK)
			ok = write_rows(p, p->rows, n);
		else
			pg_log_error(p, "postgres: cannot reconnect", NULL);
	}
	p->failing = !ok;
	if (!ok)
		return TR_EIO; /* rows stay buffered for the next try */
	for (size_t i = 0; i < n; i++)
		free(p->rows[i]);
	p->nrows = 0;
	p->bytes = 0;
	const char *sink[] = {"postgres"};
	tr_metrics_inc(TR_METRIC_ITEMS_WRITTEN, sink, (double)n);
	return TR_OK;
}

static int pg_process(void *state, tr_page_view *view, const char **reason, void *payload)
{
	pg *p = state;
	const tr_page_api *a = p->api;
	char status[16], depth[16], fetched[24];
	const char *src[PG_COLS];
	size_t size = sizeof(row);
	int64_t ms = a->fetched_at_ms(view);
	row *r;

	tr_buf_reset(&p->json);
	if (fields_json(p, tr_pipeline_page(view)) != TR_OK) {
		*reason = "postgres: page fields too large";
		return TR_ETOOBIG;
	}
	snprintf(status, sizeof(status), "%u", (unsigned)a->status(view));
	snprintf(depth, sizeof(depth), "%u", (unsigned)a->depth(view));
	snprintf(fetched, sizeof(fetched), "%lld", (long long)ms);
	src[C_URL] = a->url(view);
	src[C_CRAWL] = a->crawl_id(view);
	src[C_STATUS] = status;
	src[C_CTYPE] = a->content_type(view);
	src[C_DEPTH] = depth;
	src[C_TITLE] = a->title(view);
	src[C_FIELDS] = p->json.data;
	src[C_FETCHED] = ms > 0 ? fetched : NULL;
	if (src[C_CTYPE] && !*src[C_CTYPE])
		src[C_CTYPE] = NULL;
	if (!src[C_URL]) {
		*reason = "postgres: page without URL";
		return TR_EINVAL;
	}
	for (int i = 0; i < PG_COLS; i++)
		size += src[i] ? (i == C_FIELDS ? p->json.len + 1 : text_size(src[i])) : 0;
	if (p->nrows == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		row **nr = realloc(p->rows, cap * sizeof(*nr));
		if (!nr) {
			*reason = "postgres: out of memory";
			return TR_ENOMEM;
		}
		p->rows = nr;
		p->cap = cap;
	}
	if (!(r = malloc(size))) {
		*reason = "postgres: out of memory";
		return TR_ENOMEM;
	}
	char *dst = (char *)(r + 1);
	r->seq = p->seq++;
	r->size = size;
	for (int i = 0; i < PG_COLS; i++) {
		r->v[i] = src[i] ? dst : NULL;
		if (i == C_FIELDS) { /* already valid UTF-8 (jsonw) */
			memcpy(dst, src[i], p->json.len + 1);
			dst += p->json.len + 1;
		} else if (src[i]) {
			dst = copy_text(dst, src[i]);
		}
	}
	p->rows[p->nrows++] = r;
	p->bytes += size;
	/* Bound memory between the consumer's flushes; durable early is fine.
	 * A failure is already logged and the rows stay buffered: the
	 * consumer's own flush reports it and stops before committing. */
	if (p->bytes > PG_FLUSH_BYTES && !p->failing)
		pg_flush(p, payload);
	return TR_OK;
}

const tr_handler tr_handler_postgres = {
    TR_HANDLER_ABI_VERSION, "postgres", pg_create, pg_process, pg_flush, pg_destroy,
};
