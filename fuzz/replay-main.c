/* Plain driver that replays a fuzz target's corpus without libFuzzer, so GCC
 * and sanitizer builds run every committed input under CTest. Each argument
 * is a corpus directory (its regular files run in sorted order) or a single
 * input file; a missing or empty directory runs one empty input. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file; 0 or -1 (message printed). */
static int read_file(const char *path, uint8_t **data_r, size_t *size_r)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			cap = cap == 0 ? 4096 : cap * 2;
			uint8_t *nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				fprintf(stderr, "%s: out of memory\n", path);
				return -1;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int failed = ferror(f);
	fclose(f);
	if (failed) {
		free(buf);
		fprintf(stderr, "%s: read error\n", path);
		return -1;
	}
	*data_r = buf;
	*size_r = len;
	return 0;
}

/* Copies the input so the target cannot read past its end unnoticed. */
static int run_file(const char *path)
{
	uint8_t *data;
	size_t size;

	if (read_file(path, &data, &size) < 0)
		return -1;
	uint8_t *exact = malloc(size > 0 ? size : 1);
	if (exact == NULL) {
		free(data);
		return -1;
	}
	memcpy(exact, data, size);
	free(data);
	LLVMFuzzerTestOneInput(exact, size);
	free(exact);
	return 0;
}

static int is_regular(const char *dir, const char *name, char **path_r)
{
	struct stat st;
	char *path;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -1;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		free(path);
		return 0;
	}
	*path_r = path;
	return 1;
}

/* Runs every regular file of dir; returns how many ran, or -1. */
static int run_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	int ran = 0, failed = 0;

	if (n < 0)
		return 0;   /* no corpus yet */
	for (int i = 0; i < n; i++) {
		char *path;
		if (!failed && is_regular(dir, names[i]->d_name, &path) > 0) {
			if (run_file(path) < 0)
				failed = 1;
			else
				ran++;
			free(path);
		}
		free(names[i]);
	}
	free(names);
	return failed ? -1 : ran;
}

/* An empty corpus still proves the target links and runs. */
static void run_empty(const char *what)
{
	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	printf("%s: no inputs, ran 1 empty input\n", what);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		run_empty(argv[0]);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int ran;
		if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode))
			ran = run_file(argv[i]) < 0 ? -1 : 1;
		else
			ran = run_dir(argv[i]);
		if (ran < 0)
			return 1;
		if (ran == 0)
			run_empty(argv[i]);
		else
			printf("%s: ran %d input%s\n", argv[i], ran, ran == 1 ? "" : "s");
	}
	return 0;
}
