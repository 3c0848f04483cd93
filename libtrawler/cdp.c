/* cdp.c - DevTools protocol transport over --remote-debugging-pipe. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdp.h"
#include "log.h"

#define OUT_MAX (16 * 1024 * 1024) /* queued commands; the browser reads them fast */
#define READ_CHUNK (256 * 1024)

struct tr_cdp {
	pid_t pid;
	int wfd; /* our end of the browser's fd 3 */
	int rfd; /* our end of the browser's fd 4 */
	char *out;
	size_t out_len, out_off, out_cap;
	char *in;
	size_t in_len, in_cap, in_scan, max_msg;
	int64_t next_id;
};

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* In the child: move the pipe ends to fds 3 and 4 and exec. */
static void child_exec(char *const *argv, int rd, int wr)
{
	int devnull = open("/dev/null", O_RDWR);
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* above 4 first, so dup2 to 3/4 cannot clobber the other end */
	rd = fcntl(rd, F_DUPFD, 10);
	wr = fcntl(wr, F_DUPFD, 10);
	if (devnull < 0 || rd < 0 || wr < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 ||
	    dup2(devnull, 2) < 0 || dup2(rd, 3) < 0 || dup2(wr, 4) < 0)
		_exit(127);
	execv(argv[0], argv);
	_exit(127);
}

int tr_cdp_spawn(tr_cdp **out, char *const *argv, size_t max_msg)
{
	int to[2] = {-1, -1}, from[2] = {-1, -1};
	int rc = TR_EIO;
	size_t n = 0;
	char **args = NULL;
	tr_cdp *c = calloc(1, sizeof(*c));
	while (argv[n])
		n++;
	args = calloc(n + 2, sizeof(*args));
	if (!c || !args) {
		rc = TR_ENOMEM;
		goto fail;
	}
	memcpy(args, argv, n * sizeof(*args));
	args[n] = (char *)"--remote-debugging-pipe";
	if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
		goto fail;
	c->pid = fork();
	if (c->pid < 0)
		goto fail;
	if (c->pid == 0)
		child_exec(args, to[0], from[1]);
	close(to[0]);
	close(from[1]);
	c->wfd = to[1];
	c->rfd = from[0];
	set_nonblock(c->wfd);
	set_nonblock(c->rfd);
	c->max_msg = max_msg;
	free(args);
	*out = c;
	return TR_OK;
fail:
	for (int i = 0; i < 2; i++) {
		if (to[i] >= 0)
			close(to[i]);
		if (from[i] >= 0)
			close(from[i]);
	}
	free(args);
	free(c);
	return rc;
}

void tr_cdp_free(tr_cdp *c)
{
	if (!c)
		return;
	if (c->pid > 0) {
		kill(-c->pid, SIGKILL); /* renderers and helpers too */
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	close(c->wfd);
	close(c->rfd);
	free(c->out);
	free(c->in);
	free(c);
}

pid_t tr_cdp_pid(const tr_cdp *c)
{
	return c->pid;
}

int tr_cdp_read_fd(const tr_cdp *c)
{
	return c->rfd;
}

int tr_cdp_write_fd(const tr_cdp *c)
{
	return c->wfd;
}

bool tr_cdp_want_write(const tr_cdp *c)
{
	return c->out_off < c->out_len;
}

int64_t tr_cdp_send(tr_cdp *c, const char *session, const char *method, json_object *params)
{
	int64_t rc;
	json_object *m = json_object_new_object();
	const char *text;
	size_t len;
	if (!m) {
		json_object_put(params);
		return TR_ENOMEM;
	}
	rc = ++c->next_id;
	json_object_object_add(m, "id", json_object_new_int64(rc));
	json_object_object_add(m, "method", json_object_new_string(method));
	json_object_object_add(m, "params", params ? params : json_object_new_object());
	if (session)
		json_object_object_add(m, "sessionId", json_object_new_string(session));
	text = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
	len = text ? strlen(text) + 1 : 0; /* with its NUL terminator */
	if (!text) {
		rc = TR_ENOMEM;
		goto out;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > OUT_MAX) {
		rc = TR_ETOOBIG;
		goto out;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		char *nb = realloc(c->out, cap);
		if (!nb) {
			rc = TR_ENOMEM;
			goto out;
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, text, len);
	c->out_len += len;
out:
	json_object_put(m);
	return rc;
}

int tr_cdp_io(tr_cdp *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = write(c->wfd, c->out + c->out_off, c->out_len - c->out_off);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return TR_EIO;
	}
	for (;;) {
		if (c->in_len + READ_CHUNK > c->in_cap) {
			/* a message never grows past max_msg, so neither does the buffer */
			if (c->in_len > c->max_msg)
				return TR_ETOOBIG;
			size_t cap = c->in_len + READ_CHUNK;
			char *nb = realloc(c->in, cap);
			if (!nb)
				return TR_ENOMEM;
			c->in = nb;
			c->in_cap = cap;
		}
		ssize_t r = read(c->rfd, c->in + c->in_len, c->in_cap - c->in_len);
		if (r > 0) {
			c->in_len += (size_t)r;
			if (!memchr(c->in + c->in_scan, '\0', c->in_len - c->in_scan) &&
			    c->in_len > c->max_msg)
				return TR_ETOOBIG;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return TR_EIO; /* EOF: the browser exited */
	}
	return TR_OK;
}

json_object *tr_cdp_next(tr_cdp *c)
{
	json_object *m = NULL;
	while (!m) {
		char *nul = c->in_len > c->in_scan
				? memchr(c->in + c->in_scan, '\0', c->in_len - c->in_scan)
				: NULL;
		if (!nul) {
			c->in_scan = c->in_len;
			break;
		}
		size_t mlen = (size_t)(nul - c->in);
		m = json_tokener_parse(c->in); /* stops at the NUL */
		if (m && !json_object_is_type(m, json_type_object)) {
			json_object_put(m);
			m = NULL;
		}
		memmove(c->in, nul + 1, c->in_len - mlen - 1);
		c->in_len -= mlen + 1;
		c->in_scan = 0;
	}
	return m;
}
