/* SPDX-License-Identifier: MIT */
#include "cs_file.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cs_err
cs_file_read(const char *path, size_t max, char **out, size_t *len,
             cs_errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    cs_err rv = CS_OK;

    if (f == NULL)
        return cs_errf(eb, CS_EIO, "cannot open %.200s: %s", path,
                       strerror(errno));
    buf = malloc(max + 1);
    if (buf == NULL) {
        rv = cs_errf(eb, CS_ENOMEM, "out of memory");
        goto out;
    }
    n = fread(buf, 1, max + 1, f);
    if (ferror(f)) {
        rv = cs_errf(eb, CS_EIO, "cannot read %.200s", path);
        goto out;
    }
    if (n > max) {
        rv = cs_errf(eb, CS_ETOOBIG, "%.200s is larger than %zu bytes", path,
                     max);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    if (buf != NULL)
        cs_file_free(buf, max + 1);
    fclose(f);
    return rv;
}

void
cs_file_free(char *buf, size_t len)
{
    if (buf == NULL)
        return;
    OPENSSL_cleanse(buf, len);
    free(buf);
}

char *
cs_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (slash == path ? 1 : (size_t)(slash - path));
    char *dir = malloc(n > 0 ? n + 1 : 2);
    if (dir == NULL)
        return NULL;
    if (n == 0) {
        memcpy(dir, ".", 2);
    } else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}
