/* fuzz_config - arbitrary bytes as a configuration file through the whole
 * loader (parser, converters, validator) and the dump of what loads. */
#include "smsys/config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* file: would let the input read any path (a FIFO would block the
     * fuzzer); env: and everything else stay in. */
    if (memmem(data, size, "file:", 5) != NULL)
        return 0;
    int fd = memfd_create("fuzz.conf", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct buf report = BUF_INIT;
    struct smsys_config *cfg = NULL;
    if (config_check(path, &report, &cfg) == 0 && cfg) {
        struct buf d = BUF_INIT;
        config_dump(cfg, &d);
        config_dump_json(cfg, &d);
        buf_free(&d);
        config_free(cfg);
    }
    buf_free(&report);
    close(fd);
    return 0;
}
