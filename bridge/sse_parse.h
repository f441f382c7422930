/* SPDX-License-Identifier: MIT
 * sse_parse.h: incremental parser for text/event-stream (WHATWG HTML
 * "server-sent events" interpretation).
 *
 * Feed it byte chunks split anywhere (even inside a CRLF pair); it calls back
 * once per complete event (id, event type, data), once per comment line
 * (": keepalive") and once per valid `retry:` field. Lines end with "\n",
 * "\r\n" or "\r"; a leading UTF-8 BOM is skipped; multi-line data is joined
 * with "\n". A line or an event's data larger than max_event bytes is an
 * error (CS_ETOOBIG) and the parser then refuses further input. Depends only
 * on core (unit tests include the .c). */
#ifndef BR_SSE_PARSE_H
#define BR_SSE_PARSE_H

#include <stddef.h>

#include "cs_err.h"

typedef struct br_sse br_sse;

typedef struct br_sse_callbacks {
    /* A dispatched event. id is the last event id seen so far (the stream's
     * "last event ID", "" when none), event is the type ("message" when the
     * frame had no event: field). data is NUL-terminated (len excludes the
     * NUL) and may contain NULs. Non-CS_OK aborts br_sse_feed with it. */
    cs_err (*on_event)(void *ud, const char *id, const char *event,
                       const char *data, size_t len);
    /* A comment line, text after ':' with one leading space removed. */
    cs_err (*on_comment)(void *ud, const char *text, size_t len);
    /* A retry: field with only ASCII digits (milliseconds). */
    cs_err (*on_retry)(void *ud, unsigned long ms);
} br_sse_callbacks;

/* max_event bounds one line and one event's data (bytes). Callbacks may be
 * NULL. */
cs_err br_sse_new(size_t max_event, const br_sse_callbacks *cb, void *ud,
                  br_sse **out);
/* Feeds len bytes. Returns CS_OK, CS_ETOOBIG (oversize line or event),
 * CS_ENOMEM, or the first non-CS_OK callback result. After an error every
 * further call returns that error. */
cs_err br_sse_feed(br_sse *p, const char *buf, size_t len, cs_errbuf *eb);
/* Resets the per-connection state (partial line, pending data, BOM) but keeps
 * the last event id, as a reconnecting client does. Clears a sticky error. */
void br_sse_reset(br_sse *p);
/* Last event id seen ("" when none). */
const char *br_sse_last_id(const br_sse *p);
void br_sse_free(br_sse *p);

#endif
