/* test_settings.c - option precedence (default < file < env < flag), the
 * kafka.* pass-through, every kind of invalid-value message, and the
 * message of every numeric and boolean option of the table. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "settings.h"

static int load(tr_settings *s, unsigned exe, int argc, const char **argv, char *err, size_t n)
{
	char **pos = NULL;
	int npos = 0;
	bool help = false;
	int rc = tr_settings_load(s, exe, argc, (char **)argv, &pos, &npos, &help, err, n);
	free(pos);
	return rc;
}

extern char **environ;

/* The tests run inside test.sh, which exports TRAWLER_* for the services. */
static void clear_trawler_env(void)
{
	for (;;) {
		char name[256] = "";
		for (char **e = environ; *e; e++) {
			if (strncmp(*e, "TRAWLER_", 8) == 0) {
				snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
				break;
			}
		}
		if (!name[0])
			break;
		unsetenv(name);
	}
}

/* `--name=value` must fail with the message naming the option, the value
 * and `accepted`. */
static void expect_rejected(unsigned exe, const char *name, const char *value, const char *accepted)
{
	char flag[160], want[256], err[512] = "";
	tr_settings s;
	const char *av[] = {"x", flag};
	snprintf(flag, sizeof(flag), "--%s=%s", name, value); /* a bool flag alone takes no value */
	snprintf(want, sizeof(want), "option %s: invalid value '%s' (accepted: %s)", name, value,
		 accepted);
	int rc = load(&s, exe, 2, av, err, sizeof(err));
	if (rc == TR_EINVAL && strstr(err, want)) {
		check_passed++;
	} else {
		check_failed++;
		fprintf(stderr, "--%s %s: rc %d, message '%s', want '%s'\n", name, value, rc, err,
			want);
	}
	tr_settings_free(&s);
}

/* Every integer, number and boolean option as the table lists it (the same
 * rows as --help and docs/options.md): a value below and above its range
 * and one that is not a number are refused with the range in the message. */
static void test_every_option_message(void)
{
	char *md = NULL, *save = NULL;
	size_t len = 0;
	int rows = 0, tested = 0;
	FILE *f = open_memstream(&md, &len);
	CHECK(f != NULL);
	if (!f)
		return;
	tr_settings_print_markdown(f);
	fclose(f);
	for (char *line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *col[8] = {0}, *p = line, name[64], accepted[96];
		int n = 0;
		if (strncmp(line, "| `--", 5) != 0)
			continue;
		rows++;
		while (n < 8 && (p = strchr(p, '|'))) { /* columns 1..6 hold no '|' */
			*p++ = '\0';
			col[n++] = p;
		}
		if (n < 7 || sscanf(col[0], " `--%63[^`]`", name) != 1) {
			CHECK(!"option row parses");
			continue;
		}
		char *type = strtok(col[2], " "), *range = strtok(col[4], " ");
		unsigned exe = strstr(col[5], "producer")   ? TR_EXE_PRODUCER
			       : strstr(col[5], "consumer") ? TR_EXE_CONSUMER
							    : TR_EXE_CTL;
		char lo[48], hi[48];
		if (type && strcmp(type, "bool") == 0) {
			expect_rejected(exe, name, "maybe", "true or false");
			tested++;
		} else if (type && range && strcmp(type, "integer") == 0) {
			long a = strtol(range, NULL, 10),
			     b = strtol(strstr(range, "..") + 2, NULL, 10);
			snprintf(accepted, sizeof(accepted), "integer %s", range);
			snprintf(lo, sizeof(lo), "%ld", a - 1);
			snprintf(hi, sizeof(hi), "%ld", b + 1);
			if (a > LONG_MIN)
				expect_rejected(exe, name, lo, accepted);
			if (b < LONG_MAX)
				expect_rejected(exe, name, hi, accepted);
			expect_rejected(exe, name, "12x", accepted);
			tested++;
		} else if (type && range && strcmp(type, "number") == 0) {
			double a = strtod(range, NULL), b = strtod(strstr(range, "..") + 2, NULL);
			snprintf(accepted, sizeof(accepted), "number %s", range);
			snprintf(lo, sizeof(lo), "%.17g", a - 1);
			snprintf(hi, sizeof(hi), "%.17g", b * 2 + 1);
			expect_rejected(exe, name, lo, accepted);
			expect_rejected(exe, name, hi, accepted);
			expect_rejected(exe, name, "nan", accepted);
			tested++;
		}
	}
	free(md);
	fprintf(stderr, "every-option messages: %d of %d options are numeric or boolean\n", tested,
		rows);
	CHECK(rows >= 50 && tested >= 40);
}

int main(void)
{
	tr_settings s;
	char err[512];
	char path[] = "/tmp/trawler-settings-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	clear_trawler_env();
	fprintf(f, "# comment\ndelay = 2.5\nhost-connections = 3\nuser-agent = from-file\n"
		   "kafka.linger.ms = 7\n");
	fclose(f);

	/* defaults */
	const char *a0[] = {"p"};
	unsetenv("TRAWLER_DELAY");
	unsetenv("TRAWLER_CONFIG");
	CHECK(load(&s, TR_EXE_PRODUCER, 1, a0, err, sizeof(err)) == TR_OK);
	CHECK(s.delay == 1.0 && s.host_connections == 1 && s.concurrency == 256);
	CHECK_STR(s.brokers, "127.0.0.1:9092");
	tr_settings_free(&s);

	/* file < env < flag */
	const char *a1[] = {"p", "--config", path};
	CHECK(load(&s, TR_EXE_PRODUCER, 3, a1, err, sizeof(err)) == TR_OK);
	CHECK(s.delay == 2.5 && s.host_connections == 3);
	CHECK_STR(s.user_agent, "from-file");
	CHECK(s.kafka_count == 1);
	CHECK_STR(s.kafka_keys[0], "linger.ms");
	CHECK_STR(s.kafka_values[0], "7");
	tr_settings_free(&s);

	setenv("TRAWLER_DELAY", "4", 1);
	CHECK(load(&s, TR_EXE_PRODUCER, 3, a1, err, sizeof(err)) == TR_OK);
	CHECK(s.delay == 4.0 && s.host_connections == 3);
	tr_settings_free(&s);

	const char *a2[] = {
	    "p", "--config", path, "--delay", "0.5", "--kafka.linger.ms=9", "--exit-when-done"};
	CHECK(load(&s, TR_EXE_PRODUCER, 7, a2, err, sizeof(err)) == TR_OK);
	CHECK(s.delay == 0.5 && s.exit_when_done);
	CHECK(s.kafka_count == 1);
	CHECK_STR(s.kafka_values[0], "9");
	tr_settings_free(&s);
	unsetenv("TRAWLER_DELAY");

	/* a line over the 4094-byte cap stops the start instead of being read
	 * as two lines (its tail would be parsed as another `name = value`) */
	{
		char longpath[] = "/tmp/trawler-settings-long-XXXXXX";
		int lfd = mkstemp(longpath);
		FILE *lf = fdopen(lfd, "w");
		const char *al[] = {"p", "--config", longpath};

		fprintf(lf, "user-agent = ");
		for (int i = 0; i < 5000; i++)
			fputc('u', lf);
		fprintf(lf, "delay = 7\n");
		fclose(lf);
		CHECK(load(&s, TR_EXE_PRODUCER, 3, al, err, sizeof(err)) == TR_EINVAL);
		CHECK(strstr(err, ":1: line longer than 4094 bytes") != NULL);
		tr_settings_free(&s); /* on failure too (settings.h) */
		unlink(longpath);
	}

	/* TRAWLER_CONFIG names the file too */
	setenv("TRAWLER_CONFIG", path, 1);
	CHECK(load(&s, TR_EXE_PRODUCER, 1, a0, err, sizeof(err)) == TR_OK);
	CHECK(s.delay == 2.5);
	tr_settings_free(&s);
	unsetenv("TRAWLER_CONFIG");

	/* --no-NAME and --name=value */
	const char *a3[] = {"p", "--robots=false", "--no-allow-private", "--timeout=3"};
	CHECK(load(&s, TR_EXE_PRODUCER, 4, a3, err, sizeof(err)) == TR_OK);
	CHECK(!s.robots && !s.allow_private && s.timeout == 3.0);
	tr_settings_free(&s);

	/* invalid values: the message names the option and the accepted range */
	struct {
		const char *flag, *value, *want;
	} bad[] = {
	    {"--delay", "abc", "option delay: invalid value 'abc' (accepted: number 0..3600)"},
	    {"--delay", "-1", "option delay: invalid value '-1' (accepted: number 0..3600)"},
	    {"--delay", "nan", "option delay: invalid value 'nan' (accepted: number 0..3600)"},
	    {"--host-connections", "0",
	     "option host-connections: invalid value '0' (accepted: integer 1..1000)"},
	    {"--concurrency", "12x",
	     "option concurrency: invalid value '12x' (accepted: integer 1..10000)"},
	    {"--exit-when-done=maybe", NULL,
	     "option exit-when-done: invalid value 'maybe' (accepted: true or false)"},
	    {"--log-format", "xml",
	     "option log-format: invalid value 'xml' (accepted: logfmt, json)"},
	    {"--log-level", "loud",
	     "option log-level: invalid value 'loud' (accepted: debug, info, warn, error)"},
	    {"--crawl-id", "a b",
	     "option crawl-id: invalid value 'a b' (accepted: letters, digits, - _ .)"},
	    {"--bogus", "1", "unknown option --bogus (see --help)"},
	    {"--delay", NULL, "option --delay: missing value"},
	    {"--out", "x", "unknown option --out (see --help)"}, /* consumer-only */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *av[] = {"p", bad[i].flag, bad[i].value};
		int ac = bad[i].value ? 3 : 2;
		err[0] = '\0';
		CHECK(load(&s, TR_EXE_PRODUCER, ac, av, err, sizeof(err)) == TR_EINVAL);
		if (!strstr(err, bad[i].want)) {
			check_failed++;
			fprintf(stderr, "case %zu: message '%s' lacks '%s'\n", i, err, bad[i].want);
		} else {
			check_passed++;
		}
		tr_settings_free(&s);
	}
	/* env and file errors name their source */
	setenv("TRAWLER_TIMEOUT", "0", 1);
	CHECK(load(&s, TR_EXE_PRODUCER, 1, a0, err, sizeof(err)) == TR_EINVAL);
	CHECK(strstr(err, "TRAWLER_TIMEOUT: option timeout: invalid value '0'") != NULL);
	tr_settings_free(&s);
	unsetenv("TRAWLER_TIMEOUT");
	f = fopen(path, "w");
	fprintf(f, "delay = 1\nnot-an-option = 3\n");
	fclose(f);
	CHECK(load(&s, TR_EXE_PRODUCER, 3, a1, err, sizeof(err)) == TR_EINVAL);
	CHECK(strstr(err, ":2: unknown option 'not-an-option'") != NULL);
	tr_settings_free(&s);
	unlink(path);
	test_every_option_message();
	return check_summary();
}
