/* SPDX-License-Identifier: MIT
 * test_residency.c: the residency policy (residency/residency.c): parsing,
 * validation with every problem reported in order, first-match lookup,
 * the payload/cache decisions and the explanations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_test.h"
#include "residency.h"

static cs_residency *
parse_ok(const char *s)
{
    cs_residency *p = NULL;
    cs_res_diag d;
    cs_errbuf eb = {{0}};
    if (!CS_CHECK_INT_EQ(cs_residency_parse(s, strlen(s), &p, &d, &eb), CS_OK)) {
        size_t i;
        for (i = 0; i < d.n; i++)
            fprintf(stderr, "    %s\n", d.items[i].msg);
    }
    return p;
}

/* Parses s expecting failure; returns the diagnostics. */
static cs_res_diag
parse_bad(const char *s)
{
    cs_residency *p = NULL;
    cs_res_diag d;
    cs_errbuf eb = {{0}};
    CS_CHECK_INT_EQ(cs_residency_parse(s, strlen(s), &p, &d, &eb), CS_EINVAL);
    CS_CHECK(p == NULL);
    CS_CHECK(eb.msg[0] != '\0');
    CS_CHECK(d.nerrors >= 1);
    return d;
}

static bool
diag_has(const cs_res_diag *d, size_t i, const char *needle)
{
    if (i >= d->n) {
        fprintf(stderr, "    no diagnostic #%zu (have %zu)\n", i, d->n);
        return false;
    }
    if (strstr(d->items[i].msg, needle) == NULL) {
        fprintf(stderr, "    diagnostic #%zu \"%s\" lacks \"%s\"\n", i,
                d->items[i].msg, needle);
        return false;
    }
    return true;
}

#define HR_POLICY                                                          \
    "{\"regions\": [\"eu\", \"us\"], \"rules\": ["                         \
    "{\"pattern\": \"ctx://acme/hr/public/**\", \"home_region\": \"eu\","  \
    " \"payload\": \"replicate\", \"on_demand\": \"allow\", \"cache\": true}," \
    "{\"pattern\": \"ctx://acme/hr/**\", \"home_region\": \"eu\","         \
    " \"payload\": \"home-only\", \"on_demand\": \"allow\", \"cache\": false}," \
    "{\"pattern\": \"ctx://acme/legal/**\", \"home_region\": \"us\","      \
    " \"payload\": \"replicate\", \"on_demand\": \"deny\"}]}"

static void
test_parse_and_match(void)
{
    cs_residency *p = parse_ok(HR_POLICY);
    const cs_res_rule *r;
    size_t idx = 99;

    if (p == NULL)
        return;
    CS_CHECK_INT_EQ(cs_residency_count(p), 3);
    CS_CHECK_INT_EQ(cs_residency_nregions(p), 2);
    CS_CHECK_STR_EQ(cs_residency_region(p, 1), "us");
    r = cs_residency_match(p, "ctx://acme/hr/salaries", &idx);
    if (CS_CHECK(r != NULL)) {
        CS_CHECK_INT_EQ(idx, 1);
        CS_CHECK_STR_EQ(r->pattern, "ctx://acme/hr/**");
        CS_CHECK_STR_EQ(r->home_region, "eu");
        CS_CHECK_INT_EQ(r->payload, CS_RES_HOME_ONLY);
        CS_CHECK(r->on_demand);
        CS_CHECK(!r->cache);
        CS_CHECK(cs_res_payload_allowed(r, "eu"));
        CS_CHECK(!cs_res_payload_allowed(r, "us"));
        CS_CHECK(!cs_res_payload_allowed(r, ""));
        CS_CHECK(!cs_res_payload_allowed(r, NULL));
        CS_CHECK(!cs_res_may_cache(r, "us"));
    }
    /* the narrower exception comes first and wins */
    r = cs_residency_match(p, "ctx://acme/hr/public/handbook", &idx);
    if (CS_CHECK(r != NULL)) {
        CS_CHECK_INT_EQ(idx, 0);
        CS_CHECK_INT_EQ(r->payload, CS_RES_REPLICATE);
        CS_CHECK(cs_res_payload_allowed(r, "us"));
        CS_CHECK(cs_res_may_cache(r, "us"));
    }
    r = cs_residency_match(p, "ctx://acme/legal/nda", &idx);
    if (CS_CHECK(r != NULL)) {
        CS_CHECK(!r->on_demand);   /* "deny" */
        CS_CHECK(!r->cache);       /* default false */
        CS_CHECK(!cs_res_may_cache(r, "us"));
    }
    CS_CHECK(cs_residency_match(p, "ctx://acme/eng/spec", NULL) == NULL);
    CS_CHECK(cs_residency_match(p, "not a uri", NULL) == NULL);
    CS_CHECK(cs_residency_match(NULL, "ctx://acme/hr/x", NULL) == NULL);
    CS_CHECK(cs_res_payload_allowed(NULL, "us"));
    CS_CHECK(cs_res_may_cache(NULL, "us"));
    CS_CHECK_STR_EQ(cs_res_payload_name(CS_RES_HOME_ONLY), "home-only");
    cs_residency_free(p);
}

static void
test_explain(void)
{
    cs_residency *p = parse_ok(HR_POLICY);
    char buf[512];
    if (p == NULL)
        return;
    cs_residency_explain(p, "ctx://acme/hr/salaries", buf, sizeof(buf));
    CS_CHECK_STR_EQ(buf, "rule 2 (ctx://acme/hr/**) matches: payloads are "
                         "home-only in eu; on-demand reads allowed; not "
                         "cached outside eu");
    cs_residency_explain(p, "ctx://acme/eng/spec", buf, sizeof(buf));
    CS_CHECK_STR_EQ(buf, "no rule matches: payloads replicate freely");
    cs_residency_explain(p, "ctx://acme/hr/public/x", buf, sizeof(buf));
    CS_CHECK(strstr(buf, "rule 1 (ctx://acme/hr/public/**) matches") == buf);
    CS_CHECK(strstr(buf, "replicate to every region") != NULL);
    cs_residency_explain(p, "ctx://acme/legal/x", buf, sizeof(buf));
    CS_CHECK(strstr(buf, "on-demand reads denied") != NULL);
    cs_residency_explain(NULL, "ctx://acme/hr/x", buf, sizeof(buf));
    CS_CHECK(strstr(buf, "no residency policy") == buf);
    cs_residency_explain(p, "ctx://acme/hr/salaries", buf, 10);
    CS_CHECK_INT_EQ(strlen(buf), 9); /* truncated, terminated */
    cs_residency_free(p);
}

static void
test_defaults_and_empty(void)
{
    cs_residency *p = parse_ok("{\"rules\": []}");
    CS_CHECK(p != NULL && cs_residency_count(p) == 0);
    cs_residency_free(p);
    p = parse_ok("{\"rules\": [{\"pattern\": \"**\", \"home_region\": "
                 "\"ap-south.1\", \"payload\": \"home-only\"}]}");
    if (p != NULL) {
        const cs_res_rule *r = cs_residency_rule(p, 0);
        CS_CHECK(r->on_demand);
        CS_CHECK(!r->cache);
        CS_CHECK(cs_residency_match(p, "ctx://a/b/c", NULL) == r);
        CS_CHECK(cs_residency_rule(p, 1) == NULL);
    }
    cs_residency_free(p);
}

static void
test_errors_in_order(void)
{
    cs_res_diag d;

    d = parse_bad("");
    CS_CHECK(diag_has(&d, 0, "malformed JSON"));
    d = parse_bad("[1]");
    CS_CHECK(diag_has(&d, 0, "must be a JSON object"));
    d = parse_bad("{}");
    CS_CHECK(diag_has(&d, 0, "rules: missing"));
    d = parse_bad("{\"rules\": {}}");
    CS_CHECK(diag_has(&d, 0, "rules: must be an array"));
    d = parse_bad("{\"rules\": [], \"rules\": []}");
    CS_CHECK(diag_has(&d, 0, "malformed JSON"));
    d = parse_bad("{\"rules\": [], \"extra\": 1}");
    CS_CHECK(diag_has(&d, 0, "unknown key \"extra\""));

    /* every bad rule is reported, in order */
    d = parse_bad(
        "{\"regions\": [\"eu\", \"us\"], \"rules\": ["
        "{\"pattern\": \"ctx://acme/a**\", \"home_region\": \"eu\","
        " \"payload\": \"home-only\"},"
        "{\"pattern\": \"ctx://acme/b/**\", \"home_region\": \"mars\","
        " \"payload\": \"home-only\"},"
        "{\"pattern\": \"ctx://acme/c/**\", \"home_region\": \"eu\","
        " \"payload\": \"sometimes\", \"on_demand\": \"maybe\","
        " \"cache\": \"yes\", \"colour\": 1},"
        "{\"home_region\": \"e u\"},"
        "7]}");
    CS_CHECK(diag_has(&d, 0, "rule 1 (ctx://acme/a**): bad pattern"));
    CS_CHECK(diag_has(&d, 1, "rule 2 (ctx://acme/b/**): unknown "
                             "home_region \"mars\" (regions: eu, us)"));
    CS_CHECK(diag_has(&d, 2, "rule 3 (ctx://acme/c/**): unknown key "
                             "\"colour\""));
    CS_CHECK(diag_has(&d, 3, "rule 3 (ctx://acme/c/**): payload must be"));
    CS_CHECK(diag_has(&d, 4, "rule 3 (ctx://acme/c/**): on_demand must be"));
    CS_CHECK(diag_has(&d, 5, "rule 3 (ctx://acme/c/**): cache must be"));
    CS_CHECK(diag_has(&d, 6, "rule 4: pattern is required"));
    CS_CHECK(diag_has(&d, 7, "rule 4: home_region must be a region name"));
    CS_CHECK(diag_has(&d, 8, "rule 4: payload is required"));
    CS_CHECK(diag_has(&d, 9, "rule 5: must be an object"));
    CS_CHECK_INT_EQ(d.nerrors, 10);

    d = parse_bad("{\"regions\": [\"eu\", \"eu\", 3], \"rules\": []}");
    CS_CHECK(diag_has(&d, 0, "regions[1]: \"eu\" is listed twice"));
    CS_CHECK(diag_has(&d, 1, "regions[2]: must be a region name"));
}

static void
test_overlaps(void)
{
    cs_res_diag d;
    cs_residency *p;

    /* a later rule an earlier one covers never applies: error */
    d = parse_bad(
        "{\"rules\": ["
        "{\"pattern\": \"ctx://acme/**\", \"home_region\": \"us\","
        " \"payload\": \"replicate\"},"
        "{\"pattern\": \"ctx://acme/x/**\", \"home_region\": \"us\","
        " \"payload\": \"replicate\"},"
        "{\"pattern\": \"ctx://acme/hr/**\", \"home_region\": \"eu\","
        " \"payload\": \"home-only\"}]}");
    CS_CHECK_INT_EQ(d.nerrors, 2);
    CS_CHECK(diag_has(&d, 0, "rule 2 (ctx://acme/x/**) overlaps rule 1 "
                             "(ctx://acme/**): rule 1 covers every URI of "
                             "rule 2, so rule 2 never applies"));
    CS_CHECK(diag_has(&d, 1, "rule 3 (ctx://acme/hr/**) overlaps rule 1"));

    /* partial overlap with different settings: error */
    d = parse_bad(
        "{\"rules\": ["
        "{\"pattern\": \"ctx://acme/*/salaries\", \"home_region\": \"us\","
        " \"payload\": \"replicate\"},"
        "{\"pattern\": \"ctx://acme/hr/**\", \"home_region\": \"eu\","
        " \"payload\": \"home-only\"}]}");
    CS_CHECK(diag_has(&d, 0, "rule 2 (ctx://acme/hr/**) overlaps rule 1 "
                             "(ctx://acme/*/salaries) with different "
                             "settings"));

    /* ... but fine with the same settings, or when disjoint */
    p = parse_ok("{\"rules\": ["
                 "{\"pattern\": \"ctx://acme/*/salaries\", \"home_region\":"
                 " \"eu\", \"payload\": \"home-only\"},"
                 "{\"pattern\": \"ctx://acme/hr/**\", \"home_region\": \"eu\","
                 " \"payload\": \"home-only\"},"
                 "{\"pattern\": \"ctx://other/eng/**\", \"home_region\": \"us\","
                 " \"payload\": \"replicate\"}]}");
    CS_CHECK(p != NULL);
    cs_residency_free(p);
}

static void
test_overlap_function(void)
{
    CS_CHECK(cs_res_patterns_overlap("ctx://acme/hr/**", "ctx://acme/*/x"));
    CS_CHECK(cs_res_patterns_overlap("**", "ctx://a/b/c"));
    CS_CHECK(cs_res_patterns_overlap("ctx://a*/b/c", "ctx://*z/b/c"));
    CS_CHECK(cs_res_patterns_overlap("ctx://a/**/z", "ctx://a/b/**"));
    CS_CHECK(cs_res_patterns_overlap("ctx://*x*/b/c", "ctx://*y*/b/c"));
    CS_CHECK(!cs_res_patterns_overlap("ctx://acme/hr/**", "ctx://acme/eng/**"));
    CS_CHECK(!cs_res_patterns_overlap("ctx://a*/b/c", "ctx://b*/b/c"));
    CS_CHECK(!cs_res_patterns_overlap("ctx://a/b/c", "ctx://a/b/c/d"));
    CS_CHECK(!cs_res_patterns_overlap("ctx://a/b", "not a pattern"));
}

static void
test_warnings(void)
{
    cs_residency *p = NULL;
    cs_res_diag d;
    const char *s =
        "{\"rules\": [{\"pattern\": \"ctx://acme/hr/**\", \"home_region\": "
        "\"eu\", \"payload\": \"home-only\", \"cache\": true}]}";
    CS_CHECK_INT_EQ(cs_residency_parse(s, strlen(s), &p, &d, NULL), CS_OK);
    CS_CHECK_INT_EQ(d.nwarnings, 1);
    CS_CHECK(!d.items[0].error);
    CS_CHECK(diag_has(&d, 0, "never cached outside eu"));
    if (p != NULL)
        CS_CHECK(!cs_res_may_cache(cs_residency_rule(p, 0), "us"));
    cs_residency_free(p);
}

static void
test_load_file(void)
{
    char path[] = "/tmp/cs-res-unit-XXXXXX";
    int fd = mkstemp(path);
    cs_residency *p = NULL;
    cs_res_diag d;
    cs_errbuf eb = {{0}};
    if (!CS_CHECK(fd >= 0))
        return;
    CS_CHECK(write(fd, HR_POLICY, strlen(HR_POLICY)) ==
             (ssize_t)strlen(HR_POLICY));
    close(fd);
    CS_CHECK_INT_EQ(cs_residency_load(path, &p, &d, &eb), CS_OK);
    CS_CHECK_INT_EQ(cs_residency_count(p), 3);
    cs_residency_free(p);
    p = NULL;
    unlink(path);
    CS_CHECK_INT_EQ(cs_residency_load(path, &p, &d, &eb), CS_EIO);
    CS_CHECK(strstr(eb.msg, "cannot open") != NULL);
    CS_CHECK(p == NULL);
}

int
main(void)
{
    test_parse_and_match();
    test_explain();
    test_defaults_and_empty();
    test_errors_in_order();
    test_overlaps();
    test_overlap_function();
    test_warnings();
    test_load_file();
    return cs_test_summary();
}
