/* SPDX-License-Identifier: MIT
 * test_sqlpg.c: the SQLite-dialect -> PostgreSQL rewrite (cs_sqlpg). */
#include <stdlib.h>
#include <string.h>

#include "cs_sqlpg.h"
#include "cs_test.h"

typedef struct rw_case {
    const char *in, *out;
    int nparams;
} rw_case;

static const rw_case cases[] = {
    /* parameters */
    {"SELECT 1", "SELECT 1", 0},
    {"SELECT ?1", "SELECT $1", 1},
    {"SELECT a FROM t WHERE b = ?2 AND c = ?1", "SELECT a FROM t WHERE b = $2 AND c = $1", 2},
    {"INSERT INTO t VALUES (?, ?, ?)", "INSERT INTO t VALUES ($1, $2, $3)", 3},
    {"SELECT ?12", "SELECT $12", 12},
    {"SELECT ?1 + ?1", "SELECT $1 + $1", 1},
    /* quoted text is copied as is */
    {"SELECT '?1' || ?1", "SELECT '?1' || $1", 1},
    {"SELECT 'it''s ?' , ?1", "SELECT 'it''s ?' , $1", 1},
    {"SELECT \"we?ird\" FROM t WHERE x = ?3", "SELECT \"we?ird\" FROM t WHERE x = $3", 3},
    {"SELECT 'a IS b'", "SELECT 'a IS b'", 0},
    {"SELECT 'unterminated ?1", "SELECT 'unterminated ?1", 0},
    /* IS between values */
    {"WHERE parent_id IS ?2", "WHERE parent_id IS NOT DISTINCT FROM $2", 2},
    {"WHERE parent_id IS NOT ?2", "WHERE parent_id IS DISTINCT FROM $2", 2},
    {"WHERE b.parent_id IS forks.parent_id AND x",
     "WHERE b.parent_id IS NOT DISTINCT FROM forks.parent_id AND x", 0},
    {"WHERE a IS NULL", "WHERE a IS NULL", 0},
    {"WHERE a IS NOT NULL", "WHERE a IS NOT NULL", 0},
    {"WHERE a is not null", "WHERE a is not null", 0},
    {"WHERE a IS TRUE OR b IS NOT FALSE", "WHERE a IS TRUE OR b IS NOT FALSE", 0},
    {"WHERE a IS DISTINCT FROM b", "WHERE a IS DISTINCT FROM b", 0},
    {"WHERE a IS NOT DISTINCT FROM b", "WHERE a IS NOT DISTINCT FROM b", 0},
    {"SELECT this, island FROM isles", "SELECT this, island FROM isles", 0},
    /* a parameter tested for NULL is typed text */
    {"WHERE (?2 IS NULL OR org = ?2)", "WHERE ($2::text IS NULL OR org = $2)", 2},
    {"WHERE ?1 IS NOT NULL", "WHERE $1::text IS NOT NULL", 1},
    {"WHERE ?1   is\n null", "WHERE $1::text   is\n null", 1},
    {"WHERE ?1 IS ?2", "WHERE $1 IS NOT DISTINCT FROM $2", 2},
    /* INSERT OR IGNORE */
    {"INSERT OR IGNORE INTO t(a) VALUES (?1)",
     "INSERT INTO t(a) VALUES ($1) ON CONFLICT DO NOTHING", 1},
    {"  insert or ignore into t VALUES (?1);",
     "INSERT into t VALUES ($1) ON CONFLICT DO NOTHING", 1},
    {"INSERT INTO t VALUES (?1) ON CONFLICT(a) DO NOTHING",
     "INSERT INTO t VALUES ($1) ON CONFLICT(a) DO NOTHING", 1},
    {"INSERT OR REPLACE INTO t VALUES (1)", "INSERT OR REPLACE INTO t VALUES (1)", 0},
    /* BEGIN */
    {"BEGIN IMMEDIATE", "BEGIN", 0},
    {"BEGIN", "BEGIN", 0},
    {"begin deferred", "BEGIN", 0},
    {"BEGIN; SELECT pg_advisory_xact_lock(1)", "BEGIN; SELECT pg_advisory_xact_lock(1)", 0},
    {"BEGIN EXCLUSIVE; SELECT 1", "BEGIN; SELECT 1", 0},
    /* other statements untouched */
    {"SAVEPOINT w", "SAVEPOINT w", 0},
    {"ROLLBACK TO w; RELEASE w", "ROLLBACK TO w; RELEASE w", 0},
    {"", "", 0},
};

static void
test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = -1;
        char *out = cs_sqlpg_rewrite(cases[i].in, &n);
        if (!CS_CHECK_STR_EQ(out, cases[i].out))
            fprintf(stderr, "    input: %s\n", cases[i].in);
        CS_CHECK_INT_EQ(n, cases[i].nparams);
        free(out);
    }
}

static void
test_params(void)
{
    bool used[5];
    CS_CHECK_INT_EQ(cs_sqlpg_params("SELECT 1", used, 5), 0);
    CS_CHECK(!used[0] && !used[4]);
    CS_CHECK_INT_EQ(cs_sqlpg_params("SELECT $1, $3 WHERE '$2' = \"$4\"", used, 5), 3);
    CS_CHECK(used[0] && !used[1] && used[2] && !used[3] && !used[4]);
    CS_CHECK_INT_EQ(cs_sqlpg_params("SELECT $12", NULL, 0), 12);
    CS_CHECK_INT_EQ(cs_sqlpg_params("SELECT $99999999999999999999", used, 5), 0);
    CS_CHECK_INT_EQ(cs_sqlpg_params("$$ plpgsql $$ $2", used, 5), 2);
    CS_CHECK(used[1] && !used[0]);
    /* beyond the limit: written, not counted */
    {
        int n = -1;
        char *out = cs_sqlpg_rewrite("SELECT ?1000, ?2", &n);
        CS_CHECK_STR_EQ(out, "SELECT $1000, $2");
        CS_CHECK_INT_EQ(n, 2);
        free(out);
    }
}

static void
test_word(void)
{
    CS_CHECK(cs_sqlpg_word("  begin; x", 0, "BEGIN"));
    CS_CHECK(cs_sqlpg_word("ROLLBACK TO w", 1, "to"));
    CS_CHECK(!cs_sqlpg_word("ROLLBACK", 1, "TO"));
    CS_CHECK(!cs_sqlpg_word("COMMITTED", 0, "COMMIT"));
    CS_CHECK(!cs_sqlpg_word("", 0, "BEGIN"));
}

/* Random bytes never crash the rewrite, and the output keeps every quoted
 * run and every byte outside the rewritten forms. */
static void
test_random(void)
{
    static const char alphabet[] = "?1234IS NOTNULLisnot'\"();$ \n\tINSERT OR IGNORE BEGIN";
    unsigned seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        char in[64];
        int len = (int)(seed % 63);
        int n = -1;
        char *out;
        for (int i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        in[len] = '\0';
        seed = seed * 1103515245u + 12345u;
        out = cs_sqlpg_rewrite(in, &n);
        if (!CS_CHECK(out != NULL && n >= 0 && n <= CS_SQLPG_MAX_PARAM)) {
            free(out);
            break;
        }
        /* no '?' survives outside quotes */
        {
            char q = 0;
            bool stray = false;
            for (const char *p = out; *p; p++) {
                if (q) {
                    if (*p == q)
                        q = 0;
                } else if (*p == '\'' || *p == '"') {
                    q = *p;
                } else if (*p == '?') {
                    stray = true;
                }
            }
            if (stray && !CS_CHECK(!stray))
                fprintf(stderr, "    input: %s\n    output: %s\n", in, out);
        }
        free(out);
    }
}

static void
test_redact(void)
{
    char out[128];
    cs_sqlpg_redact_url("postgresql://u:s3cret@db:5432/x", out, sizeof(out));
    CS_CHECK_STR_EQ(out, "postgresql://u:***@db:5432/x");
    cs_sqlpg_redact_url("postgres://u@db/x?sslmode=require&password=pw&a=b",
                        out, sizeof(out));
    CS_CHECK_STR_EQ(out, "postgres://u@db/x?sslmode=require&password=***&a=b");
    cs_sqlpg_redact_url("postgres://u@db/x?password=pw", out, sizeof(out));
    CS_CHECK_STR_EQ(out, "postgres://u@db/x?password=***");
    cs_sqlpg_redact_url("postgres://db:5432/x", out, sizeof(out));
    CS_CHECK_STR_EQ(out, "postgres://db:5432/x");
    cs_sqlpg_redact_url("/var/lib/ctxsync:a@b", out, sizeof(out));
    CS_CHECK_STR_EQ(out, "/var/lib/ctxsync:a@b");
    cs_sqlpg_redact_url("postgres://u:pw@h/x", out, 12);
    CS_CHECK(strstr(out, "pw") == NULL);
}

int
main(void)
{
    test_cases();
    test_params();
    test_word();
    test_random();
    test_redact();
    return cs_test_summary();
}
