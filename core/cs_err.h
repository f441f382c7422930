/* SPDX-License-Identifier: MIT
 * cs_err.h: the one error enum of ContextSync and a small error buffer.
 *
 * Every fallible function returns cs_err (CS_OK == 0). Results travel via
 * out-parameters that are set only on success. Human-readable detail goes
 * into an optional cs_errbuf passed down the call chain and is logged once,
 * at the boundary (HTTP handler, bridge loop). */
#ifndef CS_ERR_H
#define CS_ERR_H

#include <stddef.h>

typedef enum {
    CS_OK = 0,
    CS_ENOMEM,    /* allocation failed */
    CS_EINVAL,    /* invalid argument or input */
    CS_ENOTFOUND, /* no such object */
    CS_ECONFLICT, /* already exists / version conflict */
    CS_EFORBIDDEN,/* permission denied */
    CS_EPROTO,    /* peer violated the protocol */
    CS_EIO,       /* file or socket I/O failed */
    CS_ETIMEDOUT, /* deadline passed */
    CS_ETOOBIG,   /* a bounded buffer or limit was exceeded */
    CS_EDB,       /* the database failed */
    CS_EHTTP,     /* an HTTP exchange failed */
    CS_EFULL,     /* disk or queue full */
    CS_ESHUTDOWN, /* the component is shutting down */
} cs_err;

/* Static, never-NULL name of an error code. */
const char *cs_strerror(cs_err e);

/* Optional detail for an error; a NULL cs_errbuf * is accepted everywhere. */
typedef struct cs_errbuf {
    char msg[256];
} cs_errbuf;

/* Formats into eb->msg (if eb is not NULL). */
void cs_errbuf_set(cs_errbuf *eb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Fills eb and evaluates to e, so that callers can write
 * `return cs_errf(eb, CS_EINVAL, "bad uri: %s", s);`. A macro (not a
 * function) so that compilers and analyzers see the value returned. */
#define cs_errf(eb, e, ...)                                                 \
    __extension__({                                                         \
        cs_errbuf_set((eb), __VA_ARGS__);                                   \
        (cs_err)(e);                                                        \
    })

#endif
