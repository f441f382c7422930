/* SPDX-License-Identifier: MIT
 * routes_ui.c: the fork review web page. Static files only, no auth (the
 * page calls the JSON API with a token the admin pastes; it never leaves
 * the browser's sessionStorage). Served with a strict CSP: same-origin
 * scripts, styles and requests only. */
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "ui_assets.h"

static void
serve(cs_req *r, const char *name, const char *ctype)
{
    for (const cs_asset *a = cs_ui_assets; a->name != NULL; a++) {
        if (strcmp(a->name, name) == 0) {
            char *copy = malloc(a->len ? a->len : 1);
            if (copy == NULL) {
                cs_res_error(r, 503, "unavailable", "out of memory");
                return;
            }
            memcpy(copy, a->data, a->len);
            cs_res_header(r, "Content-Security-Policy",
                          "default-src 'self'; connect-src 'self'; "
                          "img-src 'self' data:; frame-ancestors 'none'");
            cs_res_header(r, "X-Content-Type-Options", "nosniff");
            cs_res_header(r, "Cache-Control", "no-cache");
            cs_res_text(r, 200, ctype, copy, a->len);
            return;
        }
    }
    cs_res_error(r, 404, "not_found",
                 "the review page (%s) is not built into this node", name);
}

static void
h_index(cs_req *r)
{
    serve(r, "index.html", "text/html; charset=utf-8");
}

static void
h_js(cs_req *r)
{
    serve(r, "app.js", "text/javascript; charset=utf-8");
}

static void
h_css(cs_req *r)
{
    serve(r, "style.css", "text/css; charset=utf-8");
}

const cs_route cs_routes_ui[] = {
    {"GET", "/ui/forks", h_index, CS_ROUTE_NOAUTH},
    {"GET", "/ui/forks/", h_index, CS_ROUTE_NOAUTH},
    {"GET", "/ui/forks/app.js", h_js, CS_ROUTE_NOAUTH},
    {"GET", "/ui/forks/style.css", h_css, CS_ROUTE_NOAUTH},
    {NULL, NULL, NULL, 0},
};
