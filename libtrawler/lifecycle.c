/* lifecycle.c - worker start-up, signal handling and wake-up pipe. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle.h"
#include "log.h"
#include "metrics.h"

static volatile sig_atomic_t stop_flag;
static int wake_pipe[2] = {-1, -1};

/* exit deadline, read by the watchdog thread */
static pthread_mutex_t deadline_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t deadline_ms; /* tr_mono_ms(); 0: no watchdog yet */
static double deadline_s;
static int deadline_rc;

int tr_lifecycle_init(tr_settings *s, unsigned exe, const char *component, const char *usage,
		      int argc, char **argv, char ***positional, int *npositional)
{
	char err[1024];
	bool help = false;
	tr_log_level lvl = TR_LOG_INFO;
	tr_log_format fmt = TR_LOG_LOGFMT;
	if (tr_settings_load(s, exe, argc, argv, positional, npositional, &help, err,
			     sizeof(err)) != TR_OK) {
		fprintf(stderr, "%s: %s\n", component, err);
		return 2;
	}
	if (help) {
		tr_settings_print_help(stdout, exe, usage);
		return 1;
	}
	tr_log_parse_level(&lvl, s->log_level);
	tr_log_parse_format(&fmt, s->log_format);
	tr_log_setup(component, fmt, lvl);
	if (!s->worker_id) {
		char host[128] = "host";
		char id[200];
		gethostname(host, sizeof(host) - 1);
		snprintf(id, sizeof(id), "%s-%ld", host, (long)getpid());
		s->worker_id = strdup(id);
		if (!s->worker_id)
			return 2;
	}
	return 0;
}

int tr_lifecycle_metrics(const tr_settings *s, const char *component)
{
	int rc = tr_metrics_init(component, TRAWLER_VERSION);
	if (rc == TR_OK && s->metrics_port > 0) {
		rc = tr_metrics_serve((int)s->metrics_port, s->metrics_bind);
		if (rc != TR_OK)
			tr_log(TR_LOG_ERROR, "cannot serve metrics", 1, "bind", s->metrics_bind);
	}
	return rc;
}

static void on_signal(int sig)
{
	int saved = errno;
	stop_flag = 1;
	if (wake_pipe[1] >= 0) {
		ssize_t w = write(wake_pipe[1], "s", 1);
		TR_UNUSED(w);
	}
	errno = saved;
	TR_UNUSED(sig);
}

int tr_lifecycle_signals(void)
{
	struct sigaction sa;
	if (wake_pipe[0] < 0) {
		if (pipe(wake_pipe) != 0)
			return TR_EIO;
		for (int i = 0; i < 2; i++) {
			fcntl(wake_pipe[i], F_SETFL, fcntl(wake_pipe[i], F_GETFL) | O_NONBLOCK);
			fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
		}
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return TR_OK;
}

bool tr_lifecycle_stopping(void)
{
	return stop_flag != 0;
}

void tr_lifecycle_request_stop(void)
{
	stop_flag = 1;
	tr_lifecycle_wake();
}

int tr_lifecycle_wake_fd(void)
{
	return wake_pipe[0];
}

void tr_lifecycle_wake(void)
{
	if (wake_pipe[1] >= 0) {
		ssize_t w = write(wake_pipe[1], "w", 1);
		TR_UNUSED(w);
	}
}

void tr_lifecycle_drain(void)
{
	char buf[64];
	while (wake_pipe[0] >= 0 && read(wake_pipe[0], buf, sizeof(buf)) > 0)
		;
}

static void *watchdog(void *arg)
{
	TR_UNUSED(arg);
	for (;;) {
		pthread_mutex_lock(&deadline_lock);
		int64_t left = deadline_ms - tr_mono_ms();
		int rc = deadline_rc;
		double secs = deadline_s;
		pthread_mutex_unlock(&deadline_lock);
		if (left <= 0) {
			char num[32];
			snprintf(num, sizeof(num), "%.1f", secs);
			tr_log(TR_LOG_ERROR,
			       "shutdown did not finish in time, exiting without clean-up", 1,
			       "seconds", num);
			_exit(rc);
		}
		if (left > 200)
			left = 200;
		struct timespec ts = {0, (long)left * 1000000L};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int tr_lifecycle_exit_deadline(double seconds, int rc)
{
	pthread_t t;
	pthread_attr_t attr;
	int ret = TR_OK;
	pthread_mutex_lock(&deadline_lock);
	bool first = deadline_ms == 0;
	deadline_ms = tr_mono_ms() + (int64_t)(seconds * 1000);
	deadline_s = seconds;
	deadline_rc = rc;
	pthread_mutex_unlock(&deadline_lock);
	if (first) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, watchdog, NULL) != 0) {
			tr_log(TR_LOG_WARN, "cannot start the shutdown watchdog", 0);
			ret = TR_EIO;
		}
		pthread_attr_destroy(&attr);
	}
	return ret;
}
