/* SPDX-License-Identifier: MIT
 * test_bridge_config.c: parsing and validation of the ctxsync-bridge config
 * (bridge/config.c, included directly: unit tests link only cs_core). */
#include "../../bridge/config.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_test.h"

#define SECRET "s3cr3t-T0KEN-value_xyz"

static cs_err
parse(const char *s, br_config **out, cs_errbuf *eb)
{
    eb->msg[0] = '\0';
    return br_config_parse(s, strlen(s), "/nonexistent", out, eb);
}

static void
test_minimal_defaults(void)
{
    const char *s =
        "{\"links\": [{\"name\": \"eu-to-us\","
        " \"source\": {\"url\": \"http://127.0.0.1:4111/\", \"token\": \"" SECRET "\"},"
        " \"target\": {\"url\": \"https://us.example:8443\", \"token\": \"t2\"}}]}";
    br_config *c = NULL;
    cs_errbuf eb;
    const br_link_config *l;

    if (!CS_CHECK_INT_EQ(parse(s, &c, &eb), CS_OK)) {
        fprintf(stderr, "    %s\n", eb.msg);
        return;
    }
    CS_CHECK(br_config_status(c) == NULL);
    CS_CHECK(br_config_control(c) == NULL);
    CS_CHECK(br_config_state_dir(c) == NULL);
    CS_CHECK_INT_EQ(br_config_nlinks(c), 1);
    l = br_config_link(c, 0);
    CS_CHECK_STR_EQ(l->name, "eu-to-us");
    CS_CHECK_STR_EQ(l->source.url, "http://127.0.0.1:4111"); /* trailing '/' gone */
    CS_CHECK_STR_EQ(l->source.token, SECRET);
    CS_CHECK_STR_EQ(l->target.url, "https://us.example:8443");
    CS_CHECK(!l->source.insecure);
    CS_CHECK(l->source.ca == NULL);
    CS_CHECK_INT_EQ(l->mode, BR_MODE_FULL);
    CS_CHECK_INT_EQ(l->npatterns, 1);
    CS_CHECK_STR_EQ(l->patterns[0], "**");
    CS_CHECK_STR_EQ(l->patterns_csv, "**");
    CS_CHECK_INT_EQ(l->max_events, 500);
    CS_CHECK_INT_EQ(l->max_bytes, 4194304);
    CS_CHECK_INT_EQ(l->in_flight, 4);
    CS_CHECK_INT_EQ(l->keepalive_s, 15);
    CS_CHECK_INT_EQ(l->backoff_max_s, 30);
    CS_CHECK(br_config_find_link(c, "eu-to-us") == l);
    CS_CHECK(br_config_find_link(c, "nope") == NULL);
    CS_CHECK(br_config_link(c, 1) == NULL);
    br_config_free(c);
}

static void
test_full(void)
{
    const char *s =
        "{\"status\": \"127.0.0.1:9100\", \"control\": \"ipc:///tmp/x.ipc\","
        " \"state_dir\": \"/var/lib/ctxsync-bridge\", \"links\": ["
        " {\"name\": \"a\", \"mode\": \"metadata\","
        "  \"patterns\": [\"ctx://acme/**\", \"ctx://*/docs/*\"],"
        "  \"batch\": {\"max_events\": 100, \"max_bytes\": 1048576},"
        "  \"in_flight\": 8, \"keepalive_s\": 5, \"backoff_max_s\": 60,"
        "  \"source\": {\"url\": \"https://eu\", \"token\": \"x\", \"ca\": \"/ca.pem\","
        "   \"cert\": \"/c.pem\", \"key\": \"/k.pem\"},"
        "  \"target\": {\"url\": \"https://us\", \"token\": \"y\", \"insecure\": true}},"
        " {\"name\": \"b\", \"source\": {\"url\": \"https://us\", \"token\": \"y\"},"
        "  \"target\": {\"url\": \"https://eu\", \"token\": \"x\"}}]}";
    br_config *c = NULL;
    cs_errbuf eb;
    const br_link_config *l;

    if (!CS_CHECK_INT_EQ(parse(s, &c, &eb), CS_OK)) {
        fprintf(stderr, "    %s\n", eb.msg);
        return;
    }
    CS_CHECK_STR_EQ(br_config_status(c), "127.0.0.1:9100");
    CS_CHECK_STR_EQ(br_config_control(c), "ipc:///tmp/x.ipc");
    CS_CHECK_STR_EQ(br_config_state_dir(c), "/var/lib/ctxsync-bridge");
    CS_CHECK_INT_EQ(br_config_nlinks(c), 2);
    l = br_config_link(c, 0);
    CS_CHECK_INT_EQ(l->mode, BR_MODE_METADATA);
    CS_CHECK_STR_EQ(br_mode_name(l->mode), "metadata");
    CS_CHECK_INT_EQ(l->npatterns, 2);
    CS_CHECK_STR_EQ(l->patterns_csv, "ctx://acme/**,ctx://*/docs/*");
    CS_CHECK_INT_EQ(l->max_events, 100);
    CS_CHECK_INT_EQ(l->max_bytes, 1048576);
    CS_CHECK_INT_EQ(l->in_flight, 8);
    CS_CHECK_INT_EQ(l->keepalive_s, 5);
    CS_CHECK_INT_EQ(l->backoff_max_s, 60);
    CS_CHECK_STR_EQ(l->source.ca, "/ca.pem");
    CS_CHECK_STR_EQ(l->source.cert, "/c.pem");
    CS_CHECK_STR_EQ(l->source.key, "/k.pem");
    CS_CHECK(l->target.insecure);
    CS_CHECK_STR_EQ(br_config_link(c, 1)->name, "b");
    br_config_free(c);
}

static void
test_token_file_and_env(void)
{
    char dir[] = "/tmp/cs-brcfg-XXXXXX";
    char path[128], cfgpath[128], doc[1024];
    br_config *c = NULL;
    cs_errbuf eb;
    FILE *f;

    if (!CS_CHECK(mkdtemp(dir) != NULL))
        return;
    snprintf(path, sizeof(path), "%s/tok", dir);
    f = fopen(path, "w");
    fputs(SECRET "\n", f);
    fclose(f);
    setenv("CS_TEST_BRIDGE_TOKEN", "from-env", 1);
    /* a relative token_file is resolved against the config's directory */
    snprintf(doc, sizeof(doc),
             "{\"links\": [{\"name\": \"l\","
             " \"source\": {\"url\": \"http://a\", \"token_file\": \"tok\"},"
             " \"target\": {\"url\": \"http://b\", \"token_env\": \"CS_TEST_BRIDGE_TOKEN\"}}]}");
    snprintf(cfgpath, sizeof(cfgpath), "%s/bridge.json", dir);
    f = fopen(cfgpath, "w");
    fputs(doc, f);
    fclose(f);
    eb.msg[0] = '\0';
    if (CS_CHECK_INT_EQ(br_config_load(cfgpath, &c, &eb), CS_OK)) {
        CS_CHECK_STR_EQ(br_config_link(c, 0)->source.token, SECRET); /* newline trimmed */
        CS_CHECK_STR_EQ(br_config_link(c, 0)->target.token, "from-env");
        br_config_free(c);
        c = NULL;
    } else {
        fprintf(stderr, "    %s\n", eb.msg);
    }
    /* missing file, unset variable */
    CS_CHECK_INT_EQ(parse("{\"links\": [{\"name\": \"l\","
                          " \"source\": {\"url\": \"http://a\", \"token_file\": \"nope\"},"
                          " \"target\": {\"url\": \"http://b\", \"token\": \"t\"}}]}",
                          &c, &eb),
                    CS_EIO);
    CS_CHECK(strstr(eb.msg, "link \"l\": source.token_file") != NULL);
    unsetenv("CS_TEST_BRIDGE_TOKEN");
    CS_CHECK_INT_EQ(br_config_load(cfgpath, &c, &eb), CS_EINVAL);
    CS_CHECK(strstr(eb.msg, "target.token_env") != NULL);
    CS_CHECK(strstr(eb.msg, "CS_TEST_BRIDGE_TOKEN") != NULL);
    /* no token at all */
    CS_CHECK_INT_EQ(br_config_load("/nonexistent/dir/bridge.json", &c, &eb), CS_EIO);
    unlink(path);
    unlink(cfgpath);
    rmdir(dir);
}

struct bad {
    const char *doc;
    const char *expect; /* substring of the message */
};

#define SRC "\"source\": {\"url\": \"http://a\", \"token\": \"" SECRET "\"}"
#define TGT "\"target\": {\"url\": \"http://b\", \"token\": \"" SECRET "\"}"
#define LINK(extra) "{\"links\": [{\"name\": \"l1\", " SRC ", " TGT extra "}]}"

static const struct bad bads[] = {
    {"", "malformed JSON"},
    {"{\"links\": [", "malformed JSON"},
    {"{\"links\": [], \"links\": []}", "duplicate key"},
    {"[]", "must be a JSON object"},
    {"{}", "config.links: missing"},
    {"{\"links\": []}", "non-empty array"},
    {"{\"links\": {}}", "non-empty array"},
    {"{\"links\": [1]}", "links[0]: must be an object"},
    {"{\"lnks\": []}", "config: unknown key \"lnks\""},
    {"{\"status\": \"nowhere\", \"links\": []}", "config.status"},
    {"{\"status\": \"127.0.0.1:99999\", \"links\": []}", "config.status"},
    {"{\"status\": 9100, \"links\": []}", "config.status: must be a string"},
    {"{\"control\": \"tcp://1.2.3.4:5\", \"links\": []}", "config.control"},
    {"{\"links\": [{" SRC ", " TGT "}]}", "links[0].name: missing"},
    {"{\"links\": [{\"name\": \"a b\", " SRC ", " TGT "}]}", "links[0].name"},
    {"{\"links\": [{\"name\": \"\", " SRC ", " TGT "}]}", "links[0].name"},
    {"{\"links\": [{\"name\": 5, " SRC ", " TGT "}]}", "links[0].name"},
    {"{\"links\": [{\"name\": \"l1\", " TGT "}]}", "link \"l1\": source: missing"},
    {"{\"links\": [{\"name\": \"l1\", " SRC "}]}", "link \"l1\": target: missing"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": 1, " TGT "}]}", "source: must be an object"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"token\": \"x\"}, " TGT "}]}",
     "link \"l1\": source.url: missing"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\"}, " TGT "}]}",
     "link \"l1\": source.token: missing"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"ftp://a\", \"token\": \"x\"}, " TGT "}]}",
     "source.url: must start with http:// or https://"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://\", \"token\": \"x\"}, " TGT "}]}",
     "source.url: missing host"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a/b?c=1\", \"token\": \"x\"}, " TGT "}]}",
     "source.url: invalid character"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a b\", \"token\": \"x\"}, " TGT "}]}",
     "source.url: invalid character"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"x\", \"token_env\": \"HOME\"}, " TGT "}]}",
     "source: give only one of token"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"has space " SECRET "\"}, " TGT "}]}",
     "source: token contains a space"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"\"}, " TGT "}]}",
     "source: token is empty"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": 12}, " TGT "}]}",
     "source.token: must be a string"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"x\", \"tokn\": \"y\"}, " TGT "}]}",
     "link \"l1\": source: unknown key \"tokn\""},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"x\", \"cert\": \"/c\"}, " TGT "}]}",
     "source: cert and key must be given together"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"x\", \"insecure\": \"yes\"}, " TGT "}]}",
     "source.insecure: must be true or false"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://b/\", \"token\": \"x\"}, " TGT "}]}",
     "source.url and target.url are the same"},
    {LINK(", \"mode\": \"fast\""), "link \"l1\".mode: unknown mode"},
    {LINK(", \"mode\": 1"), "link \"l1\".mode: unknown mode"},
    {LINK(", \"patterns\": [\"ctx://a**b\"]"), "link \"l1\".patterns[0]: bad pattern"},
    {LINK(", \"patterns\": [\"**\", \"acme/**\"]"), "link \"l1\".patterns[1]: bad pattern"},
    {LINK(", \"patterns\": []"), "link \"l1\".patterns: must not be empty"},
    {LINK(", \"patterns\": \"**\""), "link \"l1\".patterns: must be an array"},
    {LINK(", \"patterns\": [7]"), "link \"l1\".patterns[0]: must be a string"},
    {LINK(", \"batch\": []"), "link \"l1\".batch: must be an object"},
    {LINK(", \"batch\": {\"max_event\": 5}"), "link \"l1\".batch: unknown key \"max_event\""},
    {LINK(", \"batch\": {\"max_events\": 0}"), "link \"l1\".batch.max_events: must be between 1 and 10000"},
    {LINK(", \"batch\": {\"max_events\": 10001}"), "batch.max_events: must be between"},
    {LINK(", \"batch\": {\"max_events\": 1.5}"), "batch.max_events: must be an integer"},
    {LINK(", \"batch\": {\"max_bytes\": 10}"), "batch.max_bytes: must be between"},
    {LINK(", \"in_flight\": 0"), "link \"l1\".in_flight: must be between 1 and 64"},
    {LINK(", \"in_flight\": \"4\""), "link \"l1\".in_flight: must be an integer"},
    {LINK(", \"keepalive_s\": 0"), "link \"l1\".keepalive_s"},
    {LINK(", \"backoff_max_s\": -1"), "link \"l1\".backoff_max_s"},
    {LINK(", \"modes\": \"full\""), "link \"l1\": unknown key \"modes\""},
    {"{\"links\": [{\"name\": \"l1\", " SRC ", " TGT "}, {\"name\": \"l1\","
     " \"source\": {\"url\": \"http://c\", \"token\": \"x\"}, " TGT "}]}",
     "link \"l1\": duplicate link name"},
    {"{\"links\": [{\"name\": \"l1\", " SRC ", " TGT "}, {\"name\": \"l2\", " SRC ", " TGT "}]}",
     "link \"l2\": same source and target as link \"l1\""},
    /* malformed JSON right after a token: the message must not quote it */
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": \"" SECRET,
     "malformed JSON"},
    {"{\"links\": [{\"name\": \"l1\", \"source\": {\"url\": \"http://a\", \"token\": " SECRET "}}]}",
     "malformed JSON"},
};

static void
test_invalid(void)
{
    size_t i;
    for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        br_config *c = NULL;
        cs_errbuf eb;
        cs_err rc = parse(bads[i].doc, &c, &eb);
        if (!CS_CHECK(rc != CS_OK)) {
            fprintf(stderr, "    accepted: %s\n", bads[i].doc);
            br_config_free(c);
            continue;
        }
        CS_CHECK(c == NULL);
        if (!CS_CHECK(strstr(eb.msg, bads[i].expect) != NULL))
            fprintf(stderr, "    doc: %s\n    want: %s\n    got:  %s\n", bads[i].doc,
                    bads[i].expect, eb.msg);
        /* a token never appears in an error */
        if (!CS_CHECK(strstr(eb.msg, SECRET) == NULL))
            fprintf(stderr, "    token leaked: %s\n", eb.msg);
    }
}

static void
test_hostport(void)
{
    CS_CHECK_INT_EQ(br_hostport_validate("127.0.0.1:0", NULL), CS_OK);
    CS_CHECK_INT_EQ(br_hostport_validate("localhost:65535", NULL), CS_OK);
    CS_CHECK_INT_EQ(br_hostport_validate("[::1]:9100", NULL), CS_OK);
    CS_CHECK_INT_EQ(br_hostport_validate(":9100", NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(br_hostport_validate("host:", NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(br_hostport_validate("host:65536", NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(br_hostport_validate("host:12a", NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(br_hostport_validate("ho st:1", NULL), CS_EINVAL);
    CS_CHECK_INT_EQ(br_hostport_validate("host", NULL), CS_EINVAL);
}

int
main(void)
{
    test_minimal_defaults();
    test_full();
    test_token_file_and_env();
    test_invalid();
    test_hostport();
    return cs_test_summary();
}
