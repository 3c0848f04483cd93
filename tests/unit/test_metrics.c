/* test_metrics.c - pins the exposition text, the series cap and the /metrics
 * server's limits (loopback only). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"

static int passed, failed;

static void check(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(bool ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL %s: ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Render the registry; the caller frees. */
static char *render(void)
{
	tr_buf b;
	int rc;

	tr_buf_init(&b, 64 << 20);
	rc = tr_metrics_render(&b);
	check(rc == TR_OK, "render", "rc %d", rc);
	return tr_buf_steal(&b, NULL);
}

/* The `# HELP name` block of one family up to the next family (malloc'd),
 * or NULL. */
static char *family_block(const char *text, const char *name)
{
	char head[200];
	const char *start, *end;
	char *block = NULL;

	snprintf(head, sizeof(head), "# HELP %s ", name);
	start = text != NULL ? strstr(text, head) : NULL;
	if (start != NULL) {
		end = strstr(start + 1, "\n# HELP ");
		end = end != NULL ? end + 1 : start + strlen(start);
		block = strndup(start, (size_t)(end - start));
	}
	return block;
}

static void check_block(const char *text, const char *name, const char *want)
{
	char *got = family_block(text, name);

	check(got != NULL && strcmp(got, want) == 0, name, "\n--- want\n%s--- got\n%s", want,
	      got != NULL ? got : "(missing)\n");
	free(got);
}

static size_t count_lines(const char *text, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix);

	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, prefix, plen) == 0)
			n++;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return n;
}

static void test_before_init(void)
{
	tr_buf b;

	tr_buf_init(&b, 1024);
	tr_metrics_inc(TR_METRIC_PAGES_PROCESSED, NULL, 1); /* no-op, no crash */
	check(tr_metrics_render(&b) == TR_ESTATE, "render before init", "not TR_ESTATE");
	check(tr_metrics_serve(9, "127.0.0.1") == TR_ESTATE, "serve before init", "not TR_ESTATE");
	tr_metrics_shutdown(); /* safe when never initialised */
	tr_buf_free(&b);
}

static void test_exposition(void)
{
	const char *lag3[] = {"trawler.pages", "3"}, *lag0[] = {"trawler.pages", "0"};
	const char *odd[] = {"a\"b\\c\nd"}, *bad_utf8[] = {"\xff\xfe"};
	char *text;

	check(tr_metrics_init("test", "1.2.3") == TR_OK, "init", "failed");
	check(tr_metrics_init("test", "1.2.3") == TR_ESTATE, "init twice", "not TR_ESTATE");

	for (int i = 0; i < 3; i++)
		tr_metrics_inc(TR_METRIC_FETCHES, (const char *[]){tr_metrics_status_class(204)},
			       1);
	tr_metrics_inc(TR_METRIC_FETCHES, (const char *[]){tr_metrics_status_class(503)}, 1);
	tr_metrics_inc(TR_METRIC_FETCHES, (const char *[]){"2xx"}, -5);	   /* counters only go up */
	tr_metrics_set(TR_METRIC_FETCHES, (const char *[]){"2xx"}, 100);   /* not a gauge */
	tr_metrics_observe(TR_METRIC_FETCHES, (const char *[]){"2xx"}, 1); /* not a histogram */
	check(strcmp(tr_metrics_status_class(0), "error") == 0, "status class 0", "not error");
	check(strcmp(tr_metrics_status_class(600), "error") == 0, "status class 600", "not error");
	check(strcmp(tr_metrics_status_class(399), "3xx") == 0, "status class 399", "not 3xx");

	/* exactly representable values, so _sum has one spelling */
	tr_metrics_observe(TR_METRIC_FETCH_DURATION, NULL, 0.00390625);
	tr_metrics_observe(TR_METRIC_FETCH_DURATION, NULL, 0.0625);
	tr_metrics_observe(TR_METRIC_FETCH_DURATION, NULL, 0.5); /* le is inclusive */
	tr_metrics_observe(TR_METRIC_FETCH_DURATION, NULL, 0.75);
	tr_metrics_observe(TR_METRIC_FETCH_DURATION, NULL, 40);

	tr_metrics_set(TR_METRIC_KAFKA_LAG, lag3, 42);
	tr_metrics_set(TR_METRIC_KAFKA_LAG, lag0, 1.5);
	tr_metrics_set(TR_METRIC_KAFKA_LAG, lag3, 40);
	tr_metrics_inc(TR_METRIC_KAFKA_LAG, lag0, -0.5);

	tr_metrics_inc(TR_METRIC_HANDLER_ERRORS, odd, 2);
	tr_metrics_inc(TR_METRIC_HANDLER_ERRORS, bad_utf8, 1);
	tr_metrics_inc(TR_METRIC_PAGES_PROCESSED, NULL, 1);
	tr_metrics_inc(TR_METRIC_PAGES_PROCESSED, NULL, 1);
	tr_metrics_set(TR_METRIC_HOST_QUEUE_DEPTH, NULL, 0.1);
	tr_metrics_inc(TR_METRIC_FETCH_BYTES, NULL, 1e21);

	text = render();
	check_block(text, "trawler_fetches_total",
		    "# HELP trawler_fetches_total Fetches finished, by HTTP status class (error: "
		    "no HTTP response).\n"
		    "# TYPE trawler_fetches_total counter\n"
		    "trawler_fetches_total{status_class=\"2xx\"} 3\n"
		    "trawler_fetches_total{status_class=\"3xx\"} 0\n"
		    "trawler_fetches_total{status_class=\"4xx\"} 0\n"
		    "trawler_fetches_total{status_class=\"5xx\"} 1\n"
		    "trawler_fetches_total{status_class=\"error\"} 0\n");
	check_block(text, "trawler_fetch_duration_seconds",
		    "# HELP trawler_fetch_duration_seconds Time from fetch start to the complete "
		    "response.\n"
		    "# TYPE trawler_fetch_duration_seconds histogram\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.005\"} 1\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.01\"} 1\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.025\"} 1\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.05\"} 1\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.1\"} 2\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.25\"} 2\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"0.5\"} 3\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"1\"} 4\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"2.5\"} 4\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"5\"} 4\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"10\"} 4\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"30\"} 4\n"
		    "trawler_fetch_duration_seconds_bucket{le=\"+Inf\"} 5\n"
		    "trawler_fetch_duration_seconds_sum 41.31640625\n"
		    "trawler_fetch_duration_seconds_count 5\n");
	check_block(
	    text, "trawler_kafka_consumer_lag",
	    "# HELP trawler_kafka_consumer_lag Messages between the consumer's position and "
	    "the partition's high watermark.\n"
	    "# TYPE trawler_kafka_consumer_lag gauge\n"
	    "trawler_kafka_consumer_lag{topic=\"trawler.pages\",partition=\"3\"} 40\n"
	    "trawler_kafka_consumer_lag{topic=\"trawler.pages\",partition=\"0\"} 1\n");
	check_block(text, "trawler_handler_errors_total",
		    "# HELP trawler_handler_errors_total Consumer handler failures, by handler.\n"
		    "# TYPE trawler_handler_errors_total counter\n"
		    "trawler_handler_errors_total{handler=\"a\\\"b\\\\c\\nd\"} 2\n"
		    "trawler_handler_errors_total{handler=\"other\"} 1\n");
	check_block(text, "trawler_crawl_pending",
		    "# HELP trawler_crawl_pending URLs admitted but not yet done in a crawl (Redis "
		    "pending count).\n"
		    "# TYPE trawler_crawl_pending gauge\n");
	check_block(text, "trawler_build_info",
		    "# HELP trawler_build_info Always 1; the version label names the running "
		    "build.\n"
		    "# TYPE trawler_build_info gauge\n"
		    "trawler_build_info{version=\"1.2.3\"} 1\n");
	check(strstr(text, "\ntrawler_up 1\n") != NULL, "trawler_up", "missing");
	check(strstr(text, "\ntrawler_pages_processed_total 2\n") != NULL, "no-label counter",
	      "missing");
	check(strstr(text, "\ntrawler_host_queue_depth 0.1\n") != NULL, "shortest float",
	      "0.1 not rendered as 0.1");
	check(strstr(text, "\ntrawler_fetch_bytes_total 1e+21\n") != NULL, "large float",
	      "missing");
	check(strstr(text, "\ntrawler_limit_hits_total{limit=\"metric_label_value\"} 1\n") != NULL,
	      "label value limit", "not counted");
	check(strstr(text, "\ntrawler_retries_total 0\n") != NULL, "zero series", "missing");
	check(count_lines(text, "# TYPE ") == TR_METRIC_COUNT, "family count", "%zu",
	      count_lines(text, "# TYPE "));
	free(text);
}

static void test_series_cap(void)
{
	char val[32], *text, want[128];
	const char *vals[] = {val};

	for (int i = 0; i < TR_METRICS_MAX_SERIES + 5; i++) {
		snprintf(val, sizeof(val), "e%d", i);
		tr_metrics_inc(TR_METRIC_FETCH_ERRORS, vals, 1);
	}
	snprintf(val, sizeof(val), "e7");
	tr_metrics_inc(TR_METRIC_FETCH_ERRORS, vals, 1); /* an existing series still counts */
	text = render();
	check(count_lines(text, "trawler_fetch_errors_total{") == TR_METRICS_MAX_SERIES + 1,
	      "series cap", "%zu series", count_lines(text, "trawler_fetch_errors_total{"));
	check(strstr(text, "\ntrawler_fetch_errors_total{error=\"other\"} 5\n") != NULL,
	      "overflow series", "missing");
	check(strstr(text, "\ntrawler_fetch_errors_total{error=\"e7\"} 2\n") != NULL,
	      "existing series after cap", "missing");
	snprintf(want, sizeof(want), "\ntrawler_fetch_errors_total{error=\"e%d\"} 1\n",
		 TR_METRICS_MAX_SERIES);
	check(strstr(text, want) == NULL, "series past cap", "created");
	check(strstr(text, "\ntrawler_limit_hits_total{limit=\"metric_series\"} 5\n") != NULL,
	      "limit hit counted", "missing");
	free(text);
}

#define HOSTQ_TOP_HEAD                                                                             \
	"# HELP trawler_host_queue_depth_top Requests queued for each of the 10 politeness "       \
	"groups (hosts) with the most queued, refreshed every second.\n"                           \
	"# TYPE trawler_host_queue_depth_top gauge\n"

/* A "top N" family: each replace leaves exactly the new set. */
static void test_gauge_replace(void)
{
	const char *hosts1[] = {"a:80", "b:80", "c:80"};
	const double v1[] = {9, 4, 1};
	const char *hosts2[] = {"c:80", "d:80"};
	const double v2[] = {7, 2};
	char *text;

	tr_metrics_gauge_replace(TR_METRIC_HOST_QUEUE_TOP, 3, hosts1, v1);
	text = render();
	check_block(text, "trawler_host_queue_depth_top",
		    HOSTQ_TOP_HEAD "trawler_host_queue_depth_top{host=\"a:80\"} 9\n"
				   "trawler_host_queue_depth_top{host=\"b:80\"} 4\n"
				   "trawler_host_queue_depth_top{host=\"c:80\"} 1\n");
	free(text);
	tr_metrics_gauge_replace(TR_METRIC_HOST_QUEUE_TOP, 2, hosts2, v2);
	text = render();
	check_block(text, "trawler_host_queue_depth_top",
		    HOSTQ_TOP_HEAD "trawler_host_queue_depth_top{host=\"c:80\"} 7\n"
				   "trawler_host_queue_depth_top{host=\"d:80\"} 2\n");
	free(text);
	tr_metrics_set(TR_METRIC_HOST_QUEUE_TOP, hosts1, 5); /* set still works after */
	tr_metrics_gauge_replace(TR_METRIC_HOST_QUEUE_TOP, 0, NULL, NULL);
	tr_metrics_gauge_replace(TR_METRIC_FETCH_ERRORS, 1, hosts1, v1); /* counter: ignored */
	text = render();
	check(count_lines(text, "trawler_host_queue_depth_top{") == 0, "replace with none",
	      "%zu series", count_lines(text, "trawler_host_queue_depth_top{"));
	check(count_lines(text, "trawler_fetch_errors_total{error=\"a:80\"}") == 0,
	      "replace on a counter", "applied");
	free(text);
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int dial(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Read until EOF or `timeout_ms` without data; the caller frees. */
static char *read_all(int fd, int timeout_ms)
{
	tr_buf b;
	char chunk[4096];
	struct pollfd p = {.fd = fd, .events = POLLIN};

	tr_buf_init(&b, 16 << 20);
	while (poll(&p, 1, timeout_ms) == 1) {
		ssize_t n = recv(fd, chunk, sizeof(chunk), 0);

		if (n <= 0 || tr_buf_add(&b, chunk, (size_t)n) != TR_OK)
			break;
	}
	tr_buf_add(&b, "", 0);
	return b.data != NULL ? tr_buf_steal(&b, NULL) : strdup("");
}

/* Send `req` on a new connection and return the whole response. */
static char *http(int port, const char *req, size_t len)
{
	int fd = dial(port);
	char *resp = NULL;

	if (fd >= 0 && send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len)
		resp = read_all(fd, 10000);
	if (fd >= 0)
		close(fd);
	return resp != NULL ? resp : strdup("");
}

static char *get(int port, const char *req)
{
	return http(port, req, strlen(req));
}

/* trawler_limit_hits_total{limit="name"} now, -1 when absent. */
static double limit_hits(const char *name)
{
	char *text = render(), key[96];
	const char *p;
	double v = -1;

	snprintf(key, sizeof(key), "\ntrawler_limit_hits_total{limit=\"%s\"} ", name);
	if (text != NULL && (p = strstr(text, key)) != NULL)
		v = strtod(p + strlen(key), NULL);
	free(text);
	return v;
}

static void test_server(void)
{
	double head_hits = limit_hits("metrics_head"), timeout_hits = limit_hits("metrics_timeout");
	int port = 0, rc = TR_EIO, idle[TR_METRICS_MAX_CONNS], extra;
	char *r, *big, *body;
	size_t bigsize = TR_METRICS_HEAD_MAX + 1000;
	int64_t t0;

	check(tr_metrics_serve(0, NULL) == TR_OK, "port 0 is off", "not 0");
	check(tr_metrics_serve(70000, NULL) == TR_EINVAL, "bad port", "not TR_EINVAL");
	for (int tries = 0; tries < 5 && rc == TR_EIO; tries++) {
		port = free_port();
		rc = tr_metrics_serve(port, "127.0.0.1");
	}
	check(rc == TR_OK, "serve", "rc %d", rc);
	if (rc != TR_OK)
		return;
	check(tr_metrics_serve(port, "127.0.0.1") == TR_ESTATE, "serve twice", "not TR_ESTATE");

	r = get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	body = strstr(r, "\r\n\r\n");
	check(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "GET /metrics", "%.60s", r);
	check(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != NULL,
	      "content type", "missing");
	check(strstr(r, "\r\nConnection: close\r\n") != NULL, "connection close", "missing");
	check(strstr(r, "\r\nServer: trawler-test\r\n") != NULL, "server header", "missing");
	check(body != NULL && strstr(body, "\ntrawler_build_info{version=\"1.2.3\"} 1\n") != NULL,
	      "metrics body", "missing");
	if (body != NULL) {
		char want[64];

		snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body + 4));
		check(strstr(r, want) != NULL, "content length", "want %s", want + 2);
	}
	free(r);

	r = get(port, "GET /healthz HTTP/1.0\r\n\r\n");
	check(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0 && strstr(r, "\r\n\r\nok\n") != NULL,
	      "healthz", "%.80s", r);
	free(r);
	r = get(port, "HEAD /metrics?x=1 HTTP/1.1\r\n\r\n");
	body = strstr(r, "\r\n\r\n");
	check(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0 && body != NULL && body[4] == '\0',
	      "HEAD without body", "%.80s", r);
	free(r);
	r = get(port, "GET /nope HTTP/1.1\r\n\r\n");
	check(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "404", "%.60s", r);
	free(r);
	r = get(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	check(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "405", "%.60s", r);
	free(r);
	r = get(port, "garbage\r\n\r\n");
	check(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "400", "%.60s", r);
	free(r);

	/* a head that never ends within the cap */
	big = malloc(bigsize);
	if (big != NULL) {
		memset(big, 'a', bigsize);
		memcpy(big, "GET /metrics HTTP/1.1\r\nX-Pad: ", 30);
		r = http(port, big, bigsize);
		check(strncmp(r, "HTTP/1.1 431 ", 13) == 0, "head over 8 KiB", "%.60s", r);
		free(r);
		free(big);
	}
	check(head_hits >= 0 && limit_hits("metrics_head") == head_hits + 1, "head cap counted",
	      "metrics_head %g -> %g", head_hits, limit_hits("metrics_head"));

	/* Fill every slot with an idle client: one more connection waits in the
	 * backlog until a slot frees. */
	usleep(200 * 1000); /* let earlier connections finish lingering */
	t0 = tr_mono_ms();
	for (int i = 0; i < TR_METRICS_MAX_CONNS; i++)
		idle[i] = dial(port);
	extra = dial(port);
	if (extra >= 0) {
		send(extra, "GET /healthz HTTP/1.1\r\n\r\n", 25, MSG_NOSIGNAL);
		struct pollfd p = {.fd = extra, .events = POLLIN};

		check(poll(&p, 1, 500) == 0, "connection cap", "17th connection served");
		close(idle[0]);
		idle[0] = -1;
		r = read_all(extra, 4000);
		check(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "served after a slot frees",
		      "%.60s", r);
		free(r);
		close(extra);
	}
	/* the idle ones are dropped after the read timeout */
	if (idle[1] >= 0) {
		char c;
		struct pollfd p = {.fd = idle[1], .events = POLLIN};
		int64_t waited;

		poll(&p, 1, TR_METRICS_READ_TIMEOUT_MS + 5000);
		waited = tr_mono_ms() - t0;
		check(recv(idle[1], &c, 1, MSG_DONTWAIT) == 0, "read timeout", "not closed");
		check(waited >= TR_METRICS_READ_TIMEOUT_MS - 500 &&
			  waited < TR_METRICS_READ_TIMEOUT_MS + 4000,
		      "read timeout", "closed after %lld ms", (long long)waited);
		check(timeout_hits >= 0 && limit_hits("metrics_timeout") > timeout_hits,
		      "read timeout counted", "metrics_timeout %g -> %g", timeout_hits,
		      limit_hits("metrics_timeout"));
	}
	for (int i = 0; i < TR_METRICS_MAX_CONNS; i++)
		if (idle[i] >= 0)
			close(idle[i]);
}

int main(void)
{
	test_before_init();
	test_exposition();
	test_series_cap();
	test_gauge_replace();
	test_server();
	tr_metrics_shutdown();
	/* registry usable again after shutdown */
	check(tr_metrics_init("test", NULL) == TR_OK, "re-init", "failed");
	{
		char *text = render();

		check(strstr(text, "\ntrawler_build_info{version=\"unknown\"} 1\n") != NULL &&
			  strstr(text, "\ntrawler_fetches_total{status_class=\"2xx\"} 0\n") != NULL,
		      "fresh after re-init", "stale values");
		free(text);
	}
	tr_metrics_shutdown();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
