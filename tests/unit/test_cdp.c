/* test_cdp.c - the DevTools pipe transport against a fake browser
 * (tests/data/cdp/fake_browser.py): framing, sessions, the message cap,
 * EOF when the browser exits. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdp.h"
#include "check.h"

/* Do I/O until a message arrives or the connection fails (3 s at most). */
static json_object *next_msg(tr_cdp *c, int *rc)
{
	json_object *m = NULL;
	for (int i = 0; i < 300 && !m; i++) {
		struct pollfd p[2] = {{tr_cdp_read_fd(c), POLLIN, 0},
				      {tr_cdp_write_fd(c), POLLOUT, 0}};
		poll(p, tr_cdp_want_write(c) ? 2 : 1, 10);
		*rc = tr_cdp_io(c);
		m = tr_cdp_next(c);
		if (*rc != TR_OK)
			break;
	}
	return m;
}

static const char *field(json_object *m, const char *a, const char *b)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(m, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_get_string(v);
}

static tr_cdp *start(const char *data_dir, size_t max_msg)
{
	char script[1024];
	tr_cdp *c = NULL;
	snprintf(script, sizeof(script), "%s/cdp/fake_browser.py", data_dir);
	char *argv[] = {(char *)"/usr/bin/python3", script, NULL};
	CHECK(tr_cdp_spawn(&c, argv, max_msg) == TR_OK);
	return c;
}

int main(int argc, char **argv)
{
	const char *data = argc > 1 ? argv[1] : "tests/data";
	int rc = 0;
	json_object *m;
	tr_cdp *c = start(data, 1024 * 1024);
	if (!c)
		return check_summary();

	/* an event and a reply in one read, a non-JSON message skipped */
	int64_t id = tr_cdp_send(c, "S1", "Echo", NULL);
	CHECK(id == 1);
	m = next_msg(c, &rc);
	CHECK_STR(m ? field(m, "method", NULL) : NULL, "Ev");
	json_object_put(m);
	m = next_msg(c, &rc);
	CHECK(m && json_object_get_int64(json_object_object_get(m, "id")) == id);
	CHECK_STR(m ? field(m, "result", "method") : NULL, "Echo");
	CHECK_STR(m ? field(m, "result", "session") : NULL, "S1");
	json_object_put(m);

	/* a reply that arrives in two reads */
	id = tr_cdp_send(c, NULL, "Split", json_object_new_object());
	m = next_msg(c, &rc);
	CHECK(rc == TR_OK && m && json_object_get_int64(json_object_object_get(m, "id")) == id);
	CHECK_STR(m ? field(m, "result", "session") : NULL, "");
	json_object_put(m);

	/* the browser exits: EOF */
	tr_cdp_send(c, NULL, "Exit", NULL);
	m = next_msg(c, &rc);
	CHECK(!m && rc == TR_EIO);
	tr_cdp_free(c);

	/* a message over the cap fails the connection instead of growing */
	c = start(data, 1024 * 1024);
	if (c) {
		tr_cdp_send(c, NULL, "Big", NULL);
		m = next_msg(c, &rc);
		CHECK(!m && rc == TR_ETOOBIG);
		tr_cdp_free(c);
	}

	/* exec failure shows as EOF */
	char *bad[] = {(char *)"/nonexistent/browser", NULL};
	CHECK(tr_cdp_spawn(&c, bad, 1024) == TR_OK);
	m = next_msg(c, &rc);
	CHECK(!m && rc == TR_EIO);
	tr_cdp_free(c);
	return check_summary();
}
