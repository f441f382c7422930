/* SPDX-License-Identifier: MIT
 * residency.c: the data-residency policy (see residency.h). */
#include "residency.h"

#include "cs_file.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cs_residency {
    cs_res_rule *rules;
    size_t n;
    char (*regions)[CS_RES_REGION_MAX + 1];
    size_t nregions;
};

/* ---- diagnostics -------------------------------------------------------- */

static void diag_add(cs_res_diag *d, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
diag_add(cs_res_diag *d, bool error, const char *fmt, ...)
{
    va_list ap;
    if (d == NULL)
        return;
    if (error)
        d->nerrors++;
    else
        d->nwarnings++;
    if (d->n >= CS_RES_DIAG_MAX)
        return;
    d->items[d->n].error = error;
    va_start(ap, fmt);
    vsnprintf(d->items[d->n].msg, sizeof(d->items[d->n].msg), fmt, ap);
    va_end(ap);
    d->n++;
}

/* ---- names -------------------------------------------------------------- */

static bool
region_valid(const char *s)
{
    size_t n = 0;
    if (s == NULL || *s == '\0')
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n <= CS_RES_REGION_MAX;
}

/* ---- pattern overlap ---------------------------------------------------- */

/* Whether two '*'-globs over one segment share a string. Forward pass over
 * a (alen+1) x (blen+1) reachability table: every move goes right, down or
 * diagonally, so row-major order visits sources before targets. */
static bool
seg_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t w = blen + 1, i, j;
    unsigned char *t = calloc((alen + 1) * w, 1);
    bool ok;
    if (t == NULL)
        return true; /* out of memory: assume the worst (overlap) */
    t[0] = 1;
    for (i = 0; i <= alen; i++) {
        for (j = 0; j <= blen; j++) {
            bool as, bs;
            if (!t[i * w + j])
                continue;
            as = i < alen && a[i] == '*';
            bs = j < blen && b[j] == '*';
            if (as) {
                t[(i + 1) * w + j] = 1;          /* a's star ends */
                if (j < blen && !bs)
                    t[i * w + j + 1] = 1;        /* it absorbs b[j] */
            }
            if (bs) {
                t[i * w + j + 1] = 1;
                if (i < alen && !as)
                    t[(i + 1) * w + j] = 1;
            }
            if (i < alen && j < blen && !as && !bs && a[i] == b[j])
                t[(i + 1) * w + j + 1] = 1;
        }
    }
    ok = t[alen * w + blen] != 0;
    free(t);
    return ok;
}

typedef struct seg {
    const char *p;
    size_t n;
} seg;

/* Splits a valid pattern into segments (bare "**" = one "**" segment).
 * Returns the count; segs holds at least CS_URI_MAX / 2 + 2 entries. */
static size_t
split_segments(const char *pat, seg *segs)
{
    const char *p = strcmp(pat, "**") == 0 ? pat : pat + 6; /* "ctx://" */
    size_t n = 0;
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        segs[n].p = p;
        segs[n].n = len;
        n++;
        if (e == NULL)
            break;
        p = e + 1;
    }
    return n;
}

static bool
is_globstar(const seg *s)
{
    return s->n == 2 && s->p[0] == '*' && s->p[1] == '*';
}

bool
cs_res_patterns_overlap(const char *a, const char *b)
{
    enum { MAXSEG = CS_URI_MAX / 2 + 2 };
    seg *sa = NULL, *sb = NULL;
    unsigned char *t = NULL;
    size_t na, nb, w, i, j;
    bool ok = false;

    if (cs_pattern_validate(a, NULL) != CS_OK ||
        cs_pattern_validate(b, NULL) != CS_OK)
        return false;
    sa = malloc(MAXSEG * sizeof(*sa));
    sb = malloc(MAXSEG * sizeof(*sb));
    if (sa == NULL || sb == NULL) {
        ok = true;
        goto out;
    }
    na = split_segments(a, sa);
    nb = split_segments(b, sb);
    w = nb + 1;
    t = calloc((na + 1) * w, 1);
    if (t == NULL) {
        ok = true;
        goto out;
    }
    t[0] = 1;
    for (i = 0; i <= na; i++) {
        for (j = 0; j <= nb; j++) {
            bool ag, bg;
            if (!t[i * w + j])
                continue;
            ag = i < na && is_globstar(&sa[i]);
            bg = j < nb && is_globstar(&sb[j]);
            if (ag) {
                t[(i + 1) * w + j] = 1;          /* zero more segments */
                if (j < nb && !bg)
                    t[i * w + j + 1] = 1;        /* absorbs b's segment */
            }
            if (bg) {
                t[i * w + j + 1] = 1;
                if (i < na && !ag)
                    t[(i + 1) * w + j] = 1;
            }
            if (i < na && j < nb && !ag && !bg &&
                seg_overlap(sa[i].p, sa[i].n, sb[j].p, sb[j].n))
                t[(i + 1) * w + j + 1] = 1;
        }
    }
    ok = t[na * w + nb] != 0;
out:
    free(t);
    free(sa);
    free(sb);
    return ok;
}

/* ---- parsing ------------------------------------------------------------ */

const char *
cs_res_payload_name(cs_res_payload p)
{
    return p == CS_RES_HOME_ONLY ? "home-only" : "replicate";
}

static bool
same_settings(const cs_res_rule *a, const cs_res_rule *b)
{
    return strcmp(a->home_region, b->home_region) == 0 &&
           a->payload == b->payload && a->on_demand == b->on_demand &&
           a->cache == b->cache;
}

static bool
known_region(const cs_residency *p, const char *r)
{
    size_t i;
    if (p->nregions == 0)
        return true;
    for (i = 0; i < p->nregions; i++)
        if (strcmp(p->regions[i], r) == 0)
            return true;
    return false;
}

static void
regions_list(const cs_residency *p, char *out, size_t outsz)
{
    size_t i, o = 0;
    out[0] = '\0';
    for (i = 0; i < p->nregions && o + 1 < outsz; i++) {
        int k = snprintf(out + o, outsz - o, "%s%s", i ? ", " : "",
                         p->regions[i]);
        if (k < 0)
            break;
        o += (size_t)k;
    }
}

static bool
check_keys(const json_t *obj, const char *const *allowed, const char *where,
           cs_res_diag *d)
{
    const char *key;
    json_t *val;
    bool ok = true;
    json_object_foreach((json_t *)obj, key, val) {
        size_t i;
        bool found = false;
        (void)val;
        for (i = 0; allowed[i] != NULL; i++)
            if (strcmp(allowed[i], key) == 0)
                found = true;
        if (!found) {
            diag_add(d, true, "%s: unknown key \"%.64s\"", where, key);
            ok = false;
        }
    }
    return ok;
}

static void
parse_regions(const json_t *arr, cs_residency *p, cs_res_diag *d)
{
    size_t i, k;
    json_t *v;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        diag_add(d, true, "regions: must be a non-empty array of region names");
        return;
    }
    if (json_array_size(arr) > CS_RES_MAX_REGIONS) {
        diag_add(d, true, "regions: more than %d regions", CS_RES_MAX_REGIONS);
        return;
    }
    p->regions = calloc(json_array_size(arr), sizeof(*p->regions));
    if (p->regions == NULL) {
        diag_add(d, true, "out of memory");
        return;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (s == NULL || !region_valid(s) ||
            strlen(s) != json_string_length(v)) {
            diag_add(d, true, "regions[%zu]: must be a region name "
                              "([A-Za-z0-9._-]{1,64})", i);
            continue;
        }
        for (k = 0; k < p->nregions; k++)
            if (strcmp(p->regions[k], s) == 0)
                break;
        if (k < p->nregions) {
            diag_add(d, true, "regions[%zu]: \"%s\" is listed twice", i, s);
            continue;
        }
        snprintf(p->regions[p->nregions++], CS_RES_REGION_MAX + 1, "%s", s);
    }
}

/* Parses rule i into r; returns false (diagnostics added) when invalid. */
static bool
parse_rule(const json_t *o, size_t i, cs_residency *p, cs_res_rule *r,
           cs_res_diag *d)
{
    static const char *const keys[] = {"pattern", "home_region", "payload",
                                       "on_demand", "cache", NULL};
    char where[1200];
    const json_t *v;
    const char *s;
    cs_errbuf eb;
    bool ok = true;

    memset(r, 0, sizeof(*r));
    r->on_demand = true;
    if (!json_is_object(o)) {
        diag_add(d, true, "rule %zu: must be an object", i + 1);
        return false;
    }
    s = json_string_value(json_object_get(o, "pattern"));
    if (s != NULL && strlen(s) <= CS_URI_MAX)
        snprintf(where, sizeof(where), "rule %zu (%s)", i + 1, s);
    else
        snprintf(where, sizeof(where), "rule %zu", i + 1);
    if (!check_keys(o, keys, where, d))
        ok = false;

    v = json_object_get(o, "pattern");
    eb.msg[0] = '\0';
    if (v == NULL) {
        diag_add(d, true, "%s: pattern is required", where);
        ok = false;
    } else if (!json_is_string(v)) {
        diag_add(d, true, "%s: pattern must be a string", where);
        ok = false;
    } else if (strlen(json_string_value(v)) != json_string_length(v) ||
               cs_pattern_validate(json_string_value(v), &eb) != CS_OK) {
        diag_add(d, true, "%s: bad pattern: %s", where,
                 eb.msg[0] ? eb.msg : "contains a NUL byte");
        ok = false;
    } else {
        snprintf(r->pattern, sizeof(r->pattern), "%s", json_string_value(v));
    }

    v = json_object_get(o, "home_region");
    if (v == NULL) {
        diag_add(d, true, "%s: home_region is required", where);
        ok = false;
    } else if (!json_is_string(v) || !region_valid(json_string_value(v)) ||
               strlen(json_string_value(v)) != json_string_length(v)) {
        diag_add(d, true, "%s: home_region must be a region name "
                          "([A-Za-z0-9._-]{1,64})", where);
        ok = false;
    } else if (!known_region(p, json_string_value(v))) {
        char list[512];
        regions_list(p, list, sizeof(list));
        diag_add(d, true, "%s: unknown home_region \"%s\" (regions: %s)",
                 where, json_string_value(v), list);
        ok = false;
    } else {
        snprintf(r->home_region, sizeof(r->home_region), "%s",
                 json_string_value(v));
    }

    v = json_object_get(o, "payload");
    s = json_string_value(v);
    if (v == NULL) {
        diag_add(d, true, "%s: payload is required (\"replicate\" or "
                          "\"home-only\")", where);
        ok = false;
    } else if (s != NULL && strcmp(s, "replicate") == 0) {
        r->payload = CS_RES_REPLICATE;
    } else if (s != NULL && strcmp(s, "home-only") == 0) {
        r->payload = CS_RES_HOME_ONLY;
    } else {
        diag_add(d, true, "%s: payload must be \"replicate\" or "
                          "\"home-only\"", where);
        ok = false;
    }

    v = json_object_get(o, "on_demand");
    s = json_string_value(v);
    if (v == NULL) {
        r->on_demand = true;
    } else if (s != NULL && strcmp(s, "allow") == 0) {
        r->on_demand = true;
    } else if (s != NULL && strcmp(s, "deny") == 0) {
        r->on_demand = false;
    } else {
        diag_add(d, true, "%s: on_demand must be \"allow\" or \"deny\"",
                 where);
        ok = false;
    }

    v = json_object_get(o, "cache");
    if (v != NULL && !json_is_boolean(v)) {
        diag_add(d, true, "%s: cache must be true or false", where);
        ok = false;
    }
    r->cache = json_is_true(v);
    if (ok && r->cache && r->payload == CS_RES_HOME_ONLY)
        diag_add(d, false, "%s: cache: true has no effect: home-only payloads "
                           "are never cached outside %s", where,
                 r->home_region);
    if (ok && r->cache && !r->on_demand)
        diag_add(d, false, "%s: cache: true has no effect with on_demand: "
                           "deny", where);
    return ok;
}

/* Overlap checks of rule j against every earlier rule, in order. */
static bool
check_overlaps(const cs_residency *p, size_t j, cs_res_diag *d)
{
    const cs_res_rule *b = &p->rules[j];
    bool ok = true;
    size_t i;
    for (i = 0; i < j; i++) {
        const cs_res_rule *a = &p->rules[i];
        if (cs_pattern_covers(a->pattern, b->pattern)) {
            diag_add(d, true,
                     "rule %zu (%s) overlaps rule %zu (%s): rule %zu covers "
                     "every URI of rule %zu, so rule %zu never applies "
                     "(first match wins: put the narrower rule first)",
                     j + 1, b->pattern, i + 1, a->pattern, i + 1, j + 1,
                     j + 1);
            ok = false;
        } else if (!cs_pattern_covers(b->pattern, a->pattern) &&
                   !same_settings(a, b) &&
                   cs_res_patterns_overlap(a->pattern, b->pattern)) {
            diag_add(d, true,
                     "rule %zu (%s) overlaps rule %zu (%s) with different "
                     "settings: URIs matching both would follow rule %zu "
                     "by order alone (make one pattern cover the other, or "
                     "give them the same settings)",
                     j + 1, b->pattern, i + 1, a->pattern, i + 1);
            ok = false;
        }
    }
    return ok;
}

cs_err
cs_residency_parse(const char *buf, size_t len, cs_residency **out,
                   cs_res_diag *diag, cs_errbuf *eb)
{
    static const char *const keys[] = {"regions", "rules", NULL};
    cs_res_diag local;
    cs_res_diag *d = diag != NULL ? diag : &local;
    cs_residency *p = NULL;
    json_t *root = NULL, *rules, *v;
    json_error_t jerr;
    size_t i;
    cs_err rv = CS_EINVAL;
    bool rules_ok = true;

    memset(d, 0, sizeof(*d));
    if (out == NULL || (buf == NULL && len > 0)) {
        diag_add(d, true, "invalid argument");
        goto out;
    }
    root = json_loadb(buf != NULL ? buf : "", len, JSON_REJECT_DUPLICATES,
                      &jerr);
    if (root == NULL) {
        diag_add(d, true, "malformed JSON at line %d column %d: %s",
                 jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        diag_add(d, true, "the policy must be a JSON object {\"rules\": "
                          "[...]}");
        goto out;
    }
    check_keys(root, keys, "policy", d);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        rv = CS_ENOMEM;
        diag_add(d, true, "out of memory");
        goto out;
    }
    v = json_object_get(root, "regions");
    if (v != NULL)
        parse_regions(v, p, d);
    rules = json_object_get(root, "rules");
    if (rules == NULL) {
        diag_add(d, true, "rules: missing (an empty policy is "
                          "{\"rules\": []})");
        goto out;
    }
    if (!json_is_array(rules)) {
        diag_add(d, true, "rules: must be an array");
        goto out;
    }
    if (json_array_size(rules) > CS_RES_MAX_RULES) {
        diag_add(d, true, "rules: more than %d rules", CS_RES_MAX_RULES);
        goto out;
    }
    p->rules = calloc(json_array_size(rules) + 1, sizeof(*p->rules));
    if (p->rules == NULL) {
        rv = CS_ENOMEM;
        diag_add(d, true, "out of memory");
        goto out;
    }
    json_array_foreach(rules, i, v) {
        if (!parse_rule(v, i, p, &p->rules[p->n], d)) {
            rules_ok = false;
            continue;
        }
        p->n++;
    }
    /* Overlaps are judged only between valid rules, reported in order. */
    if (rules_ok)
        for (i = 1; i < p->n; i++)
            check_overlaps(p, i, d);
    if (d->nerrors == 0) {
        *out = p;
        p = NULL;
        rv = CS_OK;
    }
out:
    if (rv != CS_OK && d->nerrors == 0)
        diag_add(d, true, "%s", cs_strerror(rv));
    if (rv != CS_OK && eb != NULL) {
        const char *first = "";
        for (i = 0; i < d->n; i++)
            if (d->items[i].error) {
                first = d->items[i].msg;
                break;
            }
        if (d->nerrors > 1)
            cs_errbuf_set(eb, "%.200s (and %zu more)", first,
                          d->nerrors - 1);
        else
            cs_errbuf_set(eb, "%s", first);
    }
    cs_residency_free(p);
    json_decref(root);
    return rv;
}

cs_err
cs_residency_load(const char *path, cs_residency **out, cs_res_diag *diag,
                  cs_errbuf *eb)
{
    cs_res_diag local;
    cs_res_diag *d = diag != NULL ? diag : &local;
    char *buf = NULL;
    size_t n = 0, i;
    cs_err rv;

    memset(d, 0, sizeof(*d));
    {
        cs_errbuf feb = {{0}};
        rv = cs_file_read(path, CS_RES_FILE_MAX, &buf, &n, &feb);
        if (rv != CS_OK) {
            diag_add(d, true, "%s", feb.msg);
            /* same codes as before: EIO (open/read), EINVAL (too big) */
            rv = cs_errf(eb, rv == CS_ETOOBIG ? CS_EINVAL : rv, "%s",
                         d->items[0].msg);
            goto out;
        }
    }
    rv = cs_residency_parse(buf, n, out, d, eb);
    /* prefix every message with the file name */
    for (i = 0; i < d->n; i++) {
        char tmp[sizeof(d->items[0].msg)];
        snprintf(tmp, sizeof(tmp), "%s", d->items[i].msg);
        snprintf(d->items[i].msg, sizeof(d->items[i].msg), "%.100s: %.210s",
                 path, tmp);
    }
    if (rv != CS_OK && eb != NULL) {
        char tmp[sizeof(eb->msg)];
        snprintf(tmp, sizeof(tmp), "%s", eb->msg);
        cs_errbuf_set(eb, "%.100s: %.150s", path, tmp);
    }
out:
    cs_file_free(buf, n);
    return rv;
}

void
cs_residency_free(cs_residency *p)
{
    if (p == NULL)
        return;
    free(p->rules);
    free(p->regions);
    free(p);
}

size_t
cs_residency_count(const cs_residency *p)
{
    return p != NULL ? p->n : 0;
}

const cs_res_rule *
cs_residency_rule(const cs_residency *p, size_t i)
{
    return p != NULL && i < p->n ? &p->rules[i] : NULL;
}

size_t
cs_residency_nregions(const cs_residency *p)
{
    return p != NULL ? p->nregions : 0;
}

const char *
cs_residency_region(const cs_residency *p, size_t i)
{
    return p != NULL && i < p->nregions ? p->regions[i] : NULL;
}

/* ---- lookup ------------------------------------------------------------- */

const cs_res_rule *
cs_residency_match(const cs_residency *p, const char *uri, size_t *index)
{
    size_t i;
    if (p == NULL || uri == NULL)
        return NULL;
    for (i = 0; i < p->n; i++) {
        if (cs_pattern_match(p->rules[i].pattern, uri)) {
            if (index != NULL)
                *index = i;
            return &p->rules[i];
        }
    }
    return NULL;
}

bool
cs_res_payload_allowed(const cs_res_rule *rule, const char *region)
{
    if (rule == NULL || rule->payload == CS_RES_REPLICATE)
        return true;
    return region != NULL && region[0] != '\0' &&
           strcmp(region, rule->home_region) == 0;
}

bool
cs_res_may_cache(const cs_res_rule *rule, const char *region)
{
    if (rule == NULL)
        return true;
    return rule->cache && rule->on_demand &&
           cs_res_payload_allowed(rule, region);
}

void
cs_residency_explain(const cs_residency *p, const char *uri, char *out,
                     size_t outsz)
{
    size_t idx = 0;
    const cs_res_rule *r;

    if (outsz == 0)
        return;
    if (p == NULL) {
        snprintf(out, outsz, "no residency policy is loaded on this node: "
                             "payloads replicate freely");
        return;
    }
    r = cs_residency_match(p, uri, &idx);
    if (r == NULL) {
        snprintf(out, outsz, "no rule matches: payloads replicate freely");
        return;
    }
    if (r->payload == CS_RES_HOME_ONLY)
        snprintf(out, outsz,
                 "rule %zu (%s) matches: payloads are home-only in %s; "
                 "on-demand reads %s; not cached outside %s",
                 idx + 1, r->pattern, r->home_region,
                 r->on_demand ? "allowed" : "denied (451 outside the home "
                                            "region)",
                 r->home_region);
    else
        snprintf(out, outsz,
                 "rule %zu (%s) matches: home region %s; payloads replicate "
                 "to every region; on-demand reads %s; %s",
                 idx + 1, r->pattern, r->home_region,
                 r->on_demand ? "allowed" : "denied",
                 r->cache && r->on_demand
                     ? "payloads fetched on demand are cached"
                     : "payloads fetched on demand are not cached");
}
