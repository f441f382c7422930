/* SPDX-License-Identifier: MIT
 * control.h: the bridge's operator control socket (nng rep0 on ipc://).
 *
 * Requests are one line of text: "pause NAME", "resume NAME",
 * "retry-now NAME", "reset-link NAME" or "status". Replies are JSON:
 * {"ok": true, "link": NAME, "command": CMD, "message": "..."} or
 * {"ok": false, "error": "..."}; "status" answers the /status document.
 * The socket file is created with mode 0600. */
#ifndef BR_CONTROL_H
#define BR_CONTROL_H

#include <stddef.h>

#include "cs_err.h"
#include "link.h"

typedef struct br_control br_control;

/* Listens on url (ipc://PATH) in a thread of its own. */
cs_err br_control_start(const char *url, br_link *const *links, size_t nlinks,
                        br_control **out, cs_errbuf *eb);
void br_control_stop(br_control *c);

/* Client side: sends one request, returns the reply (malloc'd, NUL-ended).
 * CS_ENOTFOUND when nothing listens at url. */
cs_err br_control_request(const char *url, const char *request, int timeout_ms,
                          char **reply, cs_errbuf *eb);

/* The default control URL: ipc://<state_dir>/ctxsync-bridge.ipc when a state
 * directory is configured, else ipc:///tmp/ctxsync-bridge-<pid>.ipc. */
void br_control_default_url(const char *state_dir, char *out, size_t outsz);

#endif
