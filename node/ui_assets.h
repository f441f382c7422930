/* SPDX-License-Identifier: MIT
 * ui_assets.h: the fork review page (fork_detect/ui/), embedded into the
 * node at build time (cmake/EmbedFiles.cmake), served at /ui/forks. */
#ifndef CS_UI_ASSETS_H
#define CS_UI_ASSETS_H

#include <stddef.h>

typedef struct cs_asset {
    const char *name;           /* "index.html", "app.js", "style.css" */
    const unsigned char *data;
    size_t len;
} cs_asset;

/* Terminated by {NULL, NULL, 0}. */
extern const cs_asset cs_ui_assets[];

#endif
