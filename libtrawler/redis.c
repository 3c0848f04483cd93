/* redis.c - hiredis connection: URL parsing, timeouts, reconnect, scripts. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "url.h"
#include "redis.h"

#define RECONNECT_WINDOW_MS 30000

struct tr_redis {
	redisContext *c;
	char host[256];
	int port;
	char *user;
	char *password;
	int db;
	struct timeval tv;
	char err[256];
};

static int parse_url(tr_redis *r, const char *url, char *err, size_t errlen)
{
	int rc = TR_EINVAL;
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *pw = NULL, *path = NULL;
	char shown[512]; /* url for messages: no password */
	CURLU *u = curl_url();
	if (!u)
		return TR_ENOMEM;
	tr_url_redact(shown, sizeof(shown), url);
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "redis") != 0 ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen,
			 "invalid Redis URL '%s' (expected redis://[:password@]host[:port][/db])",
			 shown);
		goto out;
	}
	snprintf(r->host, sizeof(r->host), "%s", host);
	r->port = 6379;
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
		r->port = atoi(port);
	if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) == CURLUE_OK && *user)
		r->user = strdup(user);
	if (curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE) == CURLUE_OK && *pw)
		r->password = strdup(pw);
	r->db = 0;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && path[0] == '/' && path[1]) {
		char *end;
		long db = strtol(path + 1, &end, 10);
		if (*end || db < 0 || db > 100000) {
			snprintf(err, errlen, "invalid Redis database in URL '%s'", shown);
			goto out;
		}
		r->db = (int)db;
	}
	rc = TR_OK;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(pw);
	curl_free(path);
	curl_url_cleanup(u);
	return rc;
}

/* Connect, AUTH, SELECT. Returns 0 or TR_EIO with r->err set. */
static int do_connect(tr_redis *r)
{
	int rc = TR_EIO;
	redisReply *rep = NULL;
	if (r->c) {
		redisFree(r->c);
		r->c = NULL;
	}
	r->c = redisConnectWithTimeout(r->host, r->port, r->tv);
	if (!r->c || r->c->err) {
		snprintf(r->err, sizeof(r->err), "cannot connect to Redis at %s:%d: %s", r->host,
			 r->port, r->c ? r->c->errstr : "out of memory");
		goto out;
	}
	redisSetTimeout(r->c, r->tv);
	if (r->password) {
		if (r->user)
			rep = redisCommand(r->c, "AUTH %s %s", r->user, r->password);
		else
			rep = redisCommand(r->c, "AUTH %s", r->password);
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			snprintf(r->err, sizeof(r->err), "Redis at %s:%d: authentication failed",
				 r->host, r->port);
			goto out;
		}
		freeReplyObject(rep);
		rep = NULL;
	}
	rep = redisCommand(r->c, "SELECT %d", r->db);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		snprintf(r->err, sizeof(r->err), "Redis at %s:%d: SELECT %d failed: %s", r->host,
			 r->port, r->db, rep ? rep->str : (r->c->errstr));
		goto out;
	}
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	if (rc != TR_OK && r->c) {
		redisFree(r->c);
		r->c = NULL;
	}
	return rc;
}

int tr_redis_connect(tr_redis **out, const char *url, double timeout_s, char *err, size_t errlen)
{
	int rc;
	tr_redis *r = calloc(1, sizeof(*r));
	if (!r)
		return TR_ENOMEM;
	r->tv.tv_sec = (time_t)timeout_s;
	r->tv.tv_usec = (suseconds_t)((timeout_s - (double)r->tv.tv_sec) * 1e6);
	if ((rc = parse_url(r, url, err, errlen)) != TR_OK)
		goto out;
	if ((rc = do_connect(r)) != TR_OK) {
		snprintf(err, errlen, "%s", r->err);
		goto out;
	}
	*out = r;
	r = NULL;
out:
	tr_redis_free(r);
	return rc;
}

void tr_redis_free(tr_redis *r)
{
	if (!r)
		return;
	if (r->c)
		redisFree(r->c);
	free(r->user);
	free(r->password);
	free(r);
}

const char *tr_redis_error(const tr_redis *r)
{
	return r->err;
}

/* After an I/O error: reconnect, retrying within the window. */
static void reconnect(tr_redis *r)
{
	int64_t deadline = tr_mono_ms() + RECONNECT_WINDOW_MS;
	snprintf(r->err, sizeof(r->err), "Redis I/O error: %s",
		 r->c ? r->c->errstr : "not connected");
	tr_log(TR_LOG_WARN, "redis connection lost, reconnecting", 1, "error", r->err);
	while (do_connect(r) != TR_OK) {
		if (tr_mono_ms() > deadline) {
			tr_log(TR_LOG_ERROR, "redis reconnect failed", 1, "error", r->err);
			return;
		}
		usleep(250000);
	}
	tr_log(TR_LOG_INFO, "redis reconnected", 0);
}

bool tr_redis_connected(const tr_redis *r)
{
	return r->c != NULL;
}

static bool ensure_connected(tr_redis *r)
{
	if (!r->c)
		reconnect(r);
	return r->c != NULL;
}

redisReply *tr_redis_argv(tr_redis *r, int argc, const char **argv, const size_t *lens)
{
	if (!ensure_connected(r))
		return NULL;
	redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
	if (!rep)
		reconnect(r);
	return rep;
}

redisReply *tr_redis_cmd(tr_redis *r, const char *fmt, ...)
{
	va_list ap;
	if (!ensure_connected(r))
		return NULL;
	va_start(ap, fmt);
	redisReply *rep = redisvCommand(r->c, fmt, ap);
	va_end(ap);
	if (!rep)
		reconnect(r);
	return rep;
}

int tr_redis_append_argv(tr_redis *r, int argc, const char **argv, const size_t *lens)
{
	if (!ensure_connected(r))
		return TR_EIO;
	return redisAppendCommandArgv(r->c, argc, argv, lens) == REDIS_OK ? TR_OK : TR_ENOMEM;
}

redisReply *tr_redis_get_reply(tr_redis *r)
{
	void *rep = NULL;
	if (!r->c)
		return NULL;
	if (redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
		reconnect(r);
		return NULL;
	}
	return rep;
}

int tr_redis_script_load(tr_redis *r, tr_redis_script *script)
{
	int rc = TR_EIO;
	redisReply *rep = tr_redis_cmd(r, "SCRIPT LOAD %s", script->source);
	if (rep && rep->type == REDIS_REPLY_STRING && rep->len == 40) {
		memcpy(script->sha, rep->str, 41);
		rc = TR_OK;
	} else {
		snprintf(r->err, sizeof(r->err), "SCRIPT LOAD failed: %s",
			 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no reply");
	}
	if (rep)
		freeReplyObject(rep);
	return rc;
}

#define MAX_EVAL_ARGS 65536

/* Build the EVALSHA argv: EVALSHA sha numkeys args... (malloc'd arrays). */
static int eval_argv(tr_redis_script *script, int numkeys, int argc, const char **argv,
		     const size_t *lens, const char ***av_out, size_t **lv_out, char *nk,
		     size_t nklen)
{
	if (argc < 0 || argc > MAX_EVAL_ARGS)
		return TR_EINVAL;
	const char **av = malloc(((size_t)argc + 3) * sizeof(*av));
	size_t *lv = malloc(((size_t)argc + 3) * sizeof(*lv));
	if (!av || !lv) {
		free(av);
		free(lv);
		return TR_ENOMEM;
	}
	snprintf(nk, nklen, "%d", numkeys);
	av[0] = "EVALSHA";
	lv[0] = 7;
	av[1] = script->sha;
	lv[1] = 40;
	av[2] = nk;
	lv[2] = strlen(nk);
	for (int i = 0; i < argc; i++) {
		av[i + 3] = argv[i];
		lv[i + 3] = lens ? lens[i] : strlen(argv[i]);
	}
	*av_out = av;
	*lv_out = lv;
	return TR_OK;
}

redisReply *tr_redis_eval(tr_redis *r, tr_redis_script *script, int numkeys, int argc,
			  const char **argv, const size_t *lens)
{
	redisReply *rep = NULL;
	const char **av = NULL;
	size_t *lv = NULL;
	char nk[16];
	if (!script->sha[0] && tr_redis_script_load(r, script) != TR_OK)
		return NULL;
	if (eval_argv(script, numkeys, argc, argv, lens, &av, &lv, nk, sizeof(nk)) != TR_OK)
		return NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		rep = tr_redis_argv(r, argc + 3, av, lv);
		if (rep && rep->type == REDIS_REPLY_ERROR &&
		    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(rep);
			rep = NULL;
			if (tr_redis_script_load(r, script) != TR_OK)
				break;
			continue;
		}
		break;
	}
	free(av);
	free(lv);
	return rep;
}

int tr_redis_append_eval(tr_redis *r, tr_redis_script *script, int numkeys, int argc,
			 const char **argv, const size_t *lens)
{
	const char **av = NULL;
	size_t *lv = NULL;
	char nk[16];
	int rc = eval_argv(script, numkeys, argc, argv, lens, &av, &lv, nk, sizeof(nk));
	if (rc == TR_OK)
		rc = tr_redis_append_argv(r, argc + 3, av, lv);
	free(av);
	free(lv);
	return rc;
}
