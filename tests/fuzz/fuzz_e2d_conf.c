/* fuzz_e2d_conf.c -- e2d's --config file (daemon/src/config.c): the input
 * is the file, read with e2_config_load into a config filled by e2_config_init. */
#include "fuzz.h"

#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    char err[512];
    e2d_config c;
    if (!path[0]) snprintf(path, sizeof path, "%s", fuzz_file("e2d.conf"));
    fuzz_write(path, data, size, 0600);
    e2_config_init(&c);
    (void)e2_config_load(&c, path, err, sizeof err);
    return 0;
}
