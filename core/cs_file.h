/* SPDX-License-Identifier: MIT
 * cs_file.h: bounded whole-file reads for configuration files (bridge
 * config, peers file, residency policy), which may hold tokens. */
#ifndef CS_FILE_H
#define CS_FILE_H

#include <stddef.h>

#include "cs_err.h"

/* Reads path whole if it holds at most max bytes. On success *out is a
 * malloc'd NUL-terminated copy (free it with cs_file_free) and *len its
 * size. Errors: CS_EIO "cannot open PATH: REASON" / "cannot read PATH",
 * CS_ETOOBIG "PATH is larger than MAX bytes", CS_ENOMEM. */
cs_err cs_file_read(const char *path, size_t max, char **out, size_t *len,
                    cs_errbuf *eb);

/* Wipes (it may hold secrets) and frees a buffer from cs_file_read. */
void cs_file_free(char *buf, size_t len);

/* The directory part of path ("." when there is none, "/" for a file at
 * the root), malloc'd; NULL on OOM. */
char *cs_path_dir(const char *path);

#endif
