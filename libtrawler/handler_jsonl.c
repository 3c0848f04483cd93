/* handler_jsonl.c - the pages.jsonl sink: one JSON line per page, appended
 * with one write per flush (O_APPEND, so several consumers can share the
 * file), fdatasync'ed on flush, rotated by size.
 * Config: dir=DIR (default "out"), max_bytes=N (rotate past N, default
 * 1 GiB; 0 = never), name=FILE (default pages.jsonl). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "pipeline.h"

#define JSONL_BUF_MAX (256u * 1024 * 1024)

typedef struct jsonl {
	char path[4096];
	long long max_bytes;
	int fd;
	ino_t ino;
	tr_buf buf;
	unsigned rotations;
} jsonl;

static int jsonl_open(jsonl *j)
{
	struct stat st;
	if (j->fd >= 0)
		close(j->fd);
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (j->fd < 0 || fstat(j->fd, &st) != 0) {
		tr_log(TR_LOG_ERROR, "cannot open output", 2, "path", j->path, "error",
		       strerror(errno));
		return TR_EIO;
	}
	j->ino = st.st_ino;
	return TR_OK;
}

static int jsonl_create(void **state, const char *config, const tr_page_api *api, void *payload)
{
	char dir[2048] = "out", name[256] = "pages.jsonl", num[32];
	jsonl *j = calloc(1, sizeof(*j));
	if (!j)
		return TR_ENOMEM;
	j->fd = -1;
	j->max_bytes = 1LL << 30;
	tr_pipeline_conf(config, "dir", dir, sizeof(dir));
	tr_pipeline_conf(config, "name", name, sizeof(name));
	if (tr_pipeline_conf(config, "max_bytes", num, sizeof(num)))
		j->max_bytes = atoll(num);
	tr_buf_init(&j->buf, JSONL_BUF_MAX);
	snprintf(j->path, sizeof(j->path), "%s/%s", dir, name);
	if ((mkdir(dir, 0755) != 0 && errno != EEXIST) || jsonl_open(j) != TR_OK) {
		tr_log(TR_LOG_ERROR, "cannot create output directory", 1, "dir", dir);
		tr_buf_free(&j->buf);
		free(j);
		return TR_EIO;
	}
	*state = j;
	return TR_OK;
}

static int jsonl_process(void *state, tr_page_view *view, const char **reason, void *payload)
{
	jsonl *j = state;
	size_t mark = j->buf.len;
	if (tr_page_jsonl(&j->buf, tr_pipeline_page(view)) != TR_OK) {
		j->buf.len = mark;
		*reason = "pages.jsonl line over the batch buffer cap";
		return TR_ETOOBIG;
	}
	return TR_OK;
}

/* Rotate when the file would pass max_bytes; follow another consumer's
 * rotation (the path then names a new file). */
static int jsonl_rotate(jsonl *j)
{
	struct stat st, cur;
	if (stat(j->path, &cur) != 0 || cur.st_ino != j->ino)
		return jsonl_open(j);
	if (j->max_bytes <= 0 || fstat(j->fd, &st) != 0 ||
	    st.st_size + (off_t)j->buf.len <= j->max_bytes || st.st_size == 0)
		return TR_OK;
	char rotated[4200];
	snprintf(rotated, sizeof(rotated), "%.4090s.%lld-%d-%u", j->path, (long long)tr_now_ms(),
		 (int)getpid(), ++j->rotations);
	if (rename(j->path, rotated) != 0)
		return TR_EIO;
	return jsonl_open(j);
}

static int jsonl_flush(void *state, void *payload)
{
	jsonl *j = state;
	const char *p = j->buf.data;
	size_t n = j->buf.len;
	if (n == 0)
		return TR_OK;
	if (jsonl_rotate(j) != TR_OK)
		return TR_EIO;
	while (n > 0) {
		ssize_t w = write(j->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			tr_log(TR_LOG_ERROR, "cannot write pages.jsonl", 1, "error",
			       strerror(errno));
			return TR_EIO;
		}
		p += w;
		n -= (size_t)w;
	}
	if (fdatasync(j->fd) != 0)
		return TR_EIO;
	tr_buf_reset(&j->buf);
	return TR_OK;
}

static void jsonl_destroy(void *state, void *payload)
{
	jsonl *j = state;
	if (j->fd >= 0)
		close(j->fd);
	tr_buf_free(&j->buf);
	free(j);
}

const tr_handler tr_handler_jsonl = {
    TR_HANDLER_ABI_VERSION, "jsonl", jsonl_create, jsonl_process, jsonl_flush, jsonl_destroy,
};
