/* SPDX-License-Identifier: MIT
 * cli_table.h: simple left-aligned text tables for human output.
 *
 *   VERSION  AUTHOR  SUMMARY
 *   2        admin   second
 *   1        admin   first
 *
 * Cells are copied; control characters are shown as spaces; widths count
 * UTF-8 code points. The last column is not padded. */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

#include "cs_err.h"

typedef struct cli_table cli_table;

/* Creates a table with ncols columns named by headers[0..ncols-1]. */
cs_err cli_table_new(size_t ncols, const char *const *headers, cli_table **out);

/* Appends a row of ncols cells (NULL cells print as empty). */
cs_err cli_table_add_row(cli_table *t, const char *const *cells);

/* Number of data rows (without the header). */
size_t cli_table_rows(const cli_table *t);

void cli_table_print(const cli_table *t, FILE *f);

void cli_table_free(cli_table *t);

#endif
