/* replay_main.c - runs a fuzz target's corpus without libFuzzer, so corpora replay as ctest tests.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * Usage: replay_<target> PATH...; each PATH is an input file or a directory
 * of them (not recursive). Every input is fed to LLVMFuzzerTestOneInput();
 * a crash or abort fails the test. Exits non-zero when no input was found.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;
	int rc = -1;

	if (f == NULL)
		goto out;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		goto out;
	/* One spare byte so that an empty file still has a valid pointer. */
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		goto out;
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "replay: cannot read %s\n", path);
	free(buf);
	if (f != NULL)
		fclose(f);
	return rc;
}

static int replay_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay the regular files in dir, in name order. */
static int replay_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, **grown, path[4096];
	size_t n = 0, cap = 0, i;
	int rc = 0;
	struct stat st;

	if (d == NULL) {
		fprintf(stderr, "replay: cannot open %s\n", dir);
		return -1;
	}
	while ((e = readdir(d)) != NULL && rc == 0) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			grown = realloc(names, cap * sizeof(*names));
			if (grown == NULL) {
				rc = -1;
				break;
			}
			names = grown;
		}
		names[n] = strdup(e->d_name);
		if (names[n] == NULL)
			rc = -1;
		else
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), replay_cmp);
	for (i = 0; i < n && rc == 0; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		rc = replay_file(path);
		if (rc == 0)
			(*count)++;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int i, rc = 0;
	struct stat st;

	for (i = 1; i < argc && rc == 0; i++) {
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = replay_dir(argv[i], &count);
		} else {
			rc = replay_file(argv[i]);
			if (rc == 0)
				count++;
		}
	}
	if (rc == 0 && count == 0) {
		fprintf(stderr, "replay: no inputs\n");
		rc = -1;
	}
	printf("replayed %zu inputs\n", count);
	printf("%zu passed, %d failed\n", rc == 0 ? count : 0, rc == 0 ? 0 : 1);
	return rc == 0 ? 0 : 1;
}
