/* fuzz.h -- what the fuzz targets of tests/fuzz share.
 *
 * Each target is one file defining LLVMFuzzerTestOneInput. With -DE2_FUZZ=ON
 * (clang) it links libFuzzer's main; in every other build it links
 * driver.c, whose main feeds each file named on the command line (or each
 * file of a named folder) to the target once: that is how the seed corpora
 * and the crash regressions run as ordinary ctest cases.
 *
 * Targets whose code under test reads a path get the input as a file:
 * fuzz_file() names a file in a private scratch folder (under /dev/shm when
 * it exists), created on first use and removed at exit, and fuzz_write()
 * replaces that file's content. */
#ifndef E2_FUZZ_H
#define E2_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "<scratch>/<name>" (static storage, one per name until the next call with
 * another name is not guaranteed: copy it if two are needed at once). */
const char *fuzz_file(const char *name);
/* The scratch folder itself. */
const char *fuzz_dir(void);
/* Writes size bytes to path with mode, replacing it; aborts on an I/O error
 * (the harness, not the code under test, failed). */
void fuzz_write(const char *path, const void *data, size_t size, mode_t mode);
/* A NUL-terminated heap copy of the input (abort when out of memory). */
char *fuzz_strdup(const uint8_t *data, size_t size);

#endif
