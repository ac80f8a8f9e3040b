/* metrics: the per-process registry (an open-addressing table over
 * family + label set, values in a fixed pool), the flush (a batch of
 * HINCRBYs guarded by a per-process sequence number) and the renderer of
 * the shared hash; both run lib/lua/metrics.lua. */
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "lua.h"

#include "banned.h"

enum ftype { COUNTER, HISTOGRAM, GAUGE };

struct family {
    const char *name;
    enum ftype type;
    const char *labels;         /* the label names it may carry, "a,b" */
    const char *help;
};

/* In name order, which is the order of the rendered text. */
static const struct family fams[] = {
    { METRICS_AGENT_ONLINE_RATE, GAUGE, "",
      "Share of agents (0..1) that are online." },
    { METRICS_AGENTS, GAUGE, "status",
      "Agents by presence status." },
    { METRICS_ARCHIVER_LAG, GAUGE, "",
      "Age of the oldest event not yet archived into PostgreSQL." },
    { METRICS_ARCHIVER_PENDING, GAUGE, "",
      "Events not yet archived into PostgreSQL." },
    { METRICS_CALLBACK_DURATION, HISTOGRAM, "mode",
      "Time a worker took to answer a WeChat callback." },
    { METRICS_HTTP_REQUESTS, COUNTER, "route,status",
      "HTTP requests served, by route pattern and status code." },
    { METRICS_JOURNAL_QUARANTINED, COUNTER, "",
      "Journal lines replay could not use, kept in "
      "callbacks.quarantine.jsonl (never deleted)." },
    { METRICS_MEDIA_BYTES, GAUGE, "",
      "Bytes of the files in the media store." },
    { METRICS_MEDIA_FILES, GAUGE, "",
      "Files in the media store." },
    { METRICS_MEDIA_JOBS, GAUGE, "",
      "Media messages not fetched yet (new, or waiting for a retry)." },
    { METRICS_MEDIA_QUOTA_BYTES, GAUGE, "",
      "The media store's quota ([media] max_disk_mb) in bytes." },
    { METRICS_MEDIA_QUOTA_REFUSED, COUNTER, "",
      "Media refused because one file is larger than the whole quota." },
    { METRICS_MEDIA_REMOVED, COUNTER, "reason",
      "Media files deleted, by reason (retention, quota)." },
    { METRICS_MESSAGES, COUNTER, "direction,type",
      "Messages from users (in) and to users (out), by message type." },
    { METRICS_SERIES_DROPPED, COUNTER, "",
      "Counts the metrics registry refused (unknown family, invalid "
      "labels, registry full)." },
    { METRICS_POSTGRES_ERRORS, COUNTER, "process",
      "PostgreSQL failures, by process kind." },
    { METRICS_QUEUE_LENGTH, GAUGE, "group",
      "Users waiting for an agent, by group." },
    { METRICS_RATELIMIT_REJECTIONS, COUNTER, "kind",
      "Requests refused by a rate limit, by kind." },
    { METRICS_REDIS_ERRORS, COUNTER, "process",
      "Redis failures, by process kind." },
    { METRICS_REDIS_FAILOVERS, COUNTER, "process",
      "Times the Sentinels named a new Redis master, by process kind." },
    { METRICS_REDIS_WAIT_SHORT, COUNTER, "",
      "Callbacks whose write fewer than [redis] wait_replicas replicas "
      "confirmed in time (also kept in the journal)." },
    { METRICS_ROUTING_OUTCOMES, COUNTER, "outcome,policy",
      "Routing decisions, by policy and outcome." },
    { METRICS_SESSIONS_ACTIVE, GAUGE, "",
      "Sessions assigned to an agent." },
    { METRICS_SLOW_REQUESTS, COUNTER, "route",
      "Requests slower than the slow-request threshold, by route." },
    { METRICS_WECHAT_BUDGET_LEFT, GAUGE, "api",
      "Units left of today's WeChat API budget, by budget." },
    { METRICS_WECHAT_API_CALLS, COUNTER, "api,errcode",
      "Calls to the WeChat API, by API and errcode." },
    { METRICS_WECHAT_KF_POLLS, COUNTER, "result",
      "getonlinekflist polls in mode = wechat_kf, by result (ok, "
      "failed)." },
    { METRICS_WECHAT_KF_STEPS, COUNTER, "outcome",
      "kfsession/close and /create steps in mode = wechat_kf, by outcome "
      "(done, refused, retried, dropped)." },
    { METRICS_TOKEN_REFRESHES, COUNTER, "",
      "Access tokens fetched from WeChat." },
};
#define NFAM (sizeof(fams) / sizeof(fams[0]))
#define NAME_MAX_LEN 64

/* Histogram layout in the value pool: NBUCKET per-bucket counts (not
 * cumulative; the flush makes them so), the sum in microseconds, the
 * count. +Inf is the count. */
#define NBUCKET 12
#define V_SUM NBUCKET
#define V_COUNT (NBUCKET + 1)
#define HIST_VALUES (NBUCKET + 2)
static const int64_t bound_us[NBUCKET] = {
    1000, 2500, 5000, 10000, 20000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000,
};
static const char *const bound_txt[NBUCKET] = {
    "0.001", "0.0025", "0.005", "0.01", "0.02", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5",
};
#define OBSERVE_MAX_US 1000000000000LL      /* 10^6 s */

#define SLOTS (2 * METRICS_SERIES_MAX)
#define SEQ_TTL_S "86400"   /* how long Redis remembers a batch number */
#define BATCH_MAX (4u << 20)
#define FIELD_MAX 256       /* longest hash field metrics_render reads */
#define VALUE_MAX 20        /* longest hash value */

static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* ---- label sets --------------------------------------------------- */

static int name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

struct pair {
    const char *name, *val;     /* val: escaped, without the quotes */
    size_t nlen, vlen, start;   /* start: offset of name in the set */
};

/* Moves *i to the closing quote of a value: escapes \\ \" \n only, valid
 * UTF-8, no raw control bytes. */
static int scan_value(const char *p, size_t n, size_t *i)
{
    const unsigned char *u = (const unsigned char *)p;
    uint32_t cp;
    size_t k;

    while (*i < n) {
        unsigned char c = u[*i];

        if (c == '"')
            return 0;
        if (c == '\\') {
            if (*i + 1 >= n ||
                (p[*i + 1] != '\\' && p[*i + 1] != '"' && p[*i + 1] != 'n'))
                return -1;
            *i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            return -1;
        } else if (c < 0x80) {
            (*i)++;
        } else {
            k = kf_utf8_next(u + *i, n - *i, &cp);
            if (k == 0)
                return -1;
            *i += k;
        }
    }
    return -1;
}

/* Parses name="value"(,name="value")* (no braces; "" is no pair). */
static int parse_pairs(const char *p, size_t n, struct pair *v, size_t max,
                       size_t *np)
{
    size_t i = 0, k = 0;

    *np = 0;
    while (i < n) {
        if (k == max || !name_start((unsigned char)p[i]))
            return -1;
        v[k].start = i;
        v[k].name = p + i;
        while (i < n && name_char((unsigned char)p[i]))
            i++;
        v[k].nlen = i - v[k].start;
        if (i + 1 >= n || p[i] != '=' || p[i + 1] != '"')
            return -1;
        i += 2;
        v[k].val = p + i;
        if (scan_value(p, n, &i) < 0)
            return -1;
        v[k].vlen = (size_t)(p + i - v[k].val);
        i++;
        k++;
        if (i < n && (p[i] != ',' || ++i == n))
            return -1;
    }
    *np = k;
    return 0;
}

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);

    return c ? c : (an > bn) - (an < bn);
}

static int allowed(const struct family *f, const char *name, size_t n)
{
    const char *l = f->labels;

    while (*l) {
        size_t k = strcspn(l, ",");

        if (k == n && memcmp(l, name, n) == 0)
            return 1;
        l += k + (l[k] == ',');
    }
    return 0;
}

/* The pairs form a canonical set of family f: names it allows, strictly
 * ascending (so unique, and one spelling per set). */
static int check_set(const struct pair *v, size_t np, const struct family *f)
{
    size_t i;

    for (i = 0; i < np; i++) {
        if (!allowed(f, v[i].name, v[i].nlen))
            return -1;
        if (i > 0 && bytes_cmp(v[i - 1].name, v[i - 1].nlen, v[i].name,
                               v[i].nlen) >= 0)
            return -1;
    }
    return 0;
}

static int valid_set(const char *p, size_t n, const struct family *f)
{
    struct pair v[METRICS_PAIRS_MAX];
    size_t np;

    return n <= METRICS_LABELS_MAX &&
           parse_pairs(p, n, v, METRICS_PAIRS_MAX, &np) == 0 &&
           check_set(v, np, f) == 0;
}

static int label_name_ok(const char *s)
{
    size_t i, n = strnlen(s, NAME_MAX_LEN + 1);

    if (n == 0 || n > NAME_MAX_LEN || !name_start((unsigned char)s[0]) ||
        strcmp(s, "le") == 0 || strncmp(s, "__", 2) == 0)
        return 0;
    for (i = 1; i < n; i++)
        if (!name_char((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Escapes v into o (at most cap bytes), cutting at a character; returns
 * the bytes written. */
static size_t escape_value(const char *v, char *o, size_t cap)
{
    const unsigned char *p = (const unsigned char *)v;
    size_t n = strnlen(v, cap + 4), i = 0, w = 0, adv, el;
    uint32_t cp;
    char e[2];
    const char *src;

    while (i < n) {
        src = e;
        adv = el = 1;
        if (p[i] == '\\' || p[i] == '"' || p[i] == '\n') {
            e[0] = '\\';
            e[1] = p[i] == '\n' ? 'n' : (char)p[i];
            el = 2;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            e[0] = '?';
        } else if (p[i] < 0x80) {
            e[0] = (char)p[i];
        } else if ((adv = kf_utf8_next(p + i, n - i, &cp)) == 0) {
            e[0] = '?';
            adv = 1;
        } else {
            src = v + i;
            el = adv;
        }
        if (w + el > cap)
            break;
        memcpy(o + w, src, el);
        w += el;
        i += adv;
    }
    return w;
}

/* Orders pair indexes by name; 0, or -1 on a duplicate. */
static int sort_names(const char *const *name, int *ord, int np)
{
    int i, j, t;

    for (i = 0; i < np; i++)
        ord[i] = i;
    for (i = 1; i < np; i++)
        for (j = i; j > 0 && strcmp(name[ord[j - 1]], name[ord[j]]) > 0;
             j--) {
            t = ord[j];
            ord[j] = ord[j - 1];
            ord[j - 1] = t;
        }
    for (i = 1; i < np; i++)
        if (strcmp(name[ord[i - 1]], name[ord[i]]) == 0)
            return -1;
    return 0;
}

static int write_labels(char *out, size_t len, const char *const *name,
                        const char *const *val, int np)
{
    char tmp[METRICS_LABELS_MAX + 1], ev[METRICS_VALUE_MAX];
    int ord[METRICS_PAIRS_MAX], i;
    size_t n = 0, nl, vl;

    for (i = 0; i < np; i++)
        if (!name[i] || !val[i] || !label_name_ok(name[i]))
            return KF_EINVAL;
    if (sort_names(name, ord, np) < 0)
        return KF_EINVAL;
    for (i = 0; i < np; i++) {
        nl = strlen(name[ord[i]]);
        vl = escape_value(val[ord[i]], ev, sizeof(ev));
        if (n + (i > 0) + nl + 3 + vl > METRICS_LABELS_MAX)
            return KF_EINVAL;
        if (i > 0)
            tmp[n++] = ',';
        memcpy(tmp + n, name[ord[i]], nl);
        n += nl;
        tmp[n++] = '=';
        tmp[n++] = '"';
        memcpy(tmp + n, ev, vl);
        n += vl;
        tmp[n++] = '"';
    }
    if (n >= len)
        return KF_EINVAL;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return 0;
}

int metrics_labels(char *out, size_t len, int npairs, ...)
{
    const char *name[METRICS_PAIRS_MAX], *val[METRICS_PAIRS_MAX];
    va_list ap;
    int i, rc = KF_EINVAL;

    if (npairs >= 0 && npairs <= METRICS_PAIRS_MAX) {
        va_start(ap, npairs);
        for (i = 0; i < npairs; i++) {
            name[i] = va_arg(ap, const char *);
            val[i] = va_arg(ap, const char *);
        }
        va_end(ap);
        rc = write_labels(out, len, name, val, npairs);
    }
    if (rc < 0 && len > 0) {
        /* Not a label set: metrics_inc counts it as dropped. */
        out[0] = len > 1 ? '!' : '\0';
        if (len > 1)
            out[1] = '\0';
    }
    return rc;
}

/* ---- the registry ------------------------------------------------- */

static void new_identity(struct metrics *m)
{
    unsigned char r[8];
    uint64_t x;
    size_t i;

    m->pid = (long)getpid();
    if (RAND_bytes(r, sizeof(r)) != 1) {
        x = ((uint64_t)m->pid << 32) ^ (uint64_t)kf_wall_ms() ^
            ((uint64_t)kf_mono_ms() << 20);
        memcpy(r, &x, sizeof(r));
    }
    for (i = 0; i < sizeof(r); i++)
        snprintf(m->id + 2 * i, 3, "%02x", r[i]);
    m->seq = 0;
}

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
    new_identity(m);
    store_script_init(&m->script, lua_metrics);
}

/* Owns nothing: forgets everything, so a stray flush sends nothing. */
void metrics_release(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
}

static uint32_t fnv(uint32_t h, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 16777619u;
    }
    return h;
}

static int family_of(const char *name)
{
    size_t i;

    for (i = 0; i < NFAM; i++)
        if (strcmp(fams[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* A new series in free slot i; NULL when refused. */
static int64_t *add_series(struct metrics *m, size_t i, uint32_t h,
                           const char *name, const char *labels, size_t ll,
                           enum ftype t)
{
    int f = family_of(name);
    size_t nv = t == HISTOGRAM ? HIST_VALUES : 1;
    struct metrics_series *s;

    if (f < 0 || fams[f].type != t || m->nseries == METRICS_SERIES_MAX ||
        m->arena_used + ll > METRICS_ARENA ||
        m->vals_used + nv > METRICS_VALUES ||
        !valid_set(labels, ll, &fams[f]))
        return NULL;
    s = &m->series[m->nseries];
    s->hash = h;
    s->fam = (uint16_t)f;
    s->label_off = (uint16_t)m->arena_used;
    s->label_len = (uint16_t)ll;
    s->val = (uint16_t)m->vals_used;
    memcpy(m->arena + m->arena_used, labels, ll);
    m->arena_used += ll;
    m->vals_used += nv;
    m->slot[i] = (uint16_t)++m->nseries;
    return m->cur + s->val;
}

/* The values of series (name, labels) of type t, made on first use. */
static int64_t *values(struct metrics *m, const char *name,
                       const char *labels, enum ftype t)
{
    size_t nl, ll, i;
    uint32_t h;

    if (!name)
        return NULL;
    labels = labels ? labels : "";
    nl = strnlen(name, NAME_MAX_LEN + 1);
    ll = strnlen(labels, METRICS_LABELS_MAX + 1);
    if (nl > NAME_MAX_LEN || ll > METRICS_LABELS_MAX)
        return NULL;
    h = fnv(fnv(2166136261u, name, nl + 1), labels, ll);
    for (i = h & (SLOTS - 1); m->slot[i]; i = (i + 1) & (SLOTS - 1)) {
        const struct metrics_series *s = &m->series[m->slot[i] - 1];

        if (s->hash == h && s->label_len == ll &&
            memcmp(m->arena + s->label_off, labels, ll) == 0 &&
            strcmp(fams[s->fam].name, name) == 0)
            return fams[s->fam].type == t ? m->cur + s->val : NULL;
    }
    return add_series(m, i, h, name, labels, ll, t);
}

void metrics_inc(struct metrics *m, const char *name, const char *labels,
                 int64_t by)
{
    int64_t *v;

    if (by <= 0)
        return;
    v = values(m, name, labels, COUNTER);
    if (v)
        *v = sat_add(*v, by);
    else
        m->dropped = sat_add(m->dropped, by);
    m->dirty = 1;
}

void metrics_observe(struct metrics *m, const char *name, const char *labels,
                     double seconds)
{
    int64_t *v = values(m, name, labels, HISTOGRAM), us = 0;
    size_t b = 0;

    m->dirty = 1;
    if (!v) {
        m->dropped = sat_add(m->dropped, 1);
        return;
    }
    if (seconds > 0)        /* false for NaN */
        us = seconds >= OBSERVE_MAX_US / 1e6 ? OBSERVE_MAX_US
                                             : (int64_t)(seconds * 1e6 + 0.5);
    while (b < NBUCKET && us > bound_us[b])
        b++;
    if (b < NBUCKET)
        v[b] = sat_add(v[b], 1);
    v[V_SUM] = sat_add(v[V_SUM], us);
    v[V_COUNT] = sat_add(v[V_COUNT], 1);
}

int metrics_due(const struct metrics *m, int64_t now_mono_ms,
                int64_t interval_ms)
{
    return (m->dirty || m->has_pend) &&
           now_mono_ms - m->last_flush_ms >= interval_ms;
}

/* ---- flushing ----------------------------------------------------- */

/* Moves what was counted into the batch; 1 if the batch is not empty. */
static int take_batch(struct metrics *m)
{
    int any = m->dropped != 0;
    size_t i;

    for (i = 0; i < m->vals_used; i++) {
        any |= m->cur[i] != 0;
        m->pend[i] = m->cur[i];
        m->cur[i] = 0;
    }
    m->dropped_pend = m->dropped;
    m->dropped = 0;
    m->dirty = 0;
    if (!any)
        return 0;
    m->seq++;
    m->has_pend = 1;
    return 1;
}

/* After fork: what the parent counted is the parent's to deliver. */
static void forget_inherited(struct metrics *m)
{
    memset(m->cur, 0, sizeof(m->cur));
    memset(m->pend, 0, sizeof(m->pend));
    m->dropped = m->dropped_pend = 0;
    m->dirty = m->has_pend = 0;
    new_identity(m);
}

/* name suffix{labels,le="x"} (braces only when there is a label). */
static int put_name(struct kf_buf *b, const char *name, const char *suffix,
                    const char *lab, size_t ll, const char *le)
{
    int rc = kf_buf_append_c(b, name);

    if (rc == 0)
        rc = kf_buf_append_c(b, suffix);
    if (rc == 0 && (ll || le)) {
        rc = kf_buf_append(b, "{", 1);
        if (rc == 0)
            rc = kf_buf_append(b, lab, ll);
        if (rc == 0 && le)
            rc = kf_buf_printf(b, "%sle=\"%s\"", ll ? "," : "", le);
        if (rc == 0)
            rc = kf_buf_append(b, "}", 1);
    }
    return rc;
}

struct batch {
    struct kf_buf b;            /* fields and values, back to back */
    size_t *off, *len, n, max;  /* of each argument in b */
};

static int batch_add(struct batch *t, const struct family *f,
                     const char *suffix, const char *lab, size_t ll,
                     const char *le, int64_t v)
{
    size_t start = t->b.len;
    int rc;

    if (v <= 0)
        return 0;
    if (t->n + 2 > t->max)
        return KF_ETOOBIG;
    rc = put_name(&t->b, f->name, suffix, lab, ll, le);
    if (rc < 0)
        return rc;
    t->off[t->n] = start;
    t->len[t->n++] = t->b.len - start;
    start = t->b.len;
    rc = kf_buf_printf(&t->b, "%lld", (long long)v);
    t->off[t->n] = start;
    t->len[t->n++] = t->b.len - start;
    return rc;
}

static int batch_series(struct batch *t, const struct metrics *m,
                        const struct metrics_series *s)
{
    const struct family *f = &fams[s->fam];
    const int64_t *v = m->pend + s->val;
    const char *lab = m->arena + s->label_off;
    int64_t cum = 0;
    int rc = 0;
    size_t i;

    if (f->type == COUNTER)
        return batch_add(t, f, "", lab, s->label_len, NULL, v[0]);
    for (i = 0; i < NBUCKET && rc == 0; i++) {
        cum = sat_add(cum, v[i]);
        rc = batch_add(t, f, "_bucket", lab, s->label_len, bound_txt[i], cum);
    }
    if (rc == 0)
        rc = batch_add(t, f, "_sum_us", lab, s->label_len, NULL, v[V_SUM]);
    if (rc == 0)
        rc = batch_add(t, f, "_count", lab, s->label_len, NULL, v[V_COUNT]);
    return rc;
}

static int build_batch(struct batch *t, const struct metrics *m)
{
    const struct family *dropped = &fams[family_of(METRICS_SERIES_DROPPED)];
    size_t i;
    int rc = 0;

    t->max = 2 * (m->vals_used + 1);
    t->off = malloc(t->max * sizeof(*t->off));
    t->len = malloc(t->max * sizeof(*t->len));
    if (!t->off || !t->len)
        return KF_ENOMEM;
    for (i = 0; i < m->nseries && rc == 0; i++)
        rc = batch_series(t, m, &m->series[i]);
    if (rc == 0)
        rc = batch_add(t, dropped, "", "", 0, NULL, m->dropped_pend);
    return rc;
}

/* The flush op: id, seq, ttl, then the batch's field, increment pairs. */
static int send_batch(struct metrics *m, struct store *s, struct batch *t)
{
    const char **args;
    size_t *lens, i, n = 4 + t->n;
    char seq[24];
    struct store_reply *rep = NULL;
    int rc = KF_ENOMEM;

    args = malloc(n * sizeof(*args));
    lens = malloc(n * sizeof(*lens));
    if (!args || !lens)
        goto out;
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)m->seq);
    args[0] = "flush";
    args[1] = m->id;
    args[2] = seq;
    args[3] = SEQ_TTL_S;
    for (i = 0; i < 4; i++)
        lens[i] = strlen(args[i]);
    for (i = 0; i < t->n; i++) {
        args[4 + i] = t->b.p + t->off[i];
        lens[4 + i] = t->len[i];
    }
    rc = store_run(s, &m->script, 0, NULL, (int)n, args, lens, &rep);
    if (rc == 0 && store_reply_type(rep) != STORE_INT)
        rc = KF_EBACKEND;
out:
    store_reply_free(rep);
    free(args);
    free(lens);
    return rc;
}

int metrics_flush(struct metrics *m, struct store *s, int64_t now_mono_ms)
{
    struct batch t;
    int rc;

    if ((long)getpid() != m->pid)
        forget_inherited(m);
    m->last_flush_ms = now_mono_ms;
    if (!m->has_pend && !take_batch(m))
        return 0;
    memset(&t, 0, sizeof(t));
    kf_buf_init(&t.b, BATCH_MAX);
    rc = build_batch(&t, m);
    if (rc == 0)
        rc = send_batch(m, s, &t);
    if (rc == 0) {
        memset(m->pend, 0, m->vals_used * sizeof(m->pend[0]));
        m->dropped_pend = 0;
        m->has_pend = 0;
    }
    kf_buf_release(&t.b);
    free(t.off);
    free(t.len);
    return rc;
}

/* ---- rendering ---------------------------------------------------- */

enum kind { K_BUCKET, K_SUM, K_COUNT, K_PLAIN };

struct sample {
    const char *lab;            /* into the reply */
    size_t ll;
    uint64_t value;
    unsigned fam, kind, le;
};

struct gsample {
    const char *lab;
    size_t ll, idx;
    unsigned fam;
    double value;
};

static int suffix_is(const char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* The family and kind of a field's name (before the brace). */
static int name_kind(const char *p, size_t n, unsigned *fam, unsigned *kind)
{
    size_t f, fl;

    for (f = 0; f < NFAM; f++) {
        fl = strlen(fams[f].name);
        if (n < fl || memcmp(p, fams[f].name, fl) != 0)
            continue;
        *fam = (unsigned)f;
        if (fams[f].type == COUNTER && n == fl)
            *kind = K_PLAIN;
        else if (fams[f].type != HISTOGRAM)
            continue;
        else if (suffix_is(p + fl, n - fl, "_bucket"))
            *kind = K_BUCKET;
        else if (suffix_is(p + fl, n - fl, "_sum_us"))
            *kind = K_SUM;
        else if (suffix_is(p + fl, n - fl, "_count"))
            *kind = K_COUNT;
        else
            continue;
        return 0;
    }
    return -1;
}

/* Labels of a bucket: the set, then le="<one of bound_txt>". */
static int bucket_labels(struct sample *s)
{
    struct pair v[METRICS_PAIRS_MAX + 1];
    const struct pair *le;
    size_t np, i;

    if (parse_pairs(s->lab, s->ll, v, METRICS_PAIRS_MAX + 1, &np) < 0 ||
        np == 0)
        return -1;
    le = &v[np - 1];
    if (le->nlen != 2 || memcmp(le->name, "le", 2) != 0 ||
        check_set(v, np - 1, &fams[s->fam]) < 0)
        return -1;
    for (i = 0; i < NBUCKET; i++)
        if (suffix_is(le->val, le->vlen, bound_txt[i]))
            break;
    if (i == NBUCKET)
        return -1;
    s->le = (unsigned)i;
    s->ll = np > 1 ? le->start - 1 : 0;
    return s->ll <= METRICS_LABELS_MAX ? 0 : -1;
}

/* One hash field and value; -1 when malformed. */
static int parse_field(const struct store_reply *f,
                       const struct store_reply *v, struct sample *s)
{
    struct kf_str fs = store_reply_str(f);
    const char *p = fs.p, *brace;
    size_t n = fs.len, nl;

    if (store_reply_type(f) != STORE_STR || store_reply_type(v) != STORE_STR ||
        kf_parse_u64(store_reply_str(v), &s->value) < 0 ||
        s->value > INT64_MAX)
        return -1;
    brace = memchr(p, '{', n);
    nl = brace ? (size_t)(brace - p) : n;
    if (name_kind(p, nl, &s->fam, &s->kind) < 0)
        return -1;
    s->lab = "";
    s->ll = 0;
    s->le = 0;
    if (brace) {
        if (n < nl + 3 || p[n - 1] != '}')
            return -1;      /* "{}" is not the spelling of no labels */
        s->lab = brace + 1;
        s->ll = n - nl - 2;
    } else if (s->kind == K_BUCKET) {
        return -1;
    }
    if (s->kind == K_BUCKET)
        return bucket_labels(s);
    return valid_set(s->lab, s->ll, &fams[s->fam]) ? 0 : -1;
}

static int sample_cmp(const void *a, const void *b)
{
    const struct sample *x = a, *y = b;
    int c;

    if (x->fam != y->fam)
        return x->fam < y->fam ? -1 : 1;
    c = bytes_cmp(x->lab, x->ll, y->lab, y->ll);
    if (c)
        return c;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return (x->le > y->le) - (x->le < y->le);
}

static int gsample_cmp(const void *a, const void *b)
{
    const struct gsample *x = a, *y = b;
    int c;

    if (x->fam != y->fam)
        return x->fam < y->fam ? -1 : 1;
    c = bytes_cmp(x->lab, x->ll, y->lab, y->ll);
    if (c)
        return c;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int same_series(const struct sample *x, const struct sample *y)
{
    return x->fam == y->fam && bytes_cmp(x->lab, x->ll, y->lab, y->ll) == 0;
}

static int line(struct kf_buf *o, const char *name, const char *suffix,
                const char *lab, size_t ll, const char *le,
                const char *value)
{
    int rc = put_name(o, name, suffix, lab, ll, le);

    return rc < 0 ? rc : kf_buf_printf(o, " %s\n", value);
}

static void fmt_u64(char *buf, size_t n, uint64_t v)
{
    snprintf(buf, n, "%llu", (unsigned long long)v);
}

static void fmt_double(char *buf, size_t n, double v)
{
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else if (isinf(v))
        snprintf(buf, n, "%s", v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(buf, n, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, n, "%.17g", v);
    }
}

/* The histogram series starting at sm[0] (n samples of that series). */
static int emit_histogram(struct kf_buf *o, const struct sample *sm,
                          size_t n)
{
    const char *name = fams[sm->fam].name;
    uint64_t bucket[NBUCKET] = { 0 }, sum = 0, count = 0;
    char v[48];
    size_t i;
    int rc = 0;

    for (i = 0; i < n; i++) {
        if (sm[i].kind == K_BUCKET)
            bucket[sm[i].le] = sm[i].value;
        else if (sm[i].kind == K_SUM)
            sum = sm[i].value;
        else
            count = sm[i].value;
    }
    for (i = 0; i < NBUCKET && rc == 0; i++) {
        fmt_u64(v, sizeof(v), bucket[i]);
        rc = line(o, name, "_bucket", sm->lab, sm->ll, bound_txt[i], v);
    }
    fmt_u64(v, sizeof(v), count);
    if (rc == 0)
        rc = line(o, name, "_bucket", sm->lab, sm->ll, "+Inf", v);
    snprintf(v, sizeof(v), "%llu.%06llu",
             (unsigned long long)(sum / 1000000),
             (unsigned long long)(sum % 1000000));
    if (rc == 0)
        rc = line(o, name, "_sum", sm->lab, sm->ll, NULL, v);
    fmt_u64(v, sizeof(v), count);
    if (rc == 0)
        rc = line(o, name, "_count", sm->lab, sm->ll, NULL, v);
    return rc;
}

/* The samples of family f from sm[*i] on (sorted); advances *i. */
static int emit_family(struct kf_buf *o, unsigned f, const struct sample *sm,
                       size_t n, size_t *i)
{
    char v[24];
    size_t j;
    int rc = 0, any = 0;

    while (rc == 0 && *i < n && sm[*i].fam == f) {
        for (j = *i + 1; j < n && same_series(&sm[*i], &sm[j]); j++)
            ;
        if (fams[f].type == HISTOGRAM) {
            rc = emit_histogram(o, sm + *i, j - *i);
        } else {
            fmt_u64(v, sizeof(v), sm[*i].value);  /* a duplicate: first */
            rc = line(o, fams[f].name, "", sm[*i].lab, sm[*i].ll, NULL, v);
        }
        any = 1;
        *i = j;
    }
    /* A counter without labels starts at 0, so rate() sees its first
     * increase. */
    if (rc == 0 && !any && fams[f].type == COUNTER && !*fams[f].labels)
        rc = line(o, fams[f].name, "", "", 0, NULL, "0");
    return rc;
}

static int emit_gauges(struct kf_buf *o, unsigned f, const struct gsample *gs,
                       size_t n, size_t *i)
{
    char v[40];
    int rc = 0;

    while (rc == 0 && *i < n && gs[*i].fam == f) {
        if (*i == 0 || gs[*i - 1].fam != f ||
            bytes_cmp(gs[*i - 1].lab, gs[*i - 1].ll, gs[*i].lab,
                      gs[*i].ll) != 0) {
            fmt_double(v, sizeof(v), gs[*i].value);
            rc = line(o, fams[f].name, "", gs[*i].lab, gs[*i].ll, NULL, v);
        }
        (*i)++;
    }
    return rc;
}

/* The valid gauges of g, sorted; *out is new (caller frees). */
static int collect_gauges(const struct metrics_gauge *g, size_t ng,
                          struct gsample **out, size_t *n)
{
    struct gsample *gs = calloc(ng ? ng : 1, sizeof(*gs));
    size_t i;
    int f;

    *out = gs;
    *n = 0;
    if (!gs)
        return KF_ENOMEM;
    for (i = 0; i < ng; i++) {
        const char *lab = g[i].labels ? g[i].labels : "";
        size_t ll = strnlen(lab, METRICS_LABELS_MAX + 1);

        f = g[i].name ? family_of(g[i].name) : -1;
        if (f < 0 || fams[f].type != GAUGE || !valid_set(lab, ll, &fams[f]))
            continue;
        gs[*n] = (struct gsample){ lab, ll, i, (unsigned)f, g[i].value };
        (*n)++;
    }
    qsort(gs, *n, sizeof(*gs), gsample_cmp);
    return 0;
}

/* The valid fields of a reply, sorted; *out is new (caller frees). */
static int collect_fields(const struct store_reply *rep,
                          struct sample **out, size_t *n)
{
    size_t nf, i;
    struct sample *sm;

    *out = NULL;
    *n = 0;
    if (store_reply_len(rep) < 1 ||
        store_reply_type(store_reply_at(rep, 0)) != STORE_INT)
        return KF_EBACKEND;
    nf = (store_reply_len(rep) - 1) / 2;
    if (nf > METRICS_FIELDS_MAX)
        nf = METRICS_FIELDS_MAX;
    sm = calloc(nf ? nf : 1, sizeof(*sm));
    if (!sm)
        return KF_ENOMEM;
    for (i = 0; i < nf; i++)
        if (parse_field(store_reply_at(rep, 1 + 2 * i),
                        store_reply_at(rep, 2 + 2 * i), &sm[*n]) == 0)
            (*n)++;
    qsort(sm, *n, sizeof(*sm), sample_cmp);
    *out = sm;
    return 0;
}

/* The render op. On success *rep is new. */
static int read_hash(struct store *s, struct store_reply **rep)
{
    struct store_script sc;
    char cap[16], mf[16], mv[16];
    const char *args[] = { "render", cap, mf, mv };

    store_script_init(&sc, lua_metrics);
    snprintf(cap, sizeof(cap), "%d", METRICS_FIELDS_MAX);
    snprintf(mf, sizeof(mf), "%d", FIELD_MAX);
    snprintf(mv, sizeof(mv), "%d", VALUE_MAX);
    return store_run(s, &sc, 0, NULL, 4, args, NULL, rep);
}

static const char *type_name(enum ftype t)
{
    return t == COUNTER ? "counter" : t == HISTOGRAM ? "histogram" : "gauge";
}

int metrics_render(struct store *s, const struct metrics_gauge *g, size_t ng,
                   struct kf_buf *out)
{
    struct store_reply *rep = NULL;
    struct sample *sm = NULL;
    struct gsample *gs = NULL;
    size_t n = 0, ngs = 0, i = 0, gi = 0;
    unsigned f;
    int rc;

    rc = read_hash(s, &rep);
    if (rc == 0)
        rc = collect_fields(rep, &sm, &n);
    if (rc == 0)
        rc = collect_gauges(g, ng, &gs, &ngs);
    for (f = 0; rc == 0 && f < NFAM; f++) {
        rc = kf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
                           fams[f].name, fams[f].help, fams[f].name,
                           type_name(fams[f].type));
        if (rc == 0 && fams[f].type == GAUGE)
            rc = emit_gauges(out, f, gs, ngs, &gi);
        else if (rc == 0)
            rc = emit_family(out, f, sm, n, &i);
    }
    free(sm);
    free(gs);
    store_reply_free(rep);
    return rc;
}
