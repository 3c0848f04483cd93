/* log.h - structured, levelled logging: one line per event, logfmt or JSON. */
#ifndef TR_LOG_H
#define TR_LOG_H

#include <stdarg.h>

typedef enum { TR_LOG_DEBUG = 0, TR_LOG_INFO, TR_LOG_WARN, TR_LOG_ERROR } tr_log_level;
typedef enum { TR_LOG_LOGFMT = 0, TR_LOG_JSON } tr_log_format;

/* Configure the process-wide logger. `component` (e.g. "producer") is copied.
 * Not thread-safe against concurrent tr_log calls; call once at start-up. */
void tr_log_setup(const char *component, tr_log_format fmt, tr_log_level min);
/* Parse "debug|info|warn|error" / "logfmt|json". Return 0, or TR_EINVAL. */
int tr_log_parse_level(tr_log_level *out, const char *s);
int tr_log_parse_format(tr_log_format *out, const char *s);

/* Log one event to stderr as a single line: `msg` is a fixed event text, then
 * `nkv` pairs of (const char *key, const char *value) follow as varargs.
 * Values are quoted/escaped as needed; NULL values are skipped. Never pass a
 * page body or a secret. Thread-safe (one write(2) per line). */
void tr_log(tr_log_level lvl, const char *msg, int nkv, ...);

/* printf-style convenience: the formatted text becomes the `msg` field. */
void tr_logf(tr_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tr_debug(...) tr_logf(TR_LOG_DEBUG, __VA_ARGS__)
#define tr_info(...) tr_logf(TR_LOG_INFO, __VA_ARGS__)
#define tr_warn(...) tr_logf(TR_LOG_WARN, __VA_ARGS__)
#define tr_error(...) tr_logf(TR_LOG_ERROR, __VA_ARGS__)

#endif
