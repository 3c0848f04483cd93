/* cdp.h - a browser process driven over the Chrome DevTools Protocol on a
 * pipe pair (--remote-debugging-pipe): the browser reads commands on its fd
 * 3 and writes replies and events on its fd 4, each message one JSON text
 * followed by a NUL byte. No WebSocket, no port.
 *
 * Non-blocking: the caller polls tr_cdp_read_fd() (and tr_cdp_write_fd()
 * while tr_cdp_want_write()) and calls tr_cdp_io(). Not thread-safe.
 */
#ifndef TR_CDP_H
#define TR_CDP_H

#include <json-c/json.h>
#include <sys/types.h>

#include "common.h"

typedef struct tr_cdp tr_cdp;

/* Start `argv[0]` (a path; argv NULL-terminated, --remote-debugging-pipe is
 * added) in its own process group, with stdin/stdout/stderr on /dev/null,
 * killed when this process dies (PR_SET_PDEATHSIG). One message read from
 * the browser may be at most `max_msg` bytes. Returns 0 and *out, TR_EIO
 * (fork/pipe failed; an exec failure shows as EOF later) or TR_ENOMEM. */
int tr_cdp_spawn(tr_cdp **out, char *const *argv, size_t max_msg);

/* SIGKILL the browser's process group, reap it, close the pipes, free.
 * NULL is a no-op. Blocks only for the reaping of a killed process. */
void tr_cdp_free(tr_cdp *c);

pid_t tr_cdp_pid(const tr_cdp *c);
int tr_cdp_read_fd(const tr_cdp *c);
int tr_cdp_write_fd(const tr_cdp *c);
bool tr_cdp_want_write(const tr_cdp *c); /* output is queued */

/* Queue command `method` with `params` (ownership moves here, even on
 * failure; NULL = {}) for target session `session` (NULL = the browser).
 * Returns the command's id (> 0) or TR_ENOMEM / TR_ETOOBIG (output queue
 * over its cap: the browser is not reading). */
int64_t tr_cdp_send(tr_cdp *c, const char *session, const char *method, json_object *params);

/* Write queued output and read what the browser sent. Returns 0, TR_EIO
 * when the browser is gone (EOF, pipe error) or TR_ETOOBIG when a message
 * passed max_msg; after an error the connection is unusable. */
int tr_cdp_io(tr_cdp *c);

/* Next complete message read, parsed (caller json_object_put()s it), or
 * NULL when none is buffered. A message that is not JSON is skipped. */
json_object *tr_cdp_next(tr_cdp *c);

#endif
