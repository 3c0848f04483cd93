/* redis.h - one hiredis connection with URL config, timeouts, reconnects and
 * cached Lua scripts. Not thread-safe: one tr_redis per thread. */
#ifndef TR_REDIS_H
#define TR_REDIS_H

#include <hiredis/hiredis.h>

#include "common.h"

typedef struct tr_redis tr_redis;

/* Connect to `url` (redis://[[user]:password@]host[:port][/db]) with
 * `timeout_s` for connect and for each command, AUTH and SELECT as given.
 * On success *out is a new connection (free with tr_redis_free()). On
 * failure returns TR_EINVAL (bad URL) or TR_EIO with a message naming the
 * address in `err`, and *out is untouched. Does network I/O. */
int tr_redis_connect(tr_redis **out, const char *url, double timeout_s, char *err, size_t errlen);
void tr_redis_free(tr_redis *r);

/* Run one command given as an argv vector. On an I/O error the connection
 * is re-established (retrying for up to the reconnect window, default 30 s)
 * and the command is NOT re-sent (the caller decides whether it is safe):
 * NULL is returned then. Returns the reply (caller frees with
 * freeReplyObject()) or NULL; a Redis error reply is returned as a reply of
 * type REDIS_REPLY_ERROR. */
redisReply *tr_redis_argv(tr_redis *r, int argc, const char **argv, const size_t *lens);

/* printf-style command (hiredis format). Same contract as tr_redis_argv(). */
redisReply *tr_redis_cmd(tr_redis *r, const char *fmt, ...);

/* Pipelining: queue commands, then read their replies in order. Append
 * returns 0 or TR_ENOMEM. get_reply returns a reply or NULL on I/O error
 * (the connection is then reset and the remaining replies are lost). */
int tr_redis_append_argv(tr_redis *r, int argc, const char **argv, const size_t *lens);
redisReply *tr_redis_get_reply(tr_redis *r);

/* A Lua script cached by SHA1. Define with TR_REDIS_SCRIPT(name, source). */
typedef struct tr_redis_script {
	const char *source;
	char sha[41]; /* filled by the first use */
} tr_redis_script;

/* EVALSHA `script` with argv (keys first, numkeys given); loads the script on
 * first use and again on NOSCRIPT (the script cache is lost on restart).
 * Same contract as tr_redis_argv(). */
redisReply *tr_redis_eval(tr_redis *r, tr_redis_script *script, int numkeys, int argc,
			  const char **argv, const size_t *lens);

/* Pipelined EVALSHA: the script must have been loaded (tr_redis_script_load). */
int tr_redis_script_load(tr_redis *r, tr_redis_script *script);
int tr_redis_append_eval(tr_redis *r, tr_redis_script *script, int numkeys, int argc,
			 const char **argv, const size_t *lens);

/* True when a connection is up (after connect or a successful reconnect).
 * A caller whose command only reads may re-send it once when a call
 * returned NULL and this is true. */
bool tr_redis_connected(const tr_redis *r);

/* The last error text (static storage inside r). */
const char *tr_redis_error(const tr_redis *r);

#endif
