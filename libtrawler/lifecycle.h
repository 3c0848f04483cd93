/* lifecycle.h - process start-up and stop plumbing shared by the workers:
 * settings + logging set-up, SIGTERM/SIGINT handling, a wake-up pipe. */
#ifndef TR_LIFECYCLE_H
#define TR_LIFECYCLE_H

#include "settings.h"

/* Load settings for `exe`, handle --help, set up logging and the default
 * worker id (HOSTNAME-PID). Returns 0 to go on, 1 when the program should
 * exit 0 (help printed), or 2 after printing a usage error to stderr. */
int tr_lifecycle_init(tr_settings *s, unsigned exe, const char *component, const char *usage,
		      int argc, char **argv, char ***positional, int *npositional);

/* Start the metrics registry and, when s->metrics_port is set, its HTTP
 * endpoint. Returns 0 or an error (logged). */
int tr_lifecycle_metrics(const tr_settings *s, const char *component);

/* Install SIGTERM/SIGINT handlers that set the stop flag and write to the
 * wake pipe; ignore SIGPIPE. Returns 0 or TR_EIO. */
int tr_lifecycle_signals(void);

/* True once SIGTERM or SIGINT arrived (async-signal-safe flag). */
bool tr_lifecycle_stopping(void);

/* Request a stop from inside the program (same effect as a signal). */
void tr_lifecycle_request_stop(void);

/* Read end of the wake pipe (readable after a signal or tr_lifecycle_wake),
 * and a function that drains it. */
int tr_lifecycle_wake_fd(void);
void tr_lifecycle_wake(void);
void tr_lifecycle_drain(void);

/* Shutdown bounds of both workers: waiting for the group to revoke their
 * partitions before close (tr_kafka_consumer_leave), and the whole teardown
 * after --stop-timeout has run out (tr_lifecycle_exit_deadline). */
#define TR_LEAVE_TIMEOUT_MS 10000
#define TR_TEARDOWN_GRACE_S 60

/* Bound what is left of the process's life, for shutdown: if it is still
 * running `seconds` from now (a close stuck inside a library), log an error
 * and _exit(rc) without further clean-up. Work that was acknowledged stays
 * done; offsets not committed are delivered again. Arm once, right before
 * teardown; a second call only moves the deadline. Returns 0 or TR_EIO when
 * the watchdog thread cannot start (shutdown then goes on unbounded). */
int tr_lifecycle_exit_deadline(double seconds, int rc);

#endif
