/* ipslots.c - per-IP start slots shared by producers through Redis. */
#include <stdio.h>
#include <string.h>

#include "ipslots.h"
#include "log.h"

#define LEASE_EXTRA_MS 10000
#define CAP_POLL_MS 50

/* KEYS: next-start key, in-flight set. ARGV: delay ms, max in flight,
 * member, lease ms. Returns 0 (slot taken) or ms to wait (-1: at the cap). */
static tr_redis_script acquire_script = {
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if nxt > now then return nxt - now end\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return -1 end\n"
    "local lease = tonumber(ARGV[4])\n"
    "redis.call('ZADD', KEYS[2], now + lease, ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[2], lease)\n"
    "local d = tonumber(ARGV[1])\n"
    "if d > 0 then redis.call('SET', KEYS[1], now + d, 'PX', d) end\n"
    "return 0\n",
    ""};

/* KEYS: next-start key. ARGV: delay ms. Moves the next start to now +
 * delay unless it is already later. */
static tr_redis_script sent_script = {
    "local d = tonumber(ARGV[1])\n"
    "if d <= 0 then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if now + d > nxt then redis.call('SET', KEYS[1], now + d, 'PX', d) end\n"
    "return 0\n",
    ""};

static void log_failure(const char *what, const char *addr, redisReply *rep, const prod *p)
{
	static int64_t last;
	int64_t now = tr_mono_ms();
	if (now - last < 10000)
		return;
	last = now;
	tr_log(TR_LOG_WARN, "per-IP politeness state unavailable in Redis (local limits only)", 3,
	       "step", what, "address", addr, "error",
	       rep && rep->type == REDIS_REPLY_ERROR ? rep->str : tr_redis_error(p->redis));
}

int64_t ipslots_acquire(prod *p, job *j, const char *addr, int64_t delay_ms)
{
	char next_key[HOST_KEY_MAX + 32], conn_key[HOST_KEY_MAX + 32], delay[24], cap[24],
	    member[160], lease[24];
	int64_t wait = 0;
	uint64_t slot = ++p->next_slot;
	snprintf(next_key, sizeof(next_key), "tr:polite:{%s}", addr);
	snprintf(conn_key, sizeof(conn_key), "tr:politeconn:{%s}", addr);
	snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
	snprintf(cap, sizeof(cap), "%ld", p->s->host_connections);
	snprintf(member, sizeof(member), "%s:%llu", p->s->worker_id ? p->s->worker_id : "",
		 (unsigned long long)slot);
	snprintf(lease, sizeof(lease), "%lld", (long long)(p->s->timeout * 1000) + LEASE_EXTRA_MS);
	const char *argv[] = {next_key, conn_key, delay, cap, member, lease};
	redisReply *rep = tr_redis_eval(p->redis, &acquire_script, 2, 6, argv, NULL);
	if (rep && rep->type == REDIS_REPLY_INTEGER) {
		wait = rep->integer < 0 ? CAP_POLL_MS : rep->integer;
	} else {
		log_failure("acquire", addr, rep, p);
		slot = 0; /* fail open: fetch under the local limits */
	}
	if (rep)
		freeReplyObject(rep);
	if (wait == 0)
		j->slot = slot;
	return wait;
}

void ipslots_sent(prod *p, const char *addr, int64_t delay_ms)
{
	char next_key[HOST_KEY_MAX + 32], delay[24];
	snprintf(next_key, sizeof(next_key), "tr:polite:{%s}", addr);
	snprintf(delay, sizeof(delay), "%lld", (long long)delay_ms);
	const char *argv[] = {next_key, delay};
	redisReply *rep = tr_redis_eval(p->redis, &sent_script, 1, 2, argv, NULL);
	if (!rep || rep->type != REDIS_REPLY_INTEGER)
		log_failure("sent", addr, rep, p);
	if (rep)
		freeReplyObject(rep);
}

void ipslots_release(prod *p, job *j)
{
	char conn_key[HOST_KEY_MAX + 32], member[160];
	if (!j->slot)
		return;
	snprintf(conn_key, sizeof(conn_key), "tr:politeconn:{%s}", j->polite_key);
	snprintf(member, sizeof(member), "%s:%llu", p->s->worker_id ? p->s->worker_id : "",
		 (unsigned long long)j->slot);
	redisReply *rep = tr_redis_cmd(p->redis, "ZREM %s %s", conn_key, member);
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		log_failure("release", j->polite_key, rep, p);
	if (rep)
		freeReplyObject(rep);
	j->slot = 0;
}
