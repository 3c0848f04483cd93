/* crawlstate.c - Redis-side dedup, pending count and counters of a crawl. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crawlstate.h"
#include "log.h"
#include "metrics.h"

/* KEYS[1] meta. ARGV: prefix, parent fp, parent bucket, now_ms, max URLs
 * per host (0 = no cap), then quintuples (bucket, member, fp, depth, url).
 * A pending entry holds "parent|admitted_ms|depth|url" (depth "3s" for a
 * sitemap: TR_CRAWL_SITEMAP, "0r" for a seed to render: TR_CRAWL_RENDER); tr:{CID}:hosts
 * counts admissions per host when capped. Returns one TR_ADMIT_* per URL. */
static tr_redis_script admit_script = {
    "local prefix, parent, pb, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local maxh = tonumber(ARGV[5])\n"
    "local live = parent == '0' or redis.call('HEXISTS', prefix..'p:'..pb, parent) == 1\n"
    "local mine = parent .. '|'\n"
    "local function fresh(b, m)\n"
    "  if string.sub(m, 1, 5) ~= 'bits:' then return redis.call('SADD', prefix..'s:'..b, m) == 1 "
    "end\n"
    "  local args = {prefix..'bloom'}\n"
    "  for pos in string.gmatch(string.sub(m, 6), '%d+') do\n"
    "    args[#args+1] = 'SET'; args[#args+1] = 'u1'; args[#args+1] = pos; args[#args+1] = 1\n"
    "  end\n"
    "  for _, v in ipairs(redis.call('BITFIELD', unpack(args))) do if v == 0 then return true end "
    "end\n"
    "  return false\n"
    "end\n"
    "local out, added = {}, 0\n"
    "for i = 6, #ARGV, 5 do\n"
    "  local b, m, fp, url = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+4]\n"
    "  if fresh(b, m) then\n"
    "    local capped = false\n"
    "    if maxh > 0 then\n"
    "      local h = string.match(url, '^%a+://([^/?#]+)') or ''\n"
    "      capped = redis.call('HINCRBY', prefix..'hosts', h, 1) > maxh\n"
    "    end\n"
    "    if capped then\n"
    "      out[#out+1] = 3\n"
    "    else\n"
    "      redis.call('HSET', prefix..'p:'..b, fp, mine..now..'|'..ARGV[i+3]..'|'..url)\n"
    "      added = added + 1\n"
    "      out[#out+1] = 1\n"
    "    end\n"
    "  else\n"
    "    local v = live and redis.call('HGET', prefix..'p:'..b, fp)\n"
    "    if v and string.sub(v, 1, #mine) == mine then out[#out+1] = 2 else out[#out+1] = 0 end\n"
    "  end\n"
    "end\n"
    "if added > 0 then\n"
    "  redis.call('HINCRBY', KEYS[1], 'admitted', added)\n"
    "  redis.call('HINCRBY', KEYS[1], 'pending', added)\n"
    "end\n"
    "return out\n",
    ""};

/* KEYS[1] meta. ARGV: prefix, bucket, cutoff_ms, now_ms, max. Pending
 * entries admitted (or last re-enqueued) before cutoff and not claimed by a
 * pages message (tr_crawl_claim_pages) get a fresh time and are returned as fp,
 * parent, "depth|url" triples. */
static tr_redis_script reap_script = {
    "local key, claims = ARGV[1]..'p:'..ARGV[2], ARGV[1]..'claims'\n"
    "local cutoff, now, max = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])\n"
    "local all = redis.call('HGETALL', key)\n"
    "local out = {}\n"
    "for i = 1, #all, 2 do\n"
    "  local fp, v = all[i], all[i+1]\n"
    "  local p1 = string.find(v, '|', 1, true)\n"
    "  local p2 = p1 and string.find(v, '|', p1 + 1, true)\n"
    "  if p2 and (tonumber(string.sub(v, p1 + 1, p2 - 1)) or 0) < cutoff\n"
    "     and redis.call('HEXISTS', claims, fp) == 0 then\n"
    "    local parent, rest = string.sub(v, 1, p1 - 1), string.sub(v, p2 + 1)\n"
    "    redis.call('HSET', key, fp, parent..'|'..now..'|'..rest)\n"
    "    out[#out+1] = fp; out[#out+1] = parent; out[#out+1] = rest\n"
    "    if #out >= max * 3 then break end\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""};

/* KEYS[1] meta. ARGV: prefix, now_ms, then triples (bucket, fp, failed).
 * Also drops the entries' claims. */
static tr_redis_script done_script = {
    "local done, failed = 0, 0\n"
    "for i = 3, #ARGV, 3 do\n"
    "  redis.call('HDEL', ARGV[1]..'claims', ARGV[i+1])\n"
    "  if redis.call('HDEL', ARGV[1]..'p:'..ARGV[i], ARGV[i+1]) == 1 then\n"
    "    done = done + 1\n"
    "    if ARGV[i+2] == '1' then failed = failed + 1 end\n"
    "  end\n"
    "end\n"
    "if done > 0 then\n"
    "  local left = redis.call('HINCRBY', KEYS[1], 'pending', -done)\n"
    "  redis.call('HINCRBY', KEYS[1], 'done', done)\n"
    "  if failed > 0 then redis.call('HINCRBY', KEYS[1], 'failed', failed) end\n"
    "  if left <= 0 then redis.call('HSET', KEYS[1], 'finished_ms', ARGV[2]) end\n"
    "end\n"
    "return done\n",
    ""};

/* KEYS[1] meta. ARGV: prefix, then triples (bucket, fp, claim). A pending
 * entry not claimed, or claimed with this same claim, is claimed (1); a
 * pending entry claimed by another message is left alone (2); an entry not
 * pending (finished already) gives 0. */
static tr_redis_script claim_script = {
    "local claims = ARGV[1]..'claims'\n"
    "local out = {}\n"
    "for i = 2, #ARGV, 3 do\n"
    "  local fp, claim = ARGV[i+1], ARGV[i+2]\n"
    "  if redis.call('HEXISTS', ARGV[1]..'p:'..ARGV[i], fp) == 0 then\n"
    "    out[#out+1] = 0\n"
    "  else\n"
    "    local cur = redis.call('HGET', claims, fp)\n"
    "    if not cur or cur == claim then\n"
    "      redis.call('HSET', claims, fp, claim)\n"
    "      out[#out+1] = 1\n"
    "    else\n"
    "      out[#out+1] = 2\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return out\n",
    ""};

#define NUM_LEN 24

tr_crawl_slot tr_crawl_slot_of(uint64_t fp, long nbuckets)
{
	tr_crawl_slot s;
	s.bucket = (long)((fp >> 32) % (uint64_t)(nbuckets > 0 ? nbuckets : 1));
	s.member = (int32_t)(uint32_t)(fp & 0xffffffffu);
	return s;
}

static void key_of(char *out, size_t len, const char *cid, const char *suffix)
{
	snprintf(out, len, "tr:{%s}:%s", cid, suffix);
}

void tr_crawl_bloom_size(double n, double p, uint64_t *bits, int *k)
{
	double m = ceil(-n * log(p) / (M_LN2 * M_LN2));
	if (m < 64)
		m = 64;
	if (m > 4294967295.0) /* one Redis string: 2^32 bits */
		m = 4294967295.0;
	int kk = (int)lround(m / n * M_LN2);
	*bits = (uint64_t)m;
	*k = kk < 1 ? 1 : kk > 20 ? 20 : kk;
}

int tr_crawl_create(tr_redis *r, const char *cid, const tr_crawl_dedup *dd,
		    const char *const *scope, int nscope)
{
	long dedup_buckets = dd->buckets;
	int rc = TR_EIO;
	char meta[160];
	redisReply *rep = NULL;
	key_of(meta, sizeof(meta), cid, "meta");

	rep = tr_redis_cmd(r, "HSETNX %s created_ms %lld", meta, (long long)tr_now_ms());
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		goto out;
	freeReplyObject(rep);
	rep = tr_redis_cmd(r, "HSETNX %s dedup_buckets %ld", meta, dedup_buckets);
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		goto out;
	if (dd->bloom) {
		uint64_t bits;
		int k;
		tr_crawl_bloom_size(dd->bloom_capacity, dd->bloom_error, &bits, &k);
		freeReplyObject(rep);
		rep = tr_redis_cmd(r, "HSETNX %s dedup_mode bloom:%llu:%d", meta,
				   (unsigned long long)bits, k);
		if (!rep || rep->type == REDIS_REPLY_ERROR)
			goto out;
	}
	freeReplyObject(rep);
	rep = tr_redis_cmd(r, "SADD tr:crawls %s", cid);
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		goto out;
	freeReplyObject(rep);
	rep = NULL;
	if (nscope > 0) {
		/* scope is stored as a space-separated list in the meta hash,
		 * merged with what is there */
		tr_crawl_info info;
		char *merged = NULL;
		size_t mlen = 0;
		memset(&info, 0, sizeof(info));
		if (tr_crawl_info_load(r, cid, &info) != TR_OK)
			goto out;
		for (int i = 0; i < info.nscope; i++)
			mlen += strlen(info.scope[i]) + 1;
		for (int i = 0; i < nscope; i++)
			mlen += strlen(scope[i]) + 1;
		merged = calloc(1, mlen + 1);
		if (!merged) {
			tr_crawl_info_clear(&info);
			rc = TR_ENOMEM;
			goto out;
		}
		for (int i = 0; i < info.nscope; i++) {
			strcat(merged, info.scope[i]);
			strcat(merged, " ");
		}
		for (int i = 0; i < nscope; i++) {
			if (tr_crawl_in_scope(&info, scope[i]))
				continue;
			strcat(merged, scope[i]);
			strcat(merged, " ");
		}
		tr_crawl_info_clear(&info);
		rep = tr_redis_cmd(r, "HSET %s scope %s", meta, merged);
		free(merged);
		if (!rep || rep->type == REDIS_REPLY_ERROR)
			goto out;
	}
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	return rc;
}

void tr_crawl_info_clear(tr_crawl_info *info)
{
	for (int i = 0; i < info->nscope; i++)
		free(info->scope[i]);
	info->nscope = 0;
}

int tr_crawl_info_load(tr_redis *r, const char *cid, tr_crawl_info *info)
{
	int rc = TR_EIO;
	char meta[160];
	tr_crawl_info tmp;
	redisReply *rep = NULL;
	memset(&tmp, 0, sizeof(tmp));
	key_of(meta, sizeof(meta), cid, "meta");
	rep = tr_redis_cmd(r, "HMGET %s dedup_buckets scope dedup_mode", meta);
	if (!rep && tr_redis_connected(r)) /* a read: safe to re-send after a reconnect */
		rep = tr_redis_cmd(r, "HMGET %s dedup_buckets scope dedup_mode", meta);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3)
		goto out;
	if (rep->element[0]->type != REDIS_REPLY_STRING) {
		rc = TR_ENOTFOUND;
		goto out;
	}
	snprintf(tmp.crawl_id, sizeof(tmp.crawl_id), "%s", cid);
	tmp.dedup_buckets = atol(rep->element[0]->str);
	if (tmp.dedup_buckets < 1)
		tmp.dedup_buckets = 1;
	if (rep->element[2]->type == REDIS_REPLY_STRING &&
	    strncmp(rep->element[2]->str, "bloom:", 6) == 0) {
		unsigned long long bits = 0;
		int k = 0;
		if (sscanf(rep->element[2]->str + 6, "%llu:%d", &bits, &k) == 2 && bits >= 64 &&
		    k >= 1 && k <= 20) {
			tmp.bloom = true;
			tmp.bloom_bits = bits;
			tmp.bloom_k = k;
		}
	}
	if (rep->element[1]->type == REDIS_REPLY_STRING) {
		char *save = NULL;
		char *copy = strdup(rep->element[1]->str);
		if (!copy) {
			rc = TR_ENOMEM;
			goto out;
		}
		char *tok;
		for (tok = strtok_r(copy, " ", &save); tok && tmp.nscope < TR_CRAWL_MAX_SCOPE;
		     tok = strtok_r(NULL, " ", &save)) {
			if (!(tmp.scope[tmp.nscope] = strdup(tok))) {
				free(copy);
				tr_crawl_info_clear(&tmp);
				rc = TR_ENOMEM;
				goto out;
			}
			tmp.nscope++;
		}
		if (tok)
			tr_metrics_limit_hit("scope_hosts"); /* more hosts than kept */
		free(copy);
	}
	tmp.loaded_ms = tr_mono_ms();
	*info = tmp;
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	return rc;
}

bool tr_crawl_in_scope(const tr_crawl_info *info, const char *host_key)
{
	for (int i = 0; i < info->nscope; i++)
		if (strcmp(info->scope[i], host_key) == 0)
			return true;
	return false;
}

/* Build the admit argv (see admit_script). Numbers live in `nums`
 * (NUM_LEN bytes each), URLs are borrowed. */
static int admit_argv(const tr_crawl_info *info, uint64_t parent_fp, uint32_t depth,
		      const uint64_t *fps, char *const *urls, size_t n, const char ***av_out,
		      char **nums_out, char *meta, size_t metalen, char *prefix, size_t prefixlen)
{
	size_t argc = 1 + 5 + 5 * n;
	const char **av = malloc(argc * sizeof(*av));
	/* a Bloom member is "bits:" + k positions of up to 10 digits */
	size_t slot = info->bloom ? (size_t)(8 + 11 * info->bloom_k) : NUM_LEN;
	char *nums = malloc((5 + 3 * n) * NUM_LEN + n * slot);
	if (!av || !nums) {
		free(av);
		free(nums);
		return TR_ENOMEM;
	}
	key_of(meta, metalen, info->crawl_id, "meta");
	key_of(prefix, prefixlen, info->crawl_id, "");
	tr_crawl_slot ps = tr_crawl_slot_of(parent_fp, info->dedup_buckets);
	av[0] = meta;
	av[1] = prefix;
	snprintf(nums, NUM_LEN, "%" PRId64, (int64_t)parent_fp);
	snprintf(nums + NUM_LEN, NUM_LEN, "%ld", ps.bucket);
	snprintf(nums + 2 * NUM_LEN, NUM_LEN, "%lld", (long long)tr_now_ms());
	/* the pending entry's depth field: "3", "3s" for a sitemap, "0r" for a
	 * seed to render */
	snprintf(nums + 3 * NUM_LEN, NUM_LEN, "%" PRIu32 "%s%s", depth & ~TR_CRAWL_MARKS,
		 (depth & TR_CRAWL_SITEMAP) ? "s" : "", (depth & TR_CRAWL_RENDER) ? "r" : "");
	snprintf(nums + 4 * NUM_LEN, NUM_LEN, "%ld", info->max_per_host);
	av[2] = nums;
	av[3] = nums + NUM_LEN;
	av[4] = nums + 2 * NUM_LEN;
	av[5] = nums + 4 * NUM_LEN;
	for (size_t i = 0; i < n; i++) {
		tr_crawl_slot s = tr_crawl_slot_of(fps[i], info->dedup_buckets);
		char *b = nums + (5 + 3 * i) * NUM_LEN;
		snprintf(b, NUM_LEN, "%ld", s.bucket);
		snprintf(b + NUM_LEN, NUM_LEN, "%" PRId32, s.member);
		snprintf(b + 2 * NUM_LEN, NUM_LEN, "%" PRId64, (int64_t)fps[i]);
		av[6 + 5 * i] = b;
		av[7 + 5 * i] = b + NUM_LEN;
		if (info->bloom) { /* double hashing: h1 + j*h2 mod m */
			char *m = nums + (5 + 3 * n) * NUM_LEN + i * slot;
			uint64_t h1 = fps[i] & 0xffffffffu, h2 = (fps[i] >> 32) | 1;
			int len = snprintf(m, slot, "bits:");
			for (int j = 0; j < info->bloom_k; j++)
				len += snprintf(m + len, slot - (size_t)len, "%s%" PRIu64,
						j ? "," : "",
						(h1 + (uint64_t)j * h2) % info->bloom_bits);
			av[7 + 5 * i] = m;
		}
		av[8 + 5 * i] = b + 2 * NUM_LEN;
		av[9 + 5 * i] = nums + 3 * NUM_LEN; /* depth, shared */
		av[10 + 5 * i] = urls[i];
	}
	*av_out = av;
	*nums_out = nums;
	return TR_OK;
}

static int admit_parse(redisReply *rep, size_t n, unsigned char *decisions)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			tr_log(TR_LOG_ERROR, "admit script failed", 1, "error", rep->str);
		return TR_EIO;
	}
	for (size_t i = 0; i < n; i++)
		decisions[i] = (unsigned char)rep->element[i]->integer;
	return TR_OK;
}

int tr_crawl_admit(tr_redis *r, const tr_crawl_info *info, uint64_t parent_fp, uint32_t depth,
		   const uint64_t *fps, char *const *urls, size_t n, unsigned char *decisions)
{
	int rc;
	const char **av = NULL;
	char *nums = NULL;
	char meta[160], prefix[160];
	if (n == 0)
		return TR_OK;
	rc = admit_argv(info, parent_fp, depth, fps, urls, n, &av, &nums, meta, sizeof(meta),
			prefix, sizeof(prefix));
	if (rc != TR_OK)
		return rc;
	redisReply *rep = tr_redis_eval(r, &admit_script, 1, (int)(6 + 5 * n), av, NULL);
	rc = admit_parse(rep, n, decisions);
	if (rep)
		freeReplyObject(rep);
	free(av);
	free(nums);
	return rc;
}

int tr_crawl_prepare(tr_redis *r)
{
	return admit_script.sha[0] ? TR_OK : tr_redis_script_load(r, &admit_script);
}

int tr_crawl_admit_append(tr_redis *r, const tr_crawl_info *info, uint64_t parent_fp,
			  uint32_t depth, const uint64_t *fps, char *const *urls, size_t n)
{
	int rc;
	const char **av = NULL;
	char *nums = NULL;
	char meta[160], prefix[160];
	if (!admit_script.sha[0] && (rc = tr_redis_script_load(r, &admit_script)) != TR_OK)
		return rc;
	rc = admit_argv(info, parent_fp, depth, fps, urls, n, &av, &nums, meta, sizeof(meta),
			prefix, sizeof(prefix));
	if (rc != TR_OK)
		return rc;
	rc = tr_redis_append_eval(r, &admit_script, 1, (int)(6 + 5 * n), av, NULL);
	free(av);
	free(nums);
	return rc;
}

int tr_crawl_admit_read(tr_redis *r, const tr_crawl_info *info, uint64_t parent_fp, uint32_t depth,
			const uint64_t *fps, char *const *urls, size_t n, unsigned char *decisions)
{
	int rc;
	redisReply *rep = tr_redis_get_reply(r);
	TR_UNUSED(info);
	TR_UNUSED(parent_fp);
	TR_UNUSED(depth);
	TR_UNUSED(fps);
	TR_UNUSED(urls);
	if (!rep)
		return TR_EIO; /* connection reset: the other replies are gone too */
	if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		/* Redis restarted since the script was loaded: nothing ran. The
		 * caller reads its other queued replies, then retries the batch,
		 * which loads the script again. */
		admit_script.sha[0] = '\0';
		rc = TR_ESTATE;
	} else {
		rc = admit_parse(rep, n, decisions);
		if (rc == TR_EIO)
			rc = TR_ESTATE; /* an error reply: the connection is still in step */
	}
	freeReplyObject(rep);
	return rc;
}

int tr_crawl_done(tr_redis *r, const tr_crawl_info *info, const uint64_t *fps, const bool *failed,
		  size_t n, long long *newly_done)
{
	int rc = TR_EIO;
	char meta[160], prefix[160], now[NUM_LEN];
	size_t argc = 3 + 3 * n;
	const char **av = malloc(argc * sizeof(*av));
	char *nums = malloc((2 * n + 1) * NUM_LEN);
	redisReply *rep = NULL;
	if (!av || !nums) {
		rc = TR_ENOMEM;
		goto out;
	}
	key_of(meta, sizeof(meta), info->crawl_id, "meta");
	key_of(prefix, sizeof(prefix), info->crawl_id, "");
	snprintf(now, sizeof(now), "%lld", (long long)tr_now_ms());
	av[0] = meta;
	av[1] = prefix;
	av[2] = now;
	for (size_t i = 0; i < n; i++) {
		tr_crawl_slot s = tr_crawl_slot_of(fps[i], info->dedup_buckets);
		char *b = nums + 2 * i * NUM_LEN;
		snprintf(b, NUM_LEN, "%ld", s.bucket);
		snprintf(b + NUM_LEN, NUM_LEN, "%" PRId64, (int64_t)fps[i]);
		av[3 + 3 * i] = b;
		av[4 + 3 * i] = b + NUM_LEN;
		av[5 + 3 * i] = failed && failed[i] ? "1" : "0";
	}
	rep = tr_redis_eval(r, &done_script, 1, (int)argc, av, NULL);
	if (!rep || rep->type != REDIS_REPLY_INTEGER) {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			tr_log(TR_LOG_ERROR, "done script failed", 1, "error", rep->str);
		goto out;
	}
	if (newly_done)
		*newly_done = rep->integer;
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	free(av);
	free(nums);
	return rc;
}

int tr_crawl_claim_pages(tr_redis *r, const tr_crawl_info *info, const uint64_t *fps,
			 const tr_crawl_claim *claims, size_t n, unsigned char *results)
{
	int rc = TR_EIO;
	char meta[160], prefix[160];
	size_t argc = 2 + 3 * n;
	const char **av = malloc(argc * sizeof(*av));
	char *nums = malloc(n * (2 * NUM_LEN + TR_CLAIM_LEN));
	redisReply *rep = NULL;
	if (!av || !nums) {
		rc = TR_ENOMEM;
		goto out;
	}
	key_of(meta, sizeof(meta), info->crawl_id, "meta");
	key_of(prefix, sizeof(prefix), info->crawl_id, "");
	av[0] = meta;
	av[1] = prefix;
	for (size_t i = 0; i < n; i++) {
		tr_crawl_slot sl = tr_crawl_slot_of(fps[i], info->dedup_buckets);
		char *b = nums + i * (2 * NUM_LEN + TR_CLAIM_LEN);
		snprintf(b, NUM_LEN, "%ld", sl.bucket);
		snprintf(b + NUM_LEN, NUM_LEN, "%" PRId64, (int64_t)fps[i]);
		tr_crawl_claim_format(b + 2 * NUM_LEN, TR_CLAIM_LEN, &claims[i]);
		av[2 + 3 * i] = b;
		av[3 + 3 * i] = b + NUM_LEN;
		av[4 + 3 * i] = b + 2 * NUM_LEN;
	}
	rep = tr_redis_eval(r, &claim_script, 1, (int)argc, av, NULL);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			tr_log(TR_LOG_ERROR, "claim script failed", 1, "error", rep->str);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		results[i] = (unsigned char)rep->element[i]->integer;
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	free(av);
	free(nums);
	return rc;
}

void tr_crawl_claim_format(char *out, size_t len, const tr_crawl_claim *c)
{
	snprintf(out, len, "%" PRId32 "|%" PRId64 "|%d|%s", c->partition, c->offset,
		 c->failed ? 1 : 0, c->topic);
}

/* Parse "partition|offset|failed|topic" (tr_crawl_claim_format). */
static int claim_parse(tr_crawl_claim *c, const char *v)
{
	int n = 0, failed = 0;
	long long off = 0;
	long part = 0;
	if (sscanf(v, "%ld|%lld|%d|%n", &part, &off, &failed, &n) != 3 || n <= 0 ||
	    strlen(v + n) >= sizeof(c->topic) || part < 0 || off < 0)
		return TR_EINVAL;
	c->partition = (int32_t)part;
	c->offset = off;
	c->failed = failed != 0;
	snprintf(c->topic, sizeof(c->topic), "%s", v + n);
	return TR_OK;
}

int tr_crawl_claims_list(tr_redis *r, const tr_crawl_info *info, uint64_t **fps_out,
			 tr_crawl_claim **claims_out, size_t *n_out)
{
	int rc = TR_EIO;
	char key[160];
	uint64_t *fps = NULL;
	tr_crawl_claim *claims = NULL;
	size_t n = 0;
	key_of(key, sizeof(key), info->crawl_id, "claims");
	redisReply *rep = tr_redis_cmd(r, "HGETALL %s", key);
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		goto out;
	size_t cap = rep->elements / 2 < TR_CLAIMS_MAX ? rep->elements / 2 : TR_CLAIMS_MAX;
	fps = calloc(cap + 1, sizeof(*fps));
	claims = calloc(cap + 1, sizeof(*claims));
	if (!fps || !claims) {
		rc = TR_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i + 1 < rep->elements && n < cap; i += 2) {
		if (rep->element[i]->type != REDIS_REPLY_STRING ||
		    rep->element[i + 1]->type != REDIS_REPLY_STRING ||
		    claim_parse(&claims[n], rep->element[i + 1]->str) != TR_OK)
			continue;
		fps[n] = (uint64_t)strtoll(rep->element[i]->str, NULL, 10);
		n++;
	}
	*fps_out = fps;
	*claims_out = claims;
	*n_out = n;
	fps = NULL;
	claims = NULL;
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	free(fps);
	free(claims);
	return rc;
}

static long long field_ll(redisReply *e)
{
	return e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
}

int tr_crawl_counts_get(tr_redis *r, const char *cid, tr_crawl_counts *c)
{
	int rc = TR_EIO;
	char meta[160];
	key_of(meta, sizeof(meta), cid, "meta");
	redisReply *rep = tr_redis_cmd(
	    r, "HMGET %s admitted pending done failed created_ms finished_ms dedup_buckets", meta);
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 7)
		goto out;
	memset(c, 0, sizeof(*c));
	c->exists = rep->element[4]->type == REDIS_REPLY_STRING;
	c->admitted = field_ll(rep->element[0]);
	c->pending = field_ll(rep->element[1]);
	c->done = field_ll(rep->element[2]);
	c->failed = field_ll(rep->element[3]);
	c->created_ms = field_ll(rep->element[4]);
	c->finished_ms = field_ll(rep->element[5]);
	c->dedup_buckets = (long)field_ll(rep->element[6]);
	rc = TR_OK;
out:
	if (rep)
		freeReplyObject(rep);
	return rc;
}

bool tr_crawl_is_complete(const tr_crawl_counts *c)
{
	return c->exists && c->admitted > 0 && c->pending <= 0;
}

int tr_crawl_list(tr_redis *r, char ***ids_out)
{
	int rc = TR_EIO;
	char **ids = NULL;
	redisReply *rep = tr_redis_cmd(r, "SMEMBERS tr:crawls");
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		goto out;
	ids = calloc(rep->elements + 1, sizeof(*ids));
	if (!ids) {
		rc = TR_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < rep->elements; i++) {
		if (!(ids[i] = strdup(rep->element[i]->str))) {
			for (size_t j = 0; j < i; j++)
				free(ids[j]);
			free(ids);
			rc = TR_ENOMEM;
			goto out;
		}
	}
	*ids_out = ids;
	rc = (int)rep->elements;
out:
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int tr_crawl_reap(tr_redis *r, const tr_crawl_info *info, int64_t lease_ms, tr_crawl_reap_cb cb,
		  void *payload)
{
	int rc = TR_OK, found = 0;
	char meta[160], prefix[160], bucket[NUM_LEN], cutoff[NUM_LEN], now[NUM_LEN];
	const char *max = "10000";
	int64_t t = tr_now_ms();
	key_of(meta, sizeof(meta), info->crawl_id, "meta");
	key_of(prefix, sizeof(prefix), info->crawl_id, "");
	snprintf(cutoff, sizeof(cutoff), "%lld", (long long)(t - lease_ms));
	snprintf(now, sizeof(now), "%lld", (long long)t);
	for (long b = 0; b < info->dedup_buckets && rc == TR_OK; b++) {
		snprintf(bucket, sizeof(bucket), "%ld", b);
		const char *av[] = {meta, prefix, bucket, cutoff, now, max};
		redisReply *rep = tr_redis_eval(r, &reap_script, 1, 6, av, NULL);
		if (!rep || rep->type != REDIS_REPLY_ARRAY) {
			rc = TR_EIO;
		} else {
			for (size_t i = 0; i + 2 < rep->elements; i += 3) {
				const char *rest = rep->element[i + 2]->str;
				char *bar = strchr(rest, '|');
				if (!bar)
					continue;
				uint64_t fp = (uint64_t)strtoll(rep->element[i]->str, NULL, 10);
				uint64_t parent =
				    (uint64_t)strtoll(rep->element[i + 1]->str, NULL, 10);
				char *end = NULL;
				uint32_t depth =
				    (uint32_t)strtoul(rest, &end, 10) & ~TR_CRAWL_MARKS;
				for (; end && end < bar; end++) /* the marks after the number */
					depth |= *end == 's'   ? TR_CRAWL_SITEMAP
						 : *end == 'r' ? TR_CRAWL_RENDER
							       : 0;
				cb(fp, parent, depth, bar + 1, payload);
				found++;
			}
		}
		if (rep)
			freeReplyObject(rep);
	}
	return rc == TR_OK ? found : rc;
}

bool tr_crawl_reap_lock(tr_redis *r, const char *cid, const char *owner, int64_t ttl_ms)
{
	char key[160];
	key_of(key, sizeof(key), cid, "reaper");
	redisReply *rep = tr_redis_cmd(r, "SET %s %s NX PX %lld", key, owner, (long long)ttl_ms);
	bool taken = rep && rep->type == REDIS_REPLY_STATUS;
	if (rep)
		freeReplyObject(rep);
	return taken;
}

int tr_crawl_is_pending(tr_redis *r, const tr_crawl_info *info, uint64_t fp)
{
	char key[200];
	tr_crawl_slot sl = tr_crawl_slot_of(fp, info->dedup_buckets);
	snprintf(key, sizeof(key), "tr:{%s}:p:%ld", info->crawl_id, sl.bucket);
	redisReply *rep = tr_redis_cmd(r, "HEXISTS %s %lld", key, (long long)(int64_t)fp);
	int rc = rep && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : TR_EIO;
	if (rep)
		freeReplyObject(rep);
	return rc;
}

int tr_crawl_memory_get(tr_redis *r, const char *cid, tr_crawl_memory *m)
{
	char pattern[160], cursor[32] = "0";
	size_t plen;
	memset(m, 0, sizeof(*m));
	key_of(pattern, sizeof(pattern), cid, "*");
	plen = strlen(pattern) - 1;
	do {
		redisReply *rep = tr_redis_cmd(r, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
			if (rep)
				freeReplyObject(rep);
			return TR_EIO;
		}
		snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
		redisReply *keys = rep->element[1];
		for (size_t i = 0; i < keys->elements; i++)
			tr_redis_append_argv(
			    r, 3, (const char *[]){"MEMORY", "USAGE", keys->element[i]->str}, NULL);
		for (size_t i = 0; i < keys->elements; i++) {
			redisReply *u = tr_redis_get_reply(r);
			long long bytes = u && u->type == REDIS_REPLY_INTEGER ? u->integer : 0;
			const char *rest = keys->element[i]->str + plen;
			if (strncmp(rest, "s:", 2) == 0 || strcmp(rest, "bloom") == 0)
				m->dedup_bytes += bytes;
			else if (strncmp(rest, "p:", 2) == 0)
				m->pending_bytes += bytes;
			else
				m->other_bytes += bytes;
			m->keys++;
			if (u)
				freeReplyObject(u);
		}
		freeReplyObject(rep);
	} while (strcmp(cursor, "0") != 0);
	return TR_OK;
}
