/* SPDX-License-Identifier: MIT */
#include "cs_log.h"

#include "cs_json.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static cs_log_format g_format = CS_LOG_TEXT;
static cs_log_level g_min = CS_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"DEBUG", "INFO", "NOTICE", "WARN",
                                          "ERROR"};

void
cs_log_set_format(cs_log_format f)
{
    g_format = f;
}

void
cs_log_set_level(cs_log_level min)
{
    g_min = min;
}

int
cs_log_parse_format(const char *s, cs_log_format *out)
{
    if (strcmp(s, "text") == 0) {
        *out = CS_LOG_TEXT;
        return 0;
    }
    if (strcmp(s, "json") == 0) {
        *out = CS_LOG_JSON;
        return 0;
    }
    return -1;
}

void
cs_log(cs_log_level lvl, const char *msgid, const char *fmt, ...)
{
    char msg[1024];
    char ts[CS_TIME_LEN];
    va_list ap;

    if (lvl < g_min)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    cs_time_format(cs_now_us(), ts);

    pthread_mutex_lock(&g_lock);
    if (g_format == CS_LOG_JSON) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level",
                              level_names[lvl], "id", msgid, "msg", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s != NULL)
            fprintf(stderr, "%s\n", s);
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "%s %s %s %s\n", ts, level_names[lvl], msgid, msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
}
