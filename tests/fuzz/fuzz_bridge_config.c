/* SPDX-License-Identifier: MIT
 * fuzz_bridge_config.c: libFuzzer target for the bridge config parser.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_POSIX_C_SOURCE=200809L \
 *     -D_DEFAULT_SOURCE -Icore tests/fuzz/fuzz_bridge_config.c core/cs_*.c \
 *     -ljansson -lcrypto -o fuzz_bridge_config
 *
 * Any input either parses into a config whose invariants hold or fails with
 * a message; a token never appears in an error message. token_file paths are
 * resolved against a directory that does not exist. */
#include "../../bridge/config.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    br_config *c = NULL;
    cs_errbuf eb;
    size_t i, k;

    eb.msg[0] = '\0';
    if (br_config_parse((const char *)data, size, "/nonexistent-fuzz-dir", &c, &eb) !=
        CS_OK) {
        if (c != NULL || eb.msg[0] == '\0')
            abort();
        return 0;
    }
    if (br_config_nlinks(c) == 0)
        abort();
    for (i = 0; i < br_config_nlinks(c); i++) {
        const br_link_config *l = br_config_link(c, i);
        if (l->name == NULL || l->source.url == NULL || l->target.url == NULL ||
            l->source.token == NULL || l->target.token == NULL || l->npatterns == 0 ||
            l->patterns_csv == NULL || l->in_flight < 1 || l->max_events < 1)
            abort();
        if (strncmp(l->source.url, "http", 4) != 0)
            abort();
        for (k = 0; k < l->npatterns; k++)
            if (cs_pattern_validate(l->patterns[k], NULL) != CS_OK)
                abort();
        if (br_config_find_link(c, l->name) != l)
            abort();
    }
    br_config_free(c);
    return 0;
}
