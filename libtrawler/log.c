/* log.c - structured, levelled logging to stderr (logfmt or JSON lines). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "metrics.h"

#define LOG_LINE_MAX 4096

static char log_component[32] = "trawler";
static tr_log_format log_fmt = TR_LOG_LOGFMT;
static tr_log_level log_min = TR_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tr_log_setup(const char *component, tr_log_format fmt, tr_log_level min)
{
	snprintf(log_component, sizeof(log_component), "%s", component ? component : "trawler");
	log_fmt = fmt;
	log_min = min;
}

int tr_log_parse_level(tr_log_level *out, const char *s)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(level_names); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (tr_log_level)i;
			return TR_OK;
		}
	}
	return TR_EINVAL;
}

int tr_log_parse_format(tr_log_format *out, const char *s)
{
	int rc = TR_OK;
	if (strcmp(s, "logfmt") == 0)
		*out = TR_LOG_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = TR_LOG_JSON;
	else
		rc = TR_EINVAL;
	return rc;
}

/* Set when the line being built lost bytes to LOG_LINE_MAX. */
static _Thread_local bool line_cut;

/* Append `s` to buf at *pos, escaped for the current format. Truncates. */
static void put_value(char *buf, size_t *pos, const char *s, bool quote_always)
{
	size_t p = *pos;
	bool quote = quote_always || *s == '\0' || strpbrk(s, " =\"\t\n\r") != NULL;
	if (quote && p < LOG_LINE_MAX - 1)
		buf[p++] = '"';
	for (; *s && p < LOG_LINE_MAX - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[p++] = '\\';
			buf[p++] = (char)c;
		} else if (c == '\n') {
			buf[p++] = '\\';
			buf[p++] = 'n';
		} else if (c < 0x20) {
			p += (size_t)snprintf(buf + p, 7, "\\u%04x", c);
		} else {
			buf[p++] = (char)c;
		}
	}
	if (*s)
		line_cut = true;
	if (quote && p < LOG_LINE_MAX - 1)
		buf[p++] = '"';
	*pos = p;
}

static void put_raw(char *buf, size_t *pos, const char *s)
{
	size_t n = strlen(s);
	if (*pos + n >= LOG_LINE_MAX - 2) {
		line_cut = line_cut || *pos + n > LOG_LINE_MAX - 2;
		n = LOG_LINE_MAX - 2 - *pos;
	}
	memcpy(buf + *pos, s, n);
	*pos += n;
}

static void put_kv(char *buf, size_t *pos, const char *k, const char *v, bool first)
{
	if (log_fmt == TR_LOG_JSON) {
		put_raw(buf, pos, first ? "{" : ",");
		put_value(buf, pos, k, true);
		put_raw(buf, pos, ":");
		put_value(buf, pos, v, true);
	} else {
		if (!first)
			put_raw(buf, pos, " ");
		put_raw(buf, pos, k);
		put_raw(buf, pos, "=");
		put_value(buf, pos, v, false);
	}
}

static void log_emit(tr_log_level lvl, const char *msg, int nkv, va_list ap)
{
	char buf[LOG_LINE_MAX];
	char ts[40];
	size_t pos = 0;
	struct timespec now;
	struct tm tm;

	line_cut = false;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	put_kv(buf, &pos, "ts", ts, true);
	put_kv(buf, &pos, "level", level_names[lvl], false);
	put_kv(buf, &pos, "component", log_component, false);
	put_kv(buf, &pos, "msg", msg, false);
	for (int i = 0; i < nkv; i++) {
		const char *k = va_arg(ap, const char *);
		const char *v = va_arg(ap, const char *);
		if (k && v)
			put_kv(buf, &pos, k, v, false);
	}
	if (log_fmt == TR_LOG_JSON)
		put_raw(buf, &pos, "}");
	buf[pos++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, pos);
	TR_UNUSED(w);
	if (line_cut)
		tr_metrics_limit_hit("log_line");
}

void tr_log(tr_log_level lvl, const char *msg, int nkv, ...)
{
	va_list ap;
	if (lvl < log_min)
		return;
	va_start(ap, nkv);
	log_emit(lvl, msg, nkv, ap);
	va_end(ap);
}

static void log_emit0(tr_log_level lvl, const char *msg, ...)
{
	va_list ap;
	va_start(ap, msg);
	log_emit(lvl, msg, 0, ap);
	va_end(ap);
}

void tr_logf(tr_log_level lvl, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	if (lvl < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_emit0(lvl, msg);
}
