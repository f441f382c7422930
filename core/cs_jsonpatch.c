/* SPDX-License-Identifier: MIT
 * cs_jsonpatch.c: RFC 6902 JSON Patch diff and apply over jansson. */
#include "cs_jsonpatch.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable path buffer */

typedef struct pathbuf {
    char *p;
    size_t len;
    size_t cap;
} pathbuf;

static cs_err
pb_add(pathbuf *pb, const char *s, size_t n)
{
    if (pb->len + n + 1 > pb->cap) {
        size_t ncap = pb->cap ? pb->cap : 64;
        while (ncap < pb->len + n + 1)
            ncap *= 2;
        char *np = realloc(pb->p, ncap);
        if (np == NULL)
            return CS_ENOMEM;
        pb->p = np;
        pb->cap = ncap;
    }
    memcpy(pb->p + pb->len, s, n);
    pb->len += n;
    pb->p[pb->len] = '\0';
    return CS_OK;
}

/* Appends "/" + the RFC 6901 escape of key. */
static cs_err
pb_push_key(pathbuf *pb, const char *key, size_t klen)
{
    cs_err rc = pb_add(pb, "/", 1);
    for (size_t i = 0; rc == CS_OK && i < klen; i++) {
        if (key[i] == '~')
            rc = pb_add(pb, "~0", 2);
        else if (key[i] == '/')
            rc = pb_add(pb, "~1", 2);
        else
            rc = pb_add(pb, &key[i], 1);
    }
    return rc;
}

static cs_err
pb_push_index(pathbuf *pb, size_t idx)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "/%zu", idx);
    return pb_add(pb, tmp, (size_t)n);
}

/* ---- diff */

static cs_err
emit(json_t *ops, const char *kind, const char *path, const json_t *value)
{
    json_t *op = json_object();
    cs_err rc = CS_ENOMEM;

    if (op == NULL)
        goto out;
    if (json_object_set_new(op, "op", json_string(kind)) != 0 ||
        json_object_set_new(op, "path", json_string(path)) != 0)
        goto out;
    if (value != NULL &&
        json_object_set_new(op, "value", json_deep_copy(value)) != 0)
        goto out;
    if (json_array_append(ops, op) != 0)
        goto out;
    rc = CS_OK;
out:
    json_decref(op);
    return rc;
}

static uint64_t
mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t
bytes_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A hash consistent with json_equal (equal values, equal hashes). */
static uint64_t
value_hash(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        uint64_t h = 0x51;
        json_object_foreach((json_t *)v, key, val)
            h += mix(bytes_hash(key, strlen(key)) * 31 + value_hash(val));
        return mix(h);
    }
    case JSON_ARRAY: {
        uint64_t h = 0xa7;
        for (size_t i = 0; i < json_array_size(v); i++)
            h = mix(h * 31 + value_hash(json_array_get(v, i)));
        return h;
    }
    case JSON_STRING:
        return mix(bytes_hash(json_string_value(v), json_string_length(v)) ^ 3);
    case JSON_INTEGER:
        return mix((uint64_t)json_integer_value(v) ^ 0x1000);
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits = 0;
        if (d != 0.0) /* -0.0 == 0.0 */
            memcpy(&bits, &d, sizeof(bits));
        return mix(bits ^ 0x2000);
    }
    case JSON_TRUE:
        return 0x11;
    case JSON_FALSE:
        return 0x12;
    case JSON_NULL:
        return 0x13;
    }
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of an object in byte order (borrowed strings), *n of them. */
static cs_err
sorted_keys(const json_t *obj, const char ***out, size_t *n)
{
    size_t cnt = json_object_size(obj);
    const char **keys = malloc((cnt ? cnt : 1) * sizeof(*keys));
    const char *key;
    json_t *val;
    size_t i = 0;

    if (keys == NULL)
        return CS_ENOMEM;
    json_object_foreach((json_t *)obj, key, val) {
        (void)val;
        keys[i++] = key;
    }
    qsort(keys, i, sizeof(*keys), cmp_str);
    *out = keys;
    *n = i;
    return CS_OK;
}

static cs_err diff_value(const json_t *from, const json_t *to, pathbuf *path,
                         json_t *ops);

static cs_err
diff_object(const json_t *from, const json_t *to, pathbuf *path, json_t *ops)
{
    const char **fk = NULL, **tk = NULL;
    size_t nf = 0, nt = 0;
    size_t base = path->len;
    cs_err rc = sorted_keys(from, &fk, &nf);

    if (rc == CS_OK)
        rc = sorted_keys(to, &tk, &nt);
    for (size_t i = 0; rc == CS_OK && i < nf; i++) {
        if (json_object_get(to, fk[i]) != NULL)
            continue;
        rc = pb_push_key(path, fk[i], strlen(fk[i]));
        if (rc == CS_OK)
            rc = emit(ops, "remove", path->p, NULL);
        path->len = base;
        path->p[base] = '\0';
    }
    for (size_t i = 0; rc == CS_OK && i < nt; i++) {
        const json_t *fv = json_object_get(from, tk[i]);
        const json_t *tv = json_object_get(to, tk[i]);
        rc = pb_push_key(path, tk[i], strlen(tk[i]));
        if (rc == CS_OK)
            rc = fv ? diff_value(fv, tv, path, ops)
                    : emit(ops, "add", path->p, tv);
        path->len = base;
        path->p[base] = '\0';
    }
    free(fk);
    free(tk);
    return rc;
}

/* Emits the ops for one run of unmatched elements: from[fi..fi+r) replaced
 * by to[tj..tj+s), at current index *idx of the array being patched. */
static cs_err
diff_run(const json_t *from, size_t fi, size_t r, const json_t *to, size_t tj,
         size_t s, size_t *idx, pathbuf *path, json_t *ops)
{
    size_t base = path->len;
    size_t pairs = r < s ? r : s;
    cs_err rc = CS_OK;

    for (size_t t = 0; rc == CS_OK && t < r + s - pairs; t++) {
        rc = pb_push_index(path, *idx);
        if (rc != CS_OK)
            break;
        if (t < pairs) {
            rc = diff_value(json_array_get(from, fi + t),
                            json_array_get(to, tj + t), path, ops);
            (*idx)++;
        } else if (r > s) {
            rc = emit(ops, "remove", path->p, NULL);
        } else {
            rc = emit(ops, "add", path->p, json_array_get(to, tj + t));
            (*idx)++;
        }
        path->len = base;
        path->p[base] = '\0';
    }
    return rc;
}

static bool
elem_eq(const json_t *x, uint64_t hx, const json_t *y, uint64_t hy)
{
    return hx == hy && json_equal((json_t *)x, (json_t *)y);
}

static cs_err
diff_array(const json_t *from, const json_t *to, pathbuf *path, json_t *ops)
{
    size_t n = json_array_size(from), m = json_array_size(to);
    size_t pre = 0, suf = 0, idx;
    uint64_t *hf = NULL, *ht = NULL;
    uint32_t *tab = NULL;
    cs_err rc = CS_OK;

    hf = malloc((n ? n : 1) * sizeof(*hf));
    ht = malloc((m ? m : 1) * sizeof(*ht));
    if (hf == NULL || ht == NULL) {
        rc = CS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        hf[i] = value_hash(json_array_get(from, i));
    for (size_t j = 0; j < m; j++)
        ht[j] = value_hash(json_array_get(to, j));
    while (pre < n && pre < m &&
           elem_eq(json_array_get(from, pre), hf[pre], json_array_get(to, pre),
                   ht[pre]))
        pre++;
    while (suf < n - pre && suf < m - pre &&
           elem_eq(json_array_get(from, n - 1 - suf), hf[n - 1 - suf],
                   json_array_get(to, m - 1 - suf), ht[m - 1 - suf]))
        suf++;

    size_t nn = n - pre - suf, mm = m - pre - suf;
    idx = pre;
    if (nn == 0 || mm == 0 || nn > CS_JSONPATCH_LCS_CELLS / mm) {
        rc = diff_run(from, pre, nn, to, pre, mm, &idx, path, ops);
        goto out;
    }
    /* tab[i][j] = LCS length of from[pre+i..] and to[pre+j..] */
    size_t w = mm + 1;
    tab = malloc((nn + 1) * w * sizeof(*tab));
    if (tab == NULL) {
        rc = CS_ENOMEM;
        goto out;
    }
    for (size_t i = nn + 1; i-- > 0;) {
        for (size_t j = mm + 1; j-- > 0;) {
            uint32_t v;
            if (i == nn || j == mm)
                v = 0;
            else if (elem_eq(json_array_get(from, pre + i), hf[pre + i],
                             json_array_get(to, pre + j), ht[pre + j]))
                v = tab[(i + 1) * w + j + 1] + 1;
            else
                v = tab[(i + 1) * w + j] > tab[i * w + j + 1]
                        ? tab[(i + 1) * w + j]
                        : tab[i * w + j + 1];
            tab[i * w + j] = v;
        }
    }
    size_t i = 0, j = 0, ri = 0, rj = 0; /* run start */
    while (rc == CS_OK && (i < nn || j < mm)) {
        if (i < nn && j < mm &&
            tab[i * w + j] == tab[(i + 1) * w + j + 1] + 1 &&
            elem_eq(json_array_get(from, pre + i), hf[pre + i],
                    json_array_get(to, pre + j), ht[pre + j])) {
            rc = diff_run(from, pre + ri, i - ri, to, pre + rj, j - rj, &idx,
                          path, ops);
            idx++; /* the matched element */
            i++;
            j++;
            ri = i;
            rj = j;
        } else if (j == mm || (i < nn && tab[(i + 1) * w + j] >= tab[i * w + j + 1])) {
            i++;
        } else {
            j++;
        }
    }
    if (rc == CS_OK)
        rc = diff_run(from, pre + ri, nn - ri, to, pre + rj, mm - rj, &idx,
                      path, ops);
out:
    free(hf);
    free(ht);
    free(tab);
    return rc;
}

static cs_err
diff_value(const json_t *from, const json_t *to, pathbuf *path, json_t *ops)
{
    if (json_equal((json_t *)from, (json_t *)to))
        return CS_OK;
    if (json_is_object(from) && json_is_object(to))
        return diff_object(from, to, path, ops);
    if (json_is_array(from) && json_is_array(to))
        return diff_array(from, to, path, ops);
    return emit(ops, "replace", path->p, to);
}

cs_err
cs_jsonpatch_diff(const json_t *from, const json_t *to, json_t **out)
{
    pathbuf path = {0};
    json_t *ops = NULL;
    cs_err rc;

    if (from == NULL || to == NULL || out == NULL)
        return CS_EINVAL;
    ops = json_array();
    rc = ops ? pb_add(&path, "", 0) : CS_ENOMEM;
    if (rc == CS_OK)
        rc = diff_value(from, to, &path, ops);
    if (rc == CS_OK) {
        *out = ops;
        ops = NULL;
    }
    json_decref(ops);
    free(path.p);
    return rc;
}

/* ---- apply */

/* Next reference token of a JSON pointer, unescaped into tok (malloc'd).
 * *pos is the offset of the '/' that starts it; advanced past the token. */
static cs_err
next_token(const char *ptr, size_t *pos, char **tok, cs_errbuf *eb,
           const char *where)
{
    size_t start = *pos + 1;
    size_t end = start;
    char *t;
    size_t n = 0;

    while (ptr[end] != '\0' && ptr[end] != '/')
        end++;
    t = malloc(end - start + 1);
    if (t == NULL)
        return CS_ENOMEM;
    for (size_t i = start; i < end; i++) {
        if (ptr[i] == '~') {
            if (ptr[i + 1] == '0')
                t[n++] = '~';
            else if (ptr[i + 1] == '1')
                t[n++] = '/';
            else {
                free(t);
                return cs_errf(eb, CS_EINVAL,
                               "%s: invalid escape '~' at byte %zu of \"%s\"",
                               where, i, ptr);
            }
            i++;
        } else {
            t[n++] = ptr[i];
        }
    }
    t[n] = '\0';
    *tok = t;
    *pos = end;
    return CS_OK;
}

/* Parses an array index token: digits without leading zeros; "-" means
 * size when allow_end. The result must be < size (<= size if allow_end). */
static cs_err
parse_index(const char *tok, size_t size, bool allow_end, size_t *idx,
            cs_errbuf *eb, const char *where)
{
    size_t v = 0;

    if (strcmp(tok, "-") == 0) {
        if (!allow_end)
            return cs_errf(eb, CS_EINVAL,
                           "%s: index \"-\" (past the end) is not an element",
                           where);
        *idx = size;
        return CS_OK;
    }
    if (tok[0] == '\0' || (tok[0] == '0' && tok[1] != '\0'))
        return cs_errf(eb, CS_EINVAL, "%s: invalid array index \"%s\"", where,
                       tok);
    for (const char *p = tok; *p; p++) {
        if (*p < '0' || *p > '9')
            return cs_errf(eb, CS_EINVAL, "%s: invalid array index \"%s\"",
                           where, tok);
        if (v > (SIZE_MAX - 9) / 10)
            return cs_errf(eb, CS_EINVAL, "%s: array index \"%s\" out of range",
                           where, tok);
        v = v * 10 + (size_t)(*p - '0');
    }
    if (v > size || (v == size && !allow_end))
        return cs_errf(eb, CS_EINVAL,
                       "%s: array index %zu out of range (size %zu)", where, v,
                       size);
    *idx = v;
    return CS_OK;
}

/* Resolves ptr into its parent container and last token. For "" (the whole
 * document) *parent and *last are NULL. *last is malloc'd. */
static cs_err
resolve(json_t *root, const char *ptr, json_t **parent, char **last,
        cs_errbuf *eb, const char *where)
{
    json_t *cur = root;
    size_t pos = 0;
    char *tok = NULL;
    cs_err rc = CS_OK;

    *parent = NULL;
    *last = NULL;
    if (ptr[0] == '\0')
        return CS_OK;
    if (ptr[0] != '/')
        return cs_errf(eb, CS_EINVAL, "%s: pointer \"%s\" must be empty or "
                                      "start with '/'", where, ptr);
    for (;;) {
        rc = next_token(ptr, &pos, &tok, eb, where);
        if (rc != CS_OK)
            goto out;
        if (ptr[pos] == '\0')
            break;
        json_t *next = NULL;
        if (json_is_object(cur)) {
            next = json_object_get(cur, tok);
            if (next == NULL) {
                rc = cs_errf(eb, CS_EINVAL, "%s: no member \"%s\" in \"%s\"",
                             where, tok, ptr);
                goto out;
            }
        } else if (json_is_array(cur)) {
            size_t idx = 0;
            rc = parse_index(tok, json_array_size(cur), false, &idx, eb, where);
            if (rc != CS_OK)
                goto out;
            next = json_array_get(cur, idx);
        } else {
            rc = cs_errf(eb, CS_EINVAL, "%s: \"%s\" goes through a scalar",
                         where, ptr);
            goto out;
        }
        free(tok);
        tok = NULL;
        cur = next;
    }
    if (!json_is_object(cur) && !json_is_array(cur)) {
        rc = cs_errf(eb, CS_EINVAL, "%s: parent of \"%s\" is not a container",
                     where, ptr);
        goto out;
    }
    *parent = cur;
    *last = tok;
    tok = NULL;
out:
    free(tok);
    return rc;
}

/* Borrowed value at ptr, or an error. */
static cs_err
get_value(json_t *root, const char *ptr, json_t **val, cs_errbuf *eb,
          const char *where)
{
    json_t *parent = NULL;
    char *last = NULL;
    size_t idx = 0;
    cs_err rc = resolve(root, ptr, &parent, &last, eb, where);

    if (rc != CS_OK)
        return rc;
    if (parent == NULL) {
        *val = root;
    } else if (json_is_object(parent)) {
        *val = json_object_get(parent, last);
        if (*val == NULL)
            rc = cs_errf(eb, CS_EINVAL, "%s: no member at \"%s\"", where, ptr);
    } else {
        rc = parse_index(last, json_array_size(parent), false, &idx, eb, where);
        if (rc == CS_OK)
            *val = json_array_get(parent, idx);
    }
    free(last);
    return rc;
}

/* Adds (steals) value at ptr; "" replaces the document. */
static cs_err
do_add(json_t **root, const char *ptr, json_t *value, bool must_exist,
       cs_errbuf *eb, const char *where)
{
    json_t *parent = NULL;
    char *last = NULL;
    size_t idx = 0;
    cs_err rc = resolve(*root, ptr, &parent, &last, eb, where);

    if (rc != CS_OK)
        goto out;
    if (parent == NULL) {
        json_decref(*root);
        *root = value;
        value = NULL;
    } else if (json_is_object(parent)) {
        if (must_exist && json_object_get(parent, last) == NULL) {
            rc = cs_errf(eb, CS_EINVAL, "%s: no member at \"%s\"", where, ptr);
            goto out;
        }
        if (json_object_set_new(parent, last, value) != 0)
            rc = cs_errf(eb, CS_EINVAL, "%s: cannot set \"%s\"", where, ptr);
        value = NULL;
    } else {
        rc = parse_index(last, json_array_size(parent), !must_exist, &idx, eb,
                         where);
        if (rc != CS_OK)
            goto out;
        int r = must_exist ? json_array_set_new(parent, idx, value)
                           : json_array_insert_new(parent, idx, value);
        value = NULL;
        if (r != 0)
            rc = CS_ENOMEM;
    }
out:
    json_decref(value);
    free(last);
    return rc;
}

static cs_err
do_remove(json_t *root, const char *ptr, cs_errbuf *eb, const char *where)
{
    json_t *parent = NULL;
    char *last = NULL;
    size_t idx = 0;
    cs_err rc = resolve(root, ptr, &parent, &last, eb, where);

    if (rc != CS_OK)
        goto out;
    if (parent == NULL) {
        rc = cs_errf(eb, CS_EINVAL, "%s: cannot remove the whole document",
                     where);
    } else if (json_is_object(parent)) {
        if (json_object_del(parent, last) != 0)
            rc = cs_errf(eb, CS_EINVAL, "%s: no member at \"%s\"", where, ptr);
    } else {
        rc = parse_index(last, json_array_size(parent), false, &idx, eb, where);
        if (rc == CS_OK && json_array_remove(parent, idx) != 0)
            rc = CS_ENOMEM;
    }
out:
    free(last);
    return rc;
}

/* Equality for "test": numbers by value, the rest structurally. */
static bool
rfc_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_object(a)) {
        const char *key;
        json_t *va;
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_foreach((json_t *)a, key, va) {
            json_t *vb = json_object_get(b, key);
            if (vb == NULL || !rfc_equal(va, vb))
                return false;
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!rfc_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

static const char *
str_member(const json_t *op, const char *name)
{
    return json_string_value(json_object_get(op, name));
}

static cs_err
apply_one(json_t **root, const json_t *op, size_t i, cs_errbuf *eb)
{
    char where[64];
    const char *kind, *path, *from;
    json_t *value, *src = NULL;

    snprintf(where, sizeof(where), "op %zu", i);
    if (!json_is_object(op))
        return cs_errf(eb, CS_EINVAL, "%s: not an object", where);
    kind = str_member(op, "op");
    path = str_member(op, "path");
    value = json_object_get(op, "value");
    if (kind == NULL)
        return cs_errf(eb, CS_EINVAL, "%s: missing or non-string \"op\"", where);
    snprintf(where, sizeof(where), "op %zu (%.20s)", i, kind);
    if (path == NULL)
        return cs_errf(eb, CS_EINVAL, "%s: missing or non-string \"path\"",
                       where);

    if (strcmp(kind, "add") == 0 || strcmp(kind, "replace") == 0) {
        bool replace = kind[0] == 'r';
        json_t *copy;
        cs_err rc;
        if (value == NULL)
            return cs_errf(eb, CS_EINVAL, "%s: missing \"value\"", where);
        if (replace) { /* the target must exist */
            json_t *old = NULL;
            rc = get_value(*root, path, &old, eb, where);
            if (rc != CS_OK)
                return rc;
        }
        copy = json_deep_copy(value);
        if (copy == NULL)
            return CS_ENOMEM;
        return do_add(root, path, copy, replace, eb, where);
    }
    if (strcmp(kind, "remove") == 0)
        return do_remove(*root, path, eb, where);
    if (strcmp(kind, "test") == 0) {
        cs_err rc;
        if (value == NULL)
            return cs_errf(eb, CS_EINVAL, "%s: missing \"value\"", where);
        rc = get_value(*root, path, &src, eb, where);
        if (rc != CS_OK)
            return rc;
        if (!rfc_equal(src, value))
            return cs_errf(eb, CS_EINVAL, "%s: test failed at \"%s\"", where,
                           path);
        return CS_OK;
    }
    if (strcmp(kind, "move") == 0 || strcmp(kind, "copy") == 0) {
        bool move = kind[0] == 'm';
        json_t *v;
        cs_err rc;
        from = str_member(op, "from");
        if (from == NULL)
            return cs_errf(eb, CS_EINVAL, "%s: missing or non-string \"from\"",
                           where);
        rc = get_value(*root, from, &src, eb, where);
        if (rc != CS_OK)
            return rc;
        if (move) {
            size_t fl = strlen(from);
            if (strcmp(from, path) == 0)
                return CS_OK;
            if (strncmp(path, from, fl) == 0 && path[fl] == '/')
                return cs_errf(eb, CS_EINVAL,
                               "%s: cannot move \"%s\" into its own child",
                               where, from);
            v = json_incref(src);
            rc = do_remove(*root, from, eb, where);
            if (rc != CS_OK) {
                json_decref(v);
                return rc;
            }
        } else {
            v = json_deep_copy(src);
            if (v == NULL)
                return CS_ENOMEM;
        }
        return do_add(root, path, v, false, eb, where);
    }
    return cs_errf(eb, CS_EINVAL, "%s: unknown operation", where);
}

cs_err
cs_jsonpatch_apply(const json_t *doc, const json_t *patch, json_t **out,
                   cs_errbuf *eb)
{
    json_t *root = NULL;
    cs_err rc = CS_OK;

    if (doc == NULL || patch == NULL || out == NULL)
        return cs_errf(eb, CS_EINVAL, "missing argument");
    if (!json_is_array(patch))
        return cs_errf(eb, CS_EINVAL, "a JSON patch must be an array");
    root = json_deep_copy(doc);
    if (root == NULL)
        return CS_ENOMEM;
    for (size_t i = 0; i < json_array_size(patch); i++) {
        rc = apply_one(&root, json_array_get(patch, i), i, eb);
        if (rc != CS_OK)
            goto out;
    }
    *out = root;
    root = NULL;
out:
    json_decref(root);
    return rc;
}
