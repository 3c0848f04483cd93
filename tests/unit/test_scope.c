/* test_scope.c - crawl scope (host / registrable domain), allow/deny
 * regular expressions, URL length cap and query normalization. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "scope.h"

static void norm(const tr_scope *s, const char *in, const char *want)
{
	char *out = NULL;
	CHECK(tr_scope_normalize(s, &out, in) == TR_OK);
	CHECK_STR(out, want);
	free(out);
}

int main(void)
{
	char err[256];
	tr_scope *s = NULL;
	tr_crawl_info info;
	memset(&info, 0, sizeof(info));
	info.scope[0] = (char *)"www.example.co.uk:443";
	info.scope[1] = (char *)"127.0.0.2:8080";
	info.nscope = 2;

	tr_scope_opts host = {"host", "", "", 60, "utm_*,fbclid", false};
	CHECK(tr_scope_new(&s, &host, err, sizeof(err)) == TR_OK);
	norm(s, "http://a/p?utm_source=x&id=3&fbclid=9&utm_medium=y", "http://a/p?id=3");
	norm(s, "http://a/p?utm_source=x", "http://a/p");
	norm(s, "http://a/p?b=2&a=1", "http://a/p?b=2&a=1");
	norm(s, "http://a/p", "http://a/p");
	norm(s, "http://a/p?futm_x=1&UTM_CAPS=2", "http://a/p?futm_x=1");
	CHECK(tr_scope_check(s, &info, "https://www.example.co.uk/", "www.example.co.uk:443") ==
	      TR_SCOPE_OK);
	CHECK(tr_scope_check(s, &info, "https://shop.example.co.uk/", "shop.example.co.uk:443") ==
	      TR_SCOPE_OFFSITE);
	CHECK(tr_scope_check(s, &info, "http://127.0.0.2:8081/", "127.0.0.2:8081") ==
	      TR_SCOPE_OFFSITE); /* host means host:port */
	CHECK(tr_scope_check(s, &info,
			     "http://127.0.0.2:8080/a/very/long/path/that/goes/past/sixty/chars",
			     "127.0.0.2:8080") == TR_SCOPE_TOO_LONG);
	tr_scope_free(s);

	tr_scope_opts dom = {"domain", "^https?://[^/]+/(shop|www)?", "/private/", 0, "", true};
	CHECK(tr_scope_new(&s, &dom, err, sizeof(err)) == TR_OK);
	norm(s, "http://a/p?b=2&a=1&a=0", "http://a/p?a=1&a=0&b=2");
	norm(s, "http://a/p?b&a=1", "http://a/p?a=1&b");
	CHECK(tr_scope_check(s, &info, "https://shop.example.co.uk/x", "shop.example.co.uk:443") ==
	      TR_SCOPE_OK); /* same registrable domain (public suffix co.uk) */
	CHECK(tr_scope_check(s, &info, "https://example.co.uk/x", "example.co.uk:443") ==
	      TR_SCOPE_OK);
	CHECK(tr_scope_check(s, &info, "https://co.uk/x", "co.uk:443") == TR_SCOPE_OFFSITE);
	CHECK(tr_scope_check(s, &info, "https://other.co.uk/x", "other.co.uk:443") ==
	      TR_SCOPE_OFFSITE);
	CHECK(tr_scope_check(s, &info, "http://127.0.0.2:9999/x", "127.0.0.2:9999") ==
	      TR_SCOPE_OK); /* an IP has no registrable domain: same address */
	CHECK(tr_scope_check(s, &info, "http://127.0.0.3:8080/x", "127.0.0.3:8080") ==
	      TR_SCOPE_OFFSITE);
	CHECK(tr_scope_check(s, &info, "https://www.example.co.uk/private/x",
			     "www.example.co.uk:443") == TR_SCOPE_DENIED);
	tr_scope_free(s);

	tr_scope_opts bad = {"planet", "", "", 0, "", false};
	CHECK(tr_scope_new(&s, &bad, err, sizeof(err)) == TR_EINVAL);
	CHECK(strstr(err, "option scope: invalid value 'planet' (accepted: host, domain)") != NULL);
	tr_scope_opts badre = {"host", "([", "", 0, "", false};
	CHECK(tr_scope_new(&s, &badre, err, sizeof(err)) == TR_EINVAL);
	CHECK(strstr(err, "option allow-regex: invalid regular expression") != NULL);
	return check_summary();
}
