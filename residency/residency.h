/* SPDX-License-Identifier: MIT
 * residency.h: the data-residency policy (federation.md §5,
 * docs/residency.md): parsing and validating the policy file, and the
 * first-matching-rule lookup with a human explanation.
 *
 * Pure logic shared by ctxsync-node and ctxsync-bridge: no I/O except
 * reading the policy file in cs_residency_load(). A parsed policy is
 * immutable and may be read from any number of threads.
 *
 * File format: see the // comment below (patterns contain the two
 * characters that would open a nested block comment). First matching rule
 * wins; no match = payloads replicate freely.
 *
 * Validation (every problem is reported, in rule order): malformed JSON,
 * unknown keys, missing or mistyped fields, a bad pattern, a home_region
 * that is not a region name or (when "regions" is given) not one of the
 * listed regions, and overlapping rules: a rule that an earlier rule
 * covers entirely (it could never apply), and two rules with different
 * settings whose patterns overlap without one covering the other (which
 * one applies would depend on the order alone). An earlier, narrower
 * rule inside a later, wider one (an exception) is fine. */
// Policy file (JSON):
//   {"regions": ["eu", "us"],            (optional: the known regions)
//    "rules": [{"pattern": "ctx://acme/hr/**", "home_region": "eu",
//               "payload": "home-only" | "replicate",
//               "on_demand": "allow" | "deny",   (default "allow")
//               "cache": true | false},          (default false)
//              ...]}
#ifndef CS_RESIDENCY_H
#define CS_RESIDENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "cs_err.h"
#include "cs_uri.h"

#define CS_RES_MAX_RULES 1024
#define CS_RES_MAX_REGIONS 256
#define CS_RES_REGION_MAX 64
#define CS_RES_FILE_MAX ((size_t)1024 * 1024)

typedef enum { CS_RES_REPLICATE = 0, CS_RES_HOME_ONLY } cs_res_payload;

typedef struct cs_res_rule {
    char pattern[CS_URI_MAX + 1];
    char home_region[CS_RES_REGION_MAX + 1];
    cs_res_payload payload;
    bool on_demand;   /* "allow" */
    bool cache;
} cs_res_rule;

typedef struct cs_residency cs_residency;

/* "replicate" or "home-only". */
const char *cs_res_payload_name(cs_res_payload p);

/* Every problem found while validating a policy, in order. */
#define CS_RES_DIAG_MAX 32
typedef struct cs_res_diag {
    size_t n;          /* messages kept (at most CS_RES_DIAG_MAX) */
    size_t nerrors;    /* errors found (may exceed n) */
    size_t nwarnings;  /* warnings found */
    struct {
        bool error;    /* false: a warning */
        char msg[320];
    } items[CS_RES_DIAG_MAX];
} cs_res_diag;

/* Parses and validates a policy document. On success (no errors; warnings
 * are allowed) *out gets the policy. diag (may be NULL) receives every
 * error and warning in order; eb (may be NULL) the first error followed by
 * "(and N more)". Returns CS_OK, CS_EINVAL or CS_ENOMEM. */
cs_err cs_residency_parse(const char *buf, size_t len, cs_residency **out,
                          cs_res_diag *diag, cs_errbuf *eb);
/* Reads (at most CS_RES_FILE_MAX bytes) and parses a policy file; messages
 * are prefixed with the path. */
cs_err cs_residency_load(const char *path, cs_residency **out,
                         cs_res_diag *diag, cs_errbuf *eb);
void cs_residency_free(cs_residency *p);

size_t cs_residency_count(const cs_residency *p);
/* Rule i (0-based), or NULL. */
const cs_res_rule *cs_residency_rule(const cs_residency *p, size_t i);
/* Number of declared regions (0 when "regions" is absent) and region i. */
size_t cs_residency_nregions(const cs_residency *p);
const char *cs_residency_region(const cs_residency *p, size_t i);

/* The first rule whose pattern matches uri, or NULL (also for a NULL
 * policy or an invalid uri). *index (may be NULL) gets its 0-based index. */
const cs_res_rule *cs_residency_match(const cs_residency *p, const char *uri,
                                      size_t *index);

/* True when a node (or peer) of `region` may hold the payload of a URI
 * governed by rule: no rule, a replicate rule, or region == home_region.
 * A NULL or empty region is unknown and never the home region. */
bool cs_res_payload_allowed(const cs_res_rule *rule, const char *region);

/* True when a copy fetched on demand may be kept by a node of `region`:
 * the rule's cache is true and the payload may be held there; no rule
 * means cache. */
bool cs_res_may_cache(const cs_res_rule *rule, const char *region);

// Human explanation of the rule that applies to uri (see
// docs/residency.md), e.g. "rule 2 (ctx://acme/hr/**) matches: payloads are
// home-only in eu; on-demand reads allowed; not cached outside eu".
// NUL-terminated, truncated to outsz.
void cs_residency_explain(const cs_residency *p, const char *uri, char *out,
                          size_t outsz);

/* True when the two patterns can match one same URI (regular-language
 * intersection over segments; exact for these globs, ignoring the
 * three-segment minimum of artifact URIs). False when either is invalid. */
bool cs_res_patterns_overlap(const char *a, const char *b);

#endif
