/* SPDX-License-Identifier: MIT */
#include "cs_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *
cs_strerror(cs_err e)
{
    switch (e) {
    case CS_OK: return "ok";
    case CS_ENOMEM: return "out of memory";
    case CS_EINVAL: return "invalid argument";
    case CS_ENOTFOUND: return "not found";
    case CS_ECONFLICT: return "conflict";
    case CS_EFORBIDDEN: return "forbidden";
    case CS_EPROTO: return "protocol error";
    case CS_EIO: return "i/o error";
    case CS_ETIMEDOUT: return "timed out";
    case CS_ETOOBIG: return "too big";
    case CS_EDB: return "database error";
    case CS_EHTTP: return "http error";
    case CS_EFULL: return "no space";
    case CS_ESHUTDOWN: return "shutting down";
    }
    return "unknown error";
}

void
cs_errbuf_set(cs_errbuf *eb, const char *fmt, ...)
{
    if (eb != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
        va_end(ap);
    }
}
