/* SPDX-License-Identifier: MIT
 * cs_diff.c: Myers line diff (see cs_diff.h for the algorithm and limits).
 *
 * The middle-snake search (diag) and its too-expensive heuristic follow the
 * structure of GNU diffutils' diffseq.h (Myers 1986, "An O(ND) Difference
 * Algorithm and Its Variations", section 4b), rewritten with an explicit
 * stack. */
#include "cs_diff.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Total diagonal visits (about 1 s of search) before every further
 * subproblem is split after a single step: bounds the time of adversarial
 * inputs at the price of minimality. */
#define CS_DIFF_WORK_BUDGET ((size_t)100000000)

struct cs_diff {
    cs_diff_op *ops;
    size_t nops;
    size_t added;
    size_t removed;
    size_t unchanged;
};

/* One side of the diff: its lines and their equivalence classes. */
typedef struct side {
    const char *text;
    size_t nlines;
    size_t *off;    /* line i is text[off[i] .. off[i] + len[i]) */
    uint32_t *len;
    bool nonl;      /* the last line has no '\n' */
    uint32_t *cls;  /* class id of each line */
    bool *changed;  /* result: line i is not in the common subsequence */
} side;

typedef struct eqclass {
    const char *p;
    uint32_t len;
    bool nonl;
    uint64_t hash;
    size_t count[2]; /* occurrences in a and in b */
} eqclass;

/* Work item for the divide and conquer. */
typedef struct range {
    ptrdiff_t xoff, xlim, yoff, ylim;
    bool minimal;
} range;

/* State of the compare step over the filtered sequences. */
typedef struct ctx {
    const uint32_t *xv; /* class ids of the kept a lines */
    const uint32_t *yv;
    bool *xchg;         /* changed flags in filtered index space */
    bool *ychg;
    ptrdiff_t *fd;      /* forward / backward furthest x per diagonal */
    ptrdiff_t *bd;
    ptrdiff_t too_expensive;
    size_t work;        /* diagonals visited so far, against the budget */
    range *stack;
    size_t nstack;
    size_t capstack;
} ctx;

typedef struct part {
    ptrdiff_t xmid, ymid;
    bool lo_minimal, hi_minimal;
} part;

static cs_err
split_lines(side *s, const char *text, size_t len, size_t max_lines)
{
    size_t n = 0;
    size_t pos = 0;

    s->text = text;
    s->nlines = 0;
    s->nonl = len > 0 && text[len - 1] != '\n';
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        pos = nl ? (size_t)(nl - text) + 1 : len;
        if (++n > max_lines)
            return CS_ETOOBIG;
    }
    s->nlines = n;
    s->off = malloc((n ? n : 1) * sizeof(*s->off));
    s->len = malloc((n ? n : 1) * sizeof(*s->len));
    s->cls = malloc((n ? n : 1) * sizeof(*s->cls));
    s->changed = calloc(n ? n : 1, sizeof(*s->changed));
    if (!s->off || !s->len || !s->cls || !s->changed)
        return CS_ENOMEM;
    pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (end - pos > UINT32_MAX)
            return CS_ETOOBIG;
        s->off[i] = pos;
        s->len[i] = (uint32_t)(end - pos);
        pos = nl ? end + 1 : len;
    }
    return CS_OK;
}

static void
side_free(side *s)
{
    free(s->off);
    free(s->len);
    free(s->cls);
    free(s->changed);
}

/* FNV-1a, 64 bit; the no-newline bit is folded in. */
static uint64_t
line_hash(const char *p, size_t len, bool nonl)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (nonl ? 0x9e3779b97f4a7c15ULL : 0);
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

/* Assigns class ids to the lines of both sides. */
static cs_err
intern_lines(side *sides, eqclass **classes_out)
{
    size_t total = sides[0].nlines + sides[1].nlines;
    size_t cap = 16;
    uint32_t *table = NULL;
    eqclass *classes = NULL;
    size_t nclasses = 0;
    cs_err rc = CS_OK;

    while (cap < total * 2)
        cap <<= 1;
    table = calloc(cap, sizeof(*table)); /* class id + 1; 0 = empty slot */
    classes = calloc(total ? total : 1, sizeof(*classes));
    if (!table || !classes) {
        rc = CS_ENOMEM;
        goto out;
    }
    for (int k = 0; k < 2; k++) {
        side *s = &sides[k];
        for (size_t i = 0; i < s->nlines; i++) {
            const char *p = s->text + s->off[i];
            uint32_t len = s->len[i];
            bool nonl = s->nonl && i + 1 == s->nlines;
            uint64_t h = line_hash(p, len, nonl);
            size_t slot = (size_t)h & (cap - 1);
            for (;;) {
                uint32_t id = table[slot];
                if (id == 0) {
                    eqclass *c = &classes[nclasses];
                    c->p = p;
                    c->len = len;
                    c->nonl = nonl;
                    c->hash = h;
                    c->count[0] = c->count[1] = 0;
                    table[slot] = (uint32_t)(++nclasses);
                    id = table[slot];
                }
                eqclass *c = &classes[id - 1];
                if (c->hash == h && c->len == len && c->nonl == nonl &&
                    (len == 0 || memcmp(c->p, p, len) == 0)) {
                    c->count[k]++;
                    s->cls[i] = id - 1;
                    break;
                }
                slot = (slot + 1) & (cap - 1);
            }
        }
    }
    *classes_out = classes;
    classes = NULL;
out:
    free(table);
    free(classes);
    return rc;
}

static cs_err
push_range(ctx *c, ptrdiff_t xoff, ptrdiff_t xlim, ptrdiff_t yoff,
           ptrdiff_t ylim, bool minimal)
{
    if (c->nstack == c->capstack) {
        size_t ncap = c->capstack ? c->capstack * 2 : 64;
        range *n = realloc(c->stack, ncap * sizeof(*n));
        if (!n)
            return CS_ENOMEM;
        c->stack = n;
        c->capstack = ncap;
    }
    c->stack[c->nstack++] = (range){xoff, xlim, yoff, ylim, minimal};
    return CS_OK;
}

/* Finds the midpoint of the shortest edit script for x[xoff..xlim) and
 * y[yoff..ylim) (both non-empty, first and last elements differing). With
 * !find_minimal it gives up after too_expensive steps and splits at the
 * furthest-reaching diagonal instead. */
static void
diag(ctx *c, ptrdiff_t xoff, ptrdiff_t xlim, ptrdiff_t yoff, ptrdiff_t ylim,
     bool find_minimal, part *pt)
{
    ptrdiff_t *const fd = c->fd;
    ptrdiff_t *const bd = c->bd;
    const uint32_t *const xv = c->xv;
    const uint32_t *const yv = c->yv;
    const ptrdiff_t dmin = xoff - ylim;
    const ptrdiff_t dmax = xlim - yoff;
    const ptrdiff_t fmid = xoff - yoff;
    const ptrdiff_t bmid = xlim - ylim;
    ptrdiff_t fmin = fmid, fmax = fmid;
    ptrdiff_t bmin = bmid, bmax = bmid;
    const bool odd = ((fmid - bmid) & 1) != 0;

    fd[fmid] = xoff;
    bd[bmid] = xlim;
    for (ptrdiff_t cost = 1;; cost++) {
        ptrdiff_t d;

        if (fmin > dmin)
            fd[--fmin - 1] = -1;
        else
            ++fmin;
        if (fmax < dmax)
            fd[++fmax + 1] = -1;
        else
            --fmax;
        for (d = fmax; d >= fmin; d -= 2) {
            ptrdiff_t tlo = fd[d - 1], thi = fd[d + 1];
            ptrdiff_t x = tlo >= thi ? tlo + 1 : thi;
            ptrdiff_t y = x - d;
            while (x < xlim && y < ylim && xv[x] == yv[y]) {
                x++;
                y++;
            }
            fd[d] = x;
            if (odd && bmin <= d && d <= bmax && bd[d] <= x) {
                pt->xmid = x;
                pt->ymid = y;
                pt->lo_minimal = pt->hi_minimal = true;
                return;
            }
        }

        if (bmin > dmin)
            bd[--bmin - 1] = PTRDIFF_MAX;
        else
            ++bmin;
        if (bmax < dmax)
            bd[++bmax + 1] = PTRDIFF_MAX;
        else
            --bmax;
        for (d = bmax; d >= bmin; d -= 2) {
            ptrdiff_t tlo = bd[d - 1], thi = bd[d + 1];
            ptrdiff_t x = tlo < thi ? tlo : thi - 1;
            ptrdiff_t y = x - d;
            while (xoff < x && yoff < y && xv[x - 1] == yv[y - 1]) {
                x--;
                y--;
            }
            bd[d] = x;
            if (!odd && fmin <= d && d <= fmax && x <= fd[d]) {
                pt->xmid = x;
                pt->ymid = y;
                pt->lo_minimal = pt->hi_minimal = true;
                return;
            }
        }

        c->work += (size_t)(fmax - fmin + bmax - bmin) / 2 + 2;
        if (c->work > CS_DIFF_WORK_BUDGET)
            c->too_expensive = 1;
        if (find_minimal || cost < c->too_expensive)
            continue;

        /* Too expensive: split at the furthest-reaching diagonal. */
        ptrdiff_t fxybest = -1, fxbest = 0;
        for (d = fmax; d >= fmin; d -= 2) {
            ptrdiff_t x = fd[d] < xlim ? fd[d] : xlim;
            ptrdiff_t y = x - d;
            if (ylim < y) {
                x = ylim + d;
                y = ylim;
            }
            if (fxybest < x + y) {
                fxybest = x + y;
                fxbest = x;
            }
        }
        ptrdiff_t bxybest = PTRDIFF_MAX, bxbest = 0;
        for (d = bmax; d >= bmin; d -= 2) {
            ptrdiff_t x = bd[d] > xoff ? bd[d] : xoff;
            ptrdiff_t y = x - d;
            if (y < yoff) {
                x = yoff + d;
                y = yoff;
            }
            if (x + y < bxybest) {
                bxybest = x + y;
                bxbest = x;
            }
        }
        if ((xlim + ylim) - bxybest < fxybest - (xoff + yoff)) {
            pt->xmid = fxbest;
            pt->ymid = fxybest - fxbest;
            pt->lo_minimal = true;
            pt->hi_minimal = false;
        } else {
            pt->xmid = bxbest;
            pt->ymid = bxybest - bxbest;
            pt->lo_minimal = false;
            pt->hi_minimal = true;
        }
        return;
    }
}

/* Marks the changed elements of x[0..nx) and y[0..ny). */
static cs_err
compare_seqs(ctx *c, ptrdiff_t nx, ptrdiff_t ny)
{
    cs_err rc = push_range(c, 0, nx, 0, ny, false);

    while (rc == CS_OK && c->nstack > 0) {
        range r = c->stack[--c->nstack];

        while (r.xoff < r.xlim && r.yoff < r.ylim &&
               c->xv[r.xoff] == c->yv[r.yoff]) {
            r.xoff++;
            r.yoff++;
        }
        while (r.xoff < r.xlim && r.yoff < r.ylim &&
               c->xv[r.xlim - 1] == c->yv[r.ylim - 1]) {
            r.xlim--;
            r.ylim--;
        }
        if (r.xoff == r.xlim || r.yoff == r.ylim) {
            for (ptrdiff_t i = r.xoff; i < r.xlim; i++)
                c->xchg[i] = true;
            for (ptrdiff_t j = r.yoff; j < r.ylim; j++)
                c->ychg[j] = true;
            continue;
        }
        part pt;
        diag(c, r.xoff, r.xlim, r.yoff, r.ylim, r.minimal, &pt);
        if ((pt.xmid == r.xoff && pt.ymid == r.yoff) ||
            (pt.xmid == r.xlim && pt.ymid == r.ylim) || pt.xmid < r.xoff ||
            pt.xmid > r.xlim || pt.ymid < r.yoff || pt.ymid > r.ylim) {
            /* No progress possible (never expected): all changed. */
            for (ptrdiff_t i = r.xoff; i < r.xlim; i++)
                c->xchg[i] = true;
            for (ptrdiff_t j = r.yoff; j < r.ylim; j++)
                c->ychg[j] = true;
            continue;
        }
        rc = push_range(c, r.xoff, pt.xmid, r.yoff, pt.ymid, pt.lo_minimal);
        if (rc == CS_OK)
            rc = push_range(c, pt.xmid, r.xlim, pt.ymid, r.ylim, pt.hi_minimal);
    }
    return rc;
}

/* Runs the compare step over the lines of a and b that occur on both sides;
 * the others are changed by definition. */
static cs_err
mark_changes(side *sides, const eqclass *classes)
{
    side *a = &sides[0], *b = &sides[1];
    ctx c = {0};
    size_t *xmap = NULL, *ymap = NULL;
    uint32_t *xv = NULL, *yv = NULL;
    ptrdiff_t *diags = NULL;
    size_t nx = 0, ny = 0;
    cs_err rc = CS_OK;

    xmap = malloc((a->nlines ? a->nlines : 1) * sizeof(*xmap));
    ymap = malloc((b->nlines ? b->nlines : 1) * sizeof(*ymap));
    xv = malloc((a->nlines ? a->nlines : 1) * sizeof(*xv));
    yv = malloc((b->nlines ? b->nlines : 1) * sizeof(*yv));
    if (!xmap || !ymap || !xv || !yv) {
        rc = CS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < a->nlines; i++) {
        if (classes[a->cls[i]].count[1] == 0) {
            a->changed[i] = true;
        } else {
            xmap[nx] = i;
            xv[nx++] = a->cls[i];
        }
    }
    for (size_t j = 0; j < b->nlines; j++) {
        if (classes[b->cls[j]].count[0] == 0) {
            b->changed[j] = true;
        } else {
            ymap[ny] = j;
            yv[ny++] = b->cls[j];
        }
    }

    size_t ndiags = nx + ny + 3;
    diags = malloc(2 * ndiags * sizeof(*diags));
    c.xchg = calloc(nx ? nx : 1, sizeof(*c.xchg));
    c.ychg = calloc(ny ? ny : 1, sizeof(*c.ychg));
    if (!diags || !c.xchg || !c.ychg) {
        rc = CS_ENOMEM;
        goto out;
    }
    c.xv = xv;
    c.yv = yv;
    c.fd = diags + ny + 1;
    c.bd = diags + ndiags + ny + 1;
    c.too_expensive = 1;
    for (size_t n = ndiags; n != 0; n >>= 2)
        c.too_expensive <<= 1;
    if (c.too_expensive < 4096)
        c.too_expensive = 4096;

    rc = compare_seqs(&c, (ptrdiff_t)nx, (ptrdiff_t)ny);
    if (rc != CS_OK)
        goto out;
    for (size_t i = 0; i < nx; i++)
        if (c.xchg[i])
            a->changed[xmap[i]] = true;
    for (size_t j = 0; j < ny; j++)
        if (c.ychg[j])
            b->changed[ymap[j]] = true;
out:
    free(xmap);
    free(ymap);
    free(xv);
    free(yv);
    free(diags);
    free(c.xchg);
    free(c.ychg);
    free(c.stack);
    return rc;
}

static void
set_op(cs_diff_op *op, char kind, const side *s, size_t i)
{
    op->op = kind;
    op->line = s->text + s->off[i];
    op->len = s->len[i];
    op->no_newline = s->nonl && i + 1 == s->nlines;
}

static cs_err
build_ops(const side *a, const side *b, cs_diff *d)
{
    size_t i = 0, j = 0, n = 0;
    size_t cap = a->nlines + b->nlines;

    d->ops = malloc((cap ? cap : 1) * sizeof(*d->ops));
    if (!d->ops)
        return CS_ENOMEM;
    while (i < a->nlines || j < b->nlines) {
        if (i < a->nlines && j < b->nlines && !a->changed[i] &&
            !b->changed[j]) {
            set_op(&d->ops[n++], ' ', a, i);
            d->unchanged++;
            i++;
            j++;
            continue;
        }
        size_t before = n;
        while (i < a->nlines && a->changed[i]) {
            set_op(&d->ops[n++], '-', a, i++);
            d->removed++;
        }
        while (j < b->nlines && b->changed[j]) {
            set_op(&d->ops[n++], '+', b, j++);
            d->added++;
        }
        if (n == before) /* unmatched unchanged lines: a bug, never a loop */
            return CS_EINVAL;
    }
    d->nops = n;
    return CS_OK;
}

cs_err
cs_diff_lines(const char *a, size_t alen, const char *b, size_t blen,
              cs_diff **out)
{
    side sides[2] = {{0}, {0}};
    eqclass *classes = NULL;
    cs_diff *d = NULL;
    cs_err rc;

    if (out == NULL || (a == NULL && alen > 0) || (b == NULL && blen > 0))
        return CS_EINVAL;
    rc = split_lines(&sides[0], a, alen, CS_DIFF_MAX_LINES);
    if (rc != CS_OK)
        goto out;
    rc = split_lines(&sides[1], b, blen, CS_DIFF_MAX_LINES - sides[0].nlines);
    if (rc != CS_OK)
        goto out;
    rc = intern_lines(sides, &classes);
    if (rc != CS_OK)
        goto out;
    rc = mark_changes(sides, classes);
    if (rc != CS_OK)
        goto out;
    free(classes);
    classes = NULL;
    d = calloc(1, sizeof(*d));
    if (!d) {
        rc = CS_ENOMEM;
        goto out;
    }
    rc = build_ops(&sides[0], &sides[1], d);
    if (rc != CS_OK)
        goto out;
    *out = d;
    d = NULL;
out:
    cs_diff_free(d);
    free(classes);
    side_free(&sides[0]);
    side_free(&sides[1]);
    return rc;
}

size_t
cs_diff_count(const cs_diff *d)
{
    return d ? d->nops : 0;
}

const cs_diff_op *
cs_diff_get(const cs_diff *d, size_t i)
{
    return d && i < d->nops ? &d->ops[i] : NULL;
}

void
cs_diff_stats(const cs_diff *d, size_t *added, size_t *removed,
              size_t *unchanged)
{
    if (added)
        *added = d ? d->added : 0;
    if (removed)
        *removed = d ? d->removed : 0;
    if (unchanged)
        *unchanged = d ? d->unchanged : 0;
}

void
cs_diff_free(cs_diff *d)
{
    if (d == NULL)
        return;
    free(d->ops);
    free(d);
}

/* ---- unified output */

typedef struct strbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} strbuf;

static void
sb_add(strbuf *sb, const char *s, size_t n)
{
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t ncap = sb->cap ? sb->cap : 256;
        while (ncap < sb->len + n + 1)
            ncap *= 2;
        char *np = realloc(sb->p, ncap);
        if (!np) {
            sb->oom = true;
            return;
        }
        sb->p = np;
        sb->cap = ncap;
    }
    memcpy(sb->p + sb->len, s, n);
    sb->len += n;
    sb->p[sb->len] = '\0';
}

static void
sb_str(strbuf *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

/* GNU print_unidiff_number_range: start is the 0-based first line. */
static void
sb_range(strbuf *sb, size_t start, size_t count)
{
    char tmp[64];
    if (count == 0)
        snprintf(tmp, sizeof(tmp), "%zu,0", start);
    else if (count == 1)
        snprintf(tmp, sizeof(tmp), "%zu", start + 1);
    else
        snprintf(tmp, sizeof(tmp), "%zu,%zu", start + 1, count);
    sb_str(sb, tmp);
}

static void
sb_op(strbuf *sb, const cs_diff_op *op)
{
    char c = op->op;
    sb_add(sb, &c, 1);
    sb_add(sb, op->line, op->len);
    sb_str(sb, "\n");
    if (op->no_newline)
        sb_str(sb, "\\ No newline at end of file\n");
}

cs_err
cs_diff_unified(const cs_diff *d, const char *a_label, const char *b_label,
                int context, char **out, size_t *outlen)
{
    strbuf sb = {0};
    size_t ctxn;
    size_t i = 0, ai = 0, bi = 0;
    const cs_diff_op *ops;
    size_t n;
    cs_err rc = CS_OK;

    if (d == NULL || out == NULL || context < 0)
        return CS_EINVAL;
    a_label = a_label ? a_label : "a";
    b_label = b_label ? b_label : "b";
    if (strchr(a_label, '\n') || strchr(b_label, '\n'))
        return CS_EINVAL;
    ctxn = (size_t)context;
    ops = d->ops;
    n = d->nops;
    sb_add(&sb, "", 0); /* an empty result is still a malloc'd "" */
    if (d->added + d->removed > 0) {
        sb_str(&sb, "--- ");
        sb_str(&sb, a_label);
        sb_str(&sb, "\n+++ ");
        sb_str(&sb, b_label);
        sb_str(&sb, "\n");
    }
    while (i < n) {
        if (ops[i].op == ' ') {
            ai++;
            bi++;
            i++;
            continue;
        }
        /* ops[i] starts a hunk; the gap before it exceeds 2 * context */
        size_t lead = i < ctxn ? i : ctxn;
        size_t h0 = i - lead;
        size_t last = i;
        size_t k = i + 1;
        while (k < n) {
            if (ops[k].op != ' ') {
                last = k++;
                continue;
            }
            size_t r = k;
            while (r < n && ops[r].op == ' ')
                r++;
            if (r == n || r - k > 2 * ctxn)
                break;
            k = r;
        }
        size_t h1 = (n - (last + 1) < ctxn) ? n : last + 1 + ctxn;
        size_t acount = 0, bcount = 0;
        for (size_t t = h0; t < h1; t++) {
            acount += ops[t].op != '+';
            bcount += ops[t].op != '-';
        }
        sb_str(&sb, "@@ -");
        sb_range(&sb, ai - lead, acount);
        sb_str(&sb, " +");
        sb_range(&sb, bi - lead, bcount);
        sb_str(&sb, " @@\n");
        for (size_t t = h0; t < h1; t++)
            sb_op(&sb, &ops[t]);
        for (; i < h1; i++) {
            ai += ops[i].op != '+';
            bi += ops[i].op != '-';
        }
    }
    if (sb.oom) {
        rc = CS_ENOMEM;
        goto out;
    }
    *out = sb.p;
    if (outlen)
        *outlen = sb.len;
    sb.p = NULL;
out:
    free(sb.p);
    return rc;
}
