/* test_polite.c - politeness group keys (host, domain, ip), the fixed
 * address list, and the sitemap reader on small fixed inputs. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "check.h"
#include "polite.h"
#include "sitemap.h"

static void key(tr_polite_resolver *r, tr_polite_mode m, const char *url, const char *want)
{
	char out[300] = "";
	CHECK(tr_polite_key(out, sizeof(out), r, url, m) == TR_OK);
	CHECK_STR(out, want);
}

static void fkey(tr_polite_mode m, const char *url, const char *want)
{
	char out[300] = "";
	CHECK(tr_polite_frontier_key(out, sizeof(out), url, m) == TR_OK);
	CHECK_STR(out, want);
}

/* A lookup that blocks until the test opens the gate, so "does not block
 * the caller" is shown without timing: a blocking call would never return
 * before the gate opens (the 10 s cap only turns a hang into a failure). */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static int lookups_entered, lookups_at_once, lookups_max_at_once, lookups_returned;

static bool gated_lookup(const char *host, char *addr, size_t alen)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&gate_lock);
	lookups_entered++;
	if (++lookups_at_once > lookups_max_at_once)
		lookups_max_at_once = lookups_at_once;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open && pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0)
		;
	lookups_at_once--;
	lookups_returned++;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	if (strncmp(host, "bad", 3) == 0)
		return false;
	snprintf(addr, alen, "127.0.0.%d", 70 + (host[0] - 'a'));
	return true;
}

/* Wait (at most 10 s) until `*counter` reaches n. */
static bool gate_wait(int *counter, int n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&gate_lock);
	while (*counter < n && pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0)
		;
	bool ok = *counter >= n;
	pthread_mutex_unlock(&gate_lock);
	return ok;
}

static void gate_set(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static int try_key(tr_polite_resolver *r, const char *url, char *out, size_t outlen)
{
	return tr_polite_key_try(out, outlen, r, url, TR_POLITE_IP);
}

/* tr_polite_key_try(): lookups run on the resolver's threads, several at
 * once, the caller never waits, answers and failures are cached. */
static void test_nonblocking(void)
{
	tr_polite_resolver *r = NULL;
	char out[300];
	CHECK(tr_polite_resolver_new(&r, "fixed.test:80:127.0.0.9") == TR_OK);
	tr_polite_resolver_set_lookup(r, gated_lookup);
	CHECK(tr_polite_resolver_fd(r) == -1); /* no thread before the first miss */
	/* fixed entries and IP literals never wait */
	CHECK(try_key(r, "http://fixed.test/", out, sizeof(out)) == TR_OK);
	CHECK_STR(out, "127.0.0.9");
	CHECK(try_key(r, "http://127.0.0.5:8080/", out, sizeof(out)) == TR_OK);
	CHECK_STR(out, "127.0.0.5");
	/* four names queued while every lookup is held at the gate */
	CHECK(try_key(r, "http://a.test/", out, sizeof(out)) == TR_EAGAIN);
	CHECK(try_key(r, "http://b.test:81/x", out, sizeof(out)) == TR_EAGAIN);
	CHECK(try_key(r, "http://c.test/", out, sizeof(out)) == TR_EAGAIN);
	CHECK(try_key(r, "http://bad.test:82/", out, sizeof(out)) == TR_EAGAIN);
	CHECK(try_key(r, "http://a.test/again", out, sizeof(out)) == TR_EAGAIN); /* not twice */
	CHECK(tr_polite_resolver_fd(r) >= 0);
	CHECK(gate_wait(&lookups_entered, 4)); /* all four under way at once */
	CHECK(lookups_max_at_once == 4);
	CHECK(tr_polite_resolver_collect(r) == 0); /* nothing has answered */
	gate_set(true);
	CHECK(gate_wait(&lookups_returned, 4));
	struct pollfd pfd = {tr_polite_resolver_fd(r), POLLIN, 0};
	CHECK(poll(&pfd, 1, 10000) == 1); /* the fd woke up */
	size_t got = 0;
	for (int i = 0; i < 100 && got < 4; i++) { /* a thread may still be writing */
		got += tr_polite_resolver_collect(r);
		if (got < 4)
			poll(&pfd, 1, 100);
	}
	CHECK(got == 4);
	CHECK(try_key(r, "http://a.test/", out, sizeof(out)) == TR_OK);
	CHECK_STR(out, "127.0.0.70");
	CHECK(try_key(r, "http://b.test:81/", out, sizeof(out)) == TR_OK);
	CHECK_STR(out, "127.0.0.71");
	CHECK(try_key(r, "http://c.test/", out, sizeof(out)) == TR_OK);
	CHECK_STR(out, "127.0.0.72");
	CHECK(try_key(r, "http://bad.test:82/", out, sizeof(out)) == TR_OK); /* cached failure */
	CHECK_STR(out, "bad.test:82");
	key(r, TR_POLITE_IP, "http://a.test/", "127.0.0.70"); /* the blocking form agrees */
	CHECK(lookups_entered == 4);			      /* every answer came from the cache */
	/* freed while a lookup is still held: the thread finishes on its own */
	gate_set(false);
	CHECK(try_key(r, "http://d.test/", out, sizeof(out)) == TR_EAGAIN);
	CHECK(gate_wait(&lookups_entered, 5));
	tr_polite_resolver_free(r);
	gate_set(true);
	CHECK(gate_wait(&lookups_returned, 5));
	struct timespec pause = {0, 50 * 1000 * 1000}; /* let the thread release its state */
	nanosleep(&pause, NULL);
}

typedef struct locs {
	char all[1024];
	int n;
} locs;

static void on_loc(const char *loc, void *payload)
{
	locs *l = payload;
	size_t len = strlen(l->all);
	snprintf(l->all + len, sizeof(l->all) - len, "%s%s", l->n++ ? " " : "", loc);
}

static void sitemap(const void *body, size_t len, size_t max_urls, int want_kind,
		    const char *want_locs, bool want_cut)
{
	locs l;
	bool cut = false;
	memset(&l, 0, sizeof(l));
	int kind = tr_sitemap_parse(body, len, 1 << 20, max_urls, on_loc, &l, &cut);
	if (kind != want_kind || cut != want_cut)
		fprintf(stderr, "sitemap: kind %d cut %d, want %d %d (%s)\n", kind, cut, want_kind,
			want_cut, want_locs);
	CHECK(kind == want_kind);
	CHECK_STR(l.all, want_locs);
	CHECK(cut == want_cut);
}

int main(void)
{
	tr_polite_mode m;
	tr_polite_resolver *r = NULL;
	char out[300];

	CHECK(tr_polite_mode_parse(&m, "host") == TR_OK && m == TR_POLITE_HOST);
	CHECK(tr_polite_mode_parse(&m, "domain") == TR_OK && m == TR_POLITE_DOMAIN);
	CHECK(tr_polite_mode_parse(&m, "ip") == TR_OK && m == TR_POLITE_IP);
	CHECK(tr_polite_mode_parse(&m, "IP") == TR_EINVAL);

	/* host: host:port everywhere */
	fkey(TR_POLITE_HOST, "https://www.example.co.uk/a", "www.example.co.uk:443");
	key(NULL, TR_POLITE_HOST, "http://a.example.com:8080/", "a.example.com:8080");
	/* domain: registrable domain, for the frontier too; IP literals and
	 * public suffixes are their own group, without the port */
	fkey(TR_POLITE_DOMAIN, "https://www.example.co.uk/a", "example.co.uk");
	fkey(TR_POLITE_DOMAIN, "http://shop.example.co.uk:8080/", "example.co.uk");
	key(NULL, TR_POLITE_DOMAIN, "http://a.b.grp.test:81/", "grp.test");
	key(NULL, TR_POLITE_DOMAIN, "http://127.0.0.5:8001/", "127.0.0.5");
	key(NULL, TR_POLITE_DOMAIN, "http://127.0.0.5:8002/", "127.0.0.5");
	key(NULL, TR_POLITE_DOMAIN, "http://[::1]:8002/", "::1");
	key(NULL, TR_POLITE_DOMAIN, "http://co.uk/", "co.uk");
	/* ip: the frontier stays host:port; the group is the address */
	fkey(TR_POLITE_IP, "http://a.one.test:81/", "a.one.test:81");
	CHECK(tr_polite_resolver_new(&r, "a.one.test:81:127.0.0.23, b.two.test:82:127.0.0.23,"
					 "c.test:80:[::1]") == TR_OK);
	key(r, TR_POLITE_IP, "http://a.one.test:81/x", "127.0.0.23");
	key(r, TR_POLITE_IP, "http://B.two.test:82/", "127.0.0.23");
	key(r, TR_POLITE_IP, "http://b.two.test:9999/", "127.0.0.23"); /* any port of the name */
	key(r, TR_POLITE_IP, "http://c.test/", "::1");
	key(r, TR_POLITE_IP, "http://10.1.2.3:8080/", "10.1.2.3");
	/* getaddrinfo: its first address, whichever family the system prefers */
	CHECK(tr_polite_key(out, sizeof(out), r, "http://localhost:8080/", TR_POLITE_IP) == TR_OK);
	CHECK(strcmp(out, "127.0.0.1") == 0 || strcmp(out, "::1") == 0);
	key(r, TR_POLITE_IP, "http://no-such-host.invalid:8080/", "no-such-host.invalid:8080");
	CHECK(tr_polite_key(out, 4, r, "http://a.one.test:81/", TR_POLITE_IP) == TR_ETOOBIG);
	CHECK(tr_polite_key(out, sizeof(out), r, "ftp://x/", TR_POLITE_IP) == TR_EINVAL);
	tr_polite_resolver_free(r);
	r = NULL;
	CHECK(tr_polite_resolver_new(&r, "a.test:81") == TR_EINVAL);
	CHECK(tr_polite_resolver_new(&r, "a.test:0:1.2.3.4") == TR_EINVAL);
	CHECK(tr_polite_resolver_new(&r, "a.test:81:not-an-ip") == TR_EINVAL);
	CHECK(r == NULL);
	test_nonblocking();

	/* sitemaps */
	const char *us = "<?xml version=\"1.0\"?>\n<urlset "
			 "xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">"
			 "<url><loc>\n  http://a/1 \n</loc></url><url><loc>http://a/2</loc>"
			 "<x:image xmlns:x=\"urn:x\"><x:loc>http://a/img</x:loc></x:image></url>"
			 "<url><loc></loc></url><url><loc>http://a/3</loc></url></urlset>";
	sitemap(us, strlen(us), 100, TR_SITEMAP_URLSET, "http://a/1 http://a/2 http://a/3", false);
	sitemap(us, strlen(us), 2, TR_SITEMAP_URLSET, "http://a/1 http://a/2", true);
	const char *ix = "<sitemapindex><sitemap><loc>http://a/s.xml.gz</loc></sitemap>"
			 "</sitemapindex>";
	sitemap(ix, strlen(ix), 100, TR_SITEMAP_INDEX, "http://a/s.xml.gz", false);
	const char *rss = "<rss><url><loc>http://a/1</loc></url></rss>";
	sitemap(rss, strlen(rss), 100, TR_SITEMAP_NONE, "", false);
	const char *html = "<html><body>not xml</body></html>";
	sitemap(html, strlen(html), 100, TR_SITEMAP_NONE, "", false);
	const char *cut = "<urlset><url><loc>http://a/1</loc></url><url><loc>http://a/2";
	sitemap(cut, strlen(cut), 100, TR_SITEMAP_URLSET, "http://a/1", true);
	/* gzip, whole and cut in the middle of the stream */
	static char big[16384];
	size_t bl = (size_t)snprintf(big, sizeof(big), "<urlset>");
	for (int i = 0; i < 200; i++)
		bl += (size_t)snprintf(big + bl, sizeof(big) - bl,
				       "<url><loc>http://a/page-%d.html</loc></url>", i);
	bl += (size_t)snprintf(big + bl, sizeof(big) - bl, "</urlset>");
	static unsigned char gz[16384];
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	CHECK(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (unsigned char *)big;
	zs.avail_in = (uInt)bl;
	zs.next_out = gz;
	zs.avail_out = sizeof(gz);
	CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	size_t gzlen = sizeof(gz) - zs.avail_out;
	deflateEnd(&zs);
	locs l;
	bool was_cut = false;
	memset(&l, 0, sizeof(l));
	CHECK(tr_sitemap_parse(gz, gzlen, 1 << 20, 1000, on_loc, &l, &was_cut) ==
	      TR_SITEMAP_URLSET);
	CHECK(l.n == 200 && !was_cut);
	memset(&l, 0, sizeof(l));
	CHECK(tr_sitemap_parse(gz, gzlen * 2 / 3, 1 << 20, 1000, on_loc, &l, &was_cut) ==
	      TR_SITEMAP_URLSET);
	CHECK(l.n > 0 && l.n < 200 && was_cut);
	memset(&l, 0, sizeof(l));
	CHECK(tr_sitemap_parse(gz, gzlen, 512, 1000, on_loc, &l, &was_cut) == TR_SITEMAP_URLSET);
	CHECK(l.n > 0 && l.n < 20 && was_cut); /* --sitemap-max-bytes */
	return check_summary();
}
