/* SPDX-License-Identifier: MIT
 * cli_table.c: simple left-aligned text tables for human output. */
#include "cli_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cli_table {
    size_t ncols;
    size_t nrows;      /* rows in cells, the header included */
    size_t caprows;
    char **cells;      /* nrows * ncols owned strings */
    size_t *width;     /* ncols display widths */
};

/* Display width: UTF-8 code points (continuation bytes do not count). */
static size_t
text_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++) {
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    }
    return w;
}

/* Copies s, turning control characters (tabs, newlines, ...) into spaces. */
static char *
cell_dup(const char *s)
{
    char *d;
    size_t n;

    if (s == NULL)
        s = "";
    n = strlen(s);
    d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        d[i] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    d[n] = '\0';
    return d;
}

cs_err
cli_table_new(size_t ncols, const char *const *headers, cli_table **out)
{
    cli_table *t = NULL;
    cs_err err = CS_OK;

    if (ncols == 0) {
        err = CS_EINVAL;
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        err = CS_ENOMEM;
        goto out;
    }
    t->ncols = ncols;
    t->width = calloc(ncols, sizeof(*t->width));
    if (t->width == NULL) {
        err = CS_ENOMEM;
        goto out;
    }
    err = cli_table_add_row(t, headers);
    if (err != CS_OK)
        goto out;
    *out = t;
    t = NULL;
out:
    cli_table_free(t);
    return err;
}

cs_err
cli_table_add_row(cli_table *t, const char *const *cells)
{
    char **row;

    if (t->nrows == t->caprows) {
        size_t ncap = t->caprows ? t->caprows * 2 : 16;
        char **nc;
        if (ncap > SIZE_MAX / t->ncols / sizeof(char *))
            return CS_ENOMEM;
        nc = realloc(t->cells, ncap * t->ncols * sizeof(char *));
        if (nc == NULL)
            return CS_ENOMEM;
        t->cells = nc;
        t->caprows = ncap;
    }
    row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = cell_dup(cells[i]);
        if (row[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(row[j]);
            return CS_ENOMEM;
        }
    }
    for (size_t i = 0; i < t->ncols; i++) {
        size_t w = text_width(row[i]);
        if (w > t->width[i])
            t->width[i] = w;
    }
    t->nrows++;
    return CS_OK;
}

size_t
cli_table_rows(const cli_table *t)
{
    return t->nrows > 0 ? t->nrows - 1 : 0;
}

void
cli_table_print(const cli_table *t, FILE *f)
{
    for (size_t r = 0; r < t->nrows; r++) {
        char *const *row = t->cells + r * t->ncols;
        size_t last = t->ncols;
        /* Trailing empty cells add no trailing blanks. */
        while (last > 1 && row[last - 1][0] == '\0')
            last--;
        for (size_t c = 0; c < last; c++) {
            fputs(row[c], f);
            if (c + 1 < last) {
                size_t pad = t->width[c] - text_width(row[c]) + 2;
                while (pad-- > 0)
                    fputc(' ', f);
            }
        }
        fputc('\n', f);
    }
}

void
cli_table_free(cli_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->width);
    free(t);
}
