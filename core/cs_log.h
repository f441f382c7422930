/* SPDX-License-Identifier: MIT
 * cs_log.h: leveled, structured logging with stable message ids.
 *
 * One line per call on stderr, either text
 *   2026-11-25T13:00:00.123456Z NOTICE NODE-START listen=127.0.0.1:4111
 * or JSON ({"ts":..,"level":..,"id":..,"msg":..}) after cs_log_set_format().
 * Thread-safe. Never pass secrets (tokens) to it. */
#ifndef CS_LOG_H
#define CS_LOG_H

typedef enum {
    CS_LOG_DEBUG = 0,
    CS_LOG_INFO,
    CS_LOG_NOTICE,
    CS_LOG_WARN,
    CS_LOG_ERROR,
} cs_log_level;

typedef enum { CS_LOG_TEXT = 0, CS_LOG_JSON } cs_log_format;

void cs_log_set_format(cs_log_format f);
void cs_log_set_level(cs_log_level min);
/* Parses "text"/"json"; returns 0 on success, -1 on an unknown name. */
int cs_log_parse_format(const char *s, cs_log_format *out);

void cs_log(cs_log_level lvl, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
