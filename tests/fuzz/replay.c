/* replay.c - run a libFuzzer target over its saved corpus without libFuzzer,
 * so that `make test` replays every input the fuzzers ever kept (the seeds
 * and the regressions they found) under ASan/UBSan with gcc.
 *
 *	replay_NAME DIR...	every regular file in each DIR, in name order
 *
 * Prints "replay: N passed, 0 failed" when every input ran to the end; a
 * crash or sanitizer report ends the program with a non-zero status first.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
	struct stat st;
	uint8_t *buf;
	FILE *f;

	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return 0;
	f = fopen(path, "rb");
	if (!f)
		return -1;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)st.st_size);
	free(buf);
	return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	unsigned long ran = 0, bad = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct dirent **names;
		int n = scandir(argv[i], &names, NULL, by_name);

		if (n < 0) {
			fprintf(stderr, "replay: %s: cannot read the corpus\n", argv[i]);
			bad++;
			continue;
		}
		for (int j = 0; j < n; j++) {
			char path[4096];
			int r;

			snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
			r = run_file(path);
			if (r < 0) {
				fprintf(stderr, "replay: %s: cannot read\n", path);
				bad++;
			}
			ran += r > 0;
			free(names[j]);
		}
		free(names);
	}
	printf("replay: %lu passed, %lu failed\n", ran, bad);
	return bad ? 1 : 0;
}
