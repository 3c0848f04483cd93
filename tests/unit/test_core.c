/* test_core.c - unit tests for the offset tracker, the per-host queues, the
 * JSON writer, the HEAD-extension rule and the shutdown watchdog. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "buf.h"
#include "fetch.h"
#include "check.h"
#include "hostq.h"
#include "jsonw.h"
#include "lifecycle.h"
#include "log.h"
#include "offsets.h"
#include "page.h"

static void test_offsets(void)
{
	tr_offsets *t = tr_offsets_new();
	int64_t off = -1;
	CHECK(t != NULL);
	for (int64_t o = 10; o < 15; o++)
		CHECK(tr_offsets_track(t, 3, o) == TR_OK);
	CHECK(tr_offsets_track(t, 3, 12) == TR_EINVAL); /* not increasing */
	CHECK(tr_offsets_pending(t) == 5);
	/* finishing out of order: nothing committable until 10 is done */
	CHECK(tr_offsets_done(t, 3, 12) == TR_OK);
	CHECK(tr_offsets_done(t, 3, 11) == TR_OK);
	CHECK(tr_offsets_advanced(t, 3, &off) && off == 10);
	CHECK(!tr_offsets_advanced(t, 3, &off));
	CHECK(tr_offsets_done(t, 3, 10) == TR_OK);
	CHECK(tr_offsets_advanced(t, 3, &off) && off == 13);
	CHECK(tr_offsets_done(t, 3, 10) == TR_ENOTFOUND); /* twice */
	CHECK(tr_offsets_done(t, 3, 14) == TR_OK);
	CHECK(tr_offsets_done(t, 3, 13) == TR_OK);
	CHECK(tr_offsets_advanced(t, 3, &off) && off == 15);
	CHECK(tr_offsets_pending(t) == 0);
	/* gaps in offsets (compacted topics, transactions) are fine */
	CHECK(tr_offsets_track(t, 3, 20) == TR_OK);
	CHECK(tr_offsets_done(t, 3, 20) == TR_OK);
	CHECK(tr_offsets_advanced(t, 3, &off) && off == 21);
	/* reset after a revoke forgets everything */
	CHECK(tr_offsets_track(t, 0, 5) == TR_OK);
	tr_offsets_reset(t, 0);
	CHECK(tr_offsets_done(t, 0, 5) == TR_ENOTFOUND);
	CHECK(tr_offsets_pending(t) == 0);
	/* many offsets: growth and compaction keep order */
	for (int64_t o = 100; o < 5100; o++)
		CHECK(tr_offsets_track(t, 7, o) == TR_OK);
	for (int64_t o = 5099; o >= 101; o--)
		tr_offsets_done(t, 7, o);
	CHECK(tr_offsets_advanced(t, 7, &off) && off == 100);
	CHECK(tr_offsets_done(t, 7, 100) == TR_OK);
	CHECK(tr_offsets_advanced(t, 7, &off) && off == 5100);
	CHECK(tr_offsets_track(t, -1, 1) == TR_EINVAL);
	/* finished work above the commit point travels as commit metadata */
	char desc[64];
	int64_t skip[8][2];
	for (int64_t o = 200; o < 210; o++)
		tr_offsets_track(t, 9, o);
	tr_offsets_done(t, 9, 202);
	tr_offsets_done(t, 9, 203);
	tr_offsets_done(t, 9, 204);
	tr_offsets_done(t, 9, 207);
	CHECK(tr_offsets_done_above(t, 9, desc, sizeof(desc)) == 200);
	CHECK_STR(desc, "2-4,7");
	CHECK(tr_offsets_parse_done(desc, 200, skip, 8) == 2);
	CHECK(skip[0][0] == 202 && skip[0][1] == 204 && skip[1][0] == 207 && skip[1][1] == 207);
	CHECK(tr_offsets_done_above(t, 9, desc, 4) == 200); /* cut at a whole range */
	CHECK_STR(desc, "2-4");
	CHECK(tr_offsets_parse_done("5,x", 0, skip, 8) == 1);
	CHECK(tr_offsets_parse_done("", 0, skip, 8) == 0);
	CHECK(tr_offsets_parse_done("3-1", 0, skip, 8) == 0);
	CHECK(tr_offsets_done_above(t, 99, desc, sizeof(desc)) == -1);
	tr_offsets_free(t);
}

static void test_hostq(void)
{
	tr_hostq *q = tr_hostq_new(1000, 1);
	const char *key = NULL;
	int items[6];
	CHECK(q != NULL);
	CHECK(tr_hostq_push(q, "a:80", &items[0]) == TR_OK);
	CHECK(tr_hostq_push(q, "a:80", &items[1]) == TR_OK);
	CHECK(tr_hostq_push(q, "b:80", &items[2]) == TR_OK);
	CHECK(tr_hostq_queued(q) == 3);
	/* at t=0 both hosts may start once; FIFO within a host */
	void *x = tr_hostq_pop_ready(q, 0, &key);
	void *y = tr_hostq_pop_ready(q, 0, &key);
	CHECK((x == &items[0] && y == &items[2]) || (x == &items[2] && y == &items[0]));
	/* a:80 has one connection busy: nothing more even after the delay */
	CHECK(tr_hostq_pop_ready(q, 5000, &key) == NULL);
	tr_hostq_release(q, "a:80", 300);
	/* released at 300 but the delay runs from the start at 0: ready at 1000 */
	CHECK(tr_hostq_next_ready_ms(q) == 1000);
	CHECK(tr_hostq_pop_ready(q, 999, &key) == NULL);
	CHECK(tr_hostq_pop_ready(q, 1000, &key) == &items[1]);
	CHECK(strcmp(key, "a:80") == 0);
	/* refund: a start that sent nothing restores the previous time */
	tr_hostq_release(q, "a:80", 1000);
	CHECK(tr_hostq_push(q, "a:80", &items[3]) == TR_OK);
	CHECK(tr_hostq_pop_ready(q, 2000, &key) == &items[3]);
	tr_hostq_refund(q, "a:80");
	CHECK(tr_hostq_push(q, "a:80", &items[4]) == TR_OK);
	CHECK(tr_hostq_pop_ready(q, 2000, &key) == &items[4]);
	tr_hostq_release(q, "a:80", 2000);
	/* defer and per-host delay */
	tr_hostq_defer(q, "a:80", 10000);
	CHECK(tr_hostq_push(q, "a:80", &items[5]) == TR_OK);
	CHECK(tr_hostq_pop_ready(q, 9999, &key) == NULL);
	CHECK(tr_hostq_pop_ready(q, 10000, &key) == &items[5]);
	tr_hostq_release(q, "a:80", 10000);
	tr_hostq_set_delay(q, "a:80", 5000);
	CHECK(tr_hostq_push(q, "a:80", &items[0]) == TR_OK);
	CHECK(tr_hostq_pop_ready(q, 14999, &key) == NULL);
	CHECK(tr_hostq_pop_ready(q, 15000, &key) == &items[0]);
	CHECK(tr_hostq_queued(q) == 0);
	tr_hostq_free(q, NULL);

	/* two connections per host, zero delay: exactly two concurrent */
	q = tr_hostq_new(0, 2);
	for (int i = 0; i < 5; i++)
		tr_hostq_push(q, "c:80", &items[i]);
	CHECK(tr_hostq_pop_ready(q, 0, &key) != NULL);
	CHECK(tr_hostq_pop_ready(q, 0, &key) != NULL);
	CHECK(tr_hostq_pop_ready(q, 0, &key) == NULL);
	tr_hostq_free(q, NULL);

	/* many hosts: the one ready first comes first */
	q = tr_hostq_new(100, 1);
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "h%d:80", i);
		tr_hostq_push(q, name, &items[i % 6]);
		tr_hostq_defer(q, name, 10000 - i);
	}
	CHECK(tr_hostq_hosts(q) == 3000);
	CHECK(tr_hostq_next_ready_ms(q) == 10000 - 2999);
	CHECK(tr_hostq_pop_ready(q, 7001, &key) != NULL && strcmp(key, "h2999:80") == 0);
	tr_hostq_free(q, NULL);

	/* the deepest queues, deepest first; empty hosts left out */
	q = tr_hostq_new(0, 1);
	static const int depth[] = {3, 0, 7, 1, 5, 2};
	for (int h = 0; h < 6; h++) {
		snprintf(name, sizeof(name), "d%d:80", h);
		tr_hostq_set_delay(q, name, 0); /* a host record with nothing queued */
		for (int i = 0; i < depth[h]; i++)
			tr_hostq_push(q, name, &items[0]);
	}
	const char *keys[6];
	size_t depths[6];
	CHECK(tr_hostq_deepest(q, 3, keys, depths) == 3);
	CHECK(depths[0] == 7 && strcmp(keys[0], "d2:80") == 0);
	CHECK(depths[1] == 5 && strcmp(keys[1], "d4:80") == 0);
	CHECK(depths[2] == 3 && strcmp(keys[2], "d0:80") == 0);
	CHECK(tr_hostq_deepest(q, 6, keys, depths) == 5); /* d1 has none */
	CHECK(depths[3] == 2 && depths[4] == 1);
	CHECK(tr_hostq_deepest(q, 0, keys, depths) == 0);
	tr_hostq_free(q, NULL);
}

static void test_jsonw(void)
{
	tr_buf b;
	tr_buf_init(&b, 1024);
	CHECK(tr_jsonw_str(&b, "a\"b\\c\n\t\x01", 8) == TR_OK);
	CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\"");
	tr_buf_reset(&b);
	/* valid UTF-8 kept, invalid bytes replaced */
	CHECK(tr_jsonw_str(&b, "\xc3\xa9\xff\xe2\x82", 5) == TR_OK);
	CHECK_STR(b.data, "\"\xc3\xa9\\ufffd\\ufffd\\ufffd\"");
	tr_buf_reset(&b);
	/* overlong encoding and surrogates are invalid */
	CHECK(tr_jsonw_str(&b, "\xc0\xaf\xed\xa0\x80", 5) == TR_OK);
	CHECK_STR(b.data, "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
	tr_buf_reset(&b);
	CHECK(tr_jsonw_kv_str(&b, true, "k", "v") == TR_OK);
	CHECK(tr_jsonw_kv_int(&b, false, "n", -5) == TR_OK);
	CHECK(tr_jsonw_kv_bool(&b, false, "t", true) == TR_OK);
	CHECK_STR(b.data, "\"k\":\"v\",\"n\":-5,\"t\":true");
	tr_buf_free(&b);
	/* the cap holds */
	tr_buf_init(&b, 4);
	CHECK(tr_buf_add(&b, "abcd", 4) == TR_OK);
	CHECK(tr_buf_add(&b, "e", 1) == TR_ETOOBIG);
	CHECK(b.len == 4);
	tr_buf_free(&b);
}

static void test_head_rule(void)
{
	const char *exts = "pdf,png,tar";
	CHECK(tr_page_wants_head("http://a/x/report.pdf", exts));
	CHECK(tr_page_wants_head("http://a/x/IMG.PNG?size=2", exts));
	CHECK(!tr_page_wants_head("http://a/x/report.pdf.html", exts));
	CHECK(!tr_page_wants_head("http://a/x.pdf/page", exts));
	CHECK(!tr_page_wants_head("http://a/", exts));
	CHECK(!tr_page_wants_head("http://a.pdf", exts));
	CHECK(!tr_page_wants_head("http://a/x/report.pdf", ""));
	CHECK(!tr_page_wants_head("http://a/x/file.ta", exts));
	CHECK(tr_page_is_html_type("text/html; charset=utf-8"));
	CHECK(tr_page_is_html_type("application/xhtml+xml"));
	CHECK(!tr_page_is_html_type("text/plain"));
	CHECK(!tr_page_is_html_type(NULL));
}

static bool addr_check(const char *list, const char *ip, int *priv)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &a->sin_addr);
	}
	*priv = tr_fetch_addr_is_private((struct sockaddr *)&ss);
	return tr_fetch_addr_in_list(list, (struct sockaddr *)&ss) == 1;
}

static void test_fetch_rules(void)
{
	int priv = 0;
	/* the SSRF guard's idea of private */
	const char *private_ips[] = {"127.0.0.1",	"10.1.2.3",    "172.16.0.1",
				     "172.31.255.255",	"192.168.1.1", "169.254.169.254",
				     "100.64.0.1",	"0.0.0.0",     "224.0.0.1",
				     "255.255.255.255", "::1",	       "::",
				     "fe80::1",		"fc00::1",     "::ffff:127.0.0.1",
				     "ff02::1"};
	for (size_t i = 0; i < sizeof(private_ips) / sizeof(*private_ips); i++) {
		addr_check("", private_ips[i], &priv);
		CHECK(priv == 1);
	}
	const char *public_ips[] = {"8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1",
				    "::ffff:8.8.8.8"};
	for (size_t i = 0; i < sizeof(public_ips) / sizeof(*public_ips); i++) {
		addr_check("", public_ips[i], &priv);
		CHECK(priv == 0);
	}
	/* the allow-list */
	CHECK(addr_check("127.0.0.2/32", "127.0.0.2", &priv));
	CHECK(!addr_check("127.0.0.2/32", "127.0.0.1", &priv));
	CHECK(addr_check("10.0.0.0/8,127.0.0.2", "10.200.1.1", &priv));
	CHECK(addr_check("10.0.0.0/8,127.0.0.2", "127.0.0.2", &priv));
	CHECK(addr_check("::1/128", "::1", &priv));
	CHECK(!addr_check("::1/128", "127.0.0.1", &priv));
	CHECK(addr_check("172.16.0.0/12", "172.20.3.4", &priv));
	CHECK(!addr_check("172.16.0.0/12", "172.32.3.4", &priv));
	CHECK(tr_fetch_addr_in_list("10.0.0.0/33", NULL) == TR_EINVAL);
	CHECK(tr_fetch_addr_in_list("not-an-ip", NULL) == TR_EINVAL);
	CHECK(tr_fetch_addr_in_list("10.0.0.0/", NULL) == TR_EINVAL);
	CHECK(tr_fetch_addr_in_list("", NULL) == 0);
	/* content-type allow list */
	const char *list = "text/html,application/json,image/";
	CHECK(tr_fetch_type_allowed(list, "text/html; charset=utf-8"));
	CHECK(tr_fetch_type_allowed(list, "TEXT/HTML"));
	CHECK(tr_fetch_type_allowed(list, "image/png"));
	CHECK(!tr_fetch_type_allowed(list, "text/htmlx"));
	CHECK(!tr_fetch_type_allowed(list, "application/pdf"));
	CHECK(!tr_fetch_type_allowed(list, "text/plain"));
	CHECK(tr_fetch_type_allowed(list, NULL));
	CHECK(tr_fetch_type_allowed("*", "application/pdf"));
}

/* A process whose teardown is stuck exits with the given status once the
 * deadline passes, logging why; re-arming moves the deadline. */
static void test_exit_deadline(void)
{
	int pipefd[2];
	char out[4096] = "";
	size_t got = 0;
	int status = -1;
	CHECK(pipe(pipefd) == 0);
	int64_t t0 = tr_mono_ms();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		tr_log_setup("test", TR_LOG_LOGFMT, TR_LOG_INFO);
		tr_lifecycle_exit_deadline(0.1, 7);
		tr_lifecycle_exit_deadline(0.6, 7); /* moves it */
		sleep(20);			    /* "stuck" */
		_exit(0);
	}
	close(pipefd[1]);
	for (ssize_t n; (n = read(pipefd[0], out + got, sizeof(out) - 1 - got)) > 0;)
		got += (size_t)n;
	out[got] = '\0';
	close(pipefd[0]);
	CHECK(waitpid(pid, &status, 0) == pid);
	int64_t took = tr_mono_ms() - t0;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
	CHECK(took >= 600);  /* not at the first deadline */
	CHECK(took < 10000); /* long before the sleep ends */
	CHECK(strstr(out, "level=error") != NULL);
	CHECK(strstr(out, "shutdown did not finish in time") != NULL);
	CHECK(strstr(out, "seconds=0.6") != NULL);
}

int main(void)
{
	test_exit_deadline();
	test_fetch_rules();
	test_offsets();
	test_hostq();
	test_jsonw();
	test_head_rule();
	return check_summary();
}
