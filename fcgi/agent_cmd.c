/* agent_cmd: `wxkf agent add|list|update|remove|token|sync|invite|
 * wechat-sync -c FILE ...`, the operator's edge of lib/agent and
 * lib/agent_wx — parses options, calls the lib verbs, prints results
 * (tokens once, never hashes) and reports one error line. After a local
 * change, the agent's WeChat kf account follows (or one line says why
 * not). Exit status: 0 done, 1 failed, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent.h"
#include "agent_db.h"
#include "agent_mirror.h"
#include "agent_sync.h"
#include "agent_wx.h"
#include "audit.h"
#include "fcgi.h"
#include "wx_api.h"

#include "banned.h"

#define MAX_GROUP_ARGS 64

static const char agent_usage[] =
    "usage: wxkf agent <command> -c FILE [options]\n"
    "\n"
    "  add    --account A --nick N [--weight W] [--capacity C] [--group G]...\n"
    "         prints {\"account\":A,\"token\":T}: the token is shown once\n"
    "  update --account A [--nick N] [--weight W] [--capacity C]\n"
    "         [--group G]... | [--no-groups]\n"
    "         any --group replaces the group list; --no-groups clears it\n"
    "  remove --account A   (refused while the agent has sessions or is not\n"
    "         offline)\n"
    "  token  --account A   issue a new token (printed once), revoke the old\n"
    "  list   [--json]      every agent, with its status and load from Redis\n"
    "         (--json: the REST API's objects)\n"
    "  sync                 rebuild the Redis mirror from PostgreSQL\n"
    "  invite --account A --wechat W\n"
    "         invite WeChat user W to bind the kf account A (at WeChat)\n"
    "  wechat-sync          add agents missing at WeChat, update nicknames;\n"
    "         lists WeChat accounts that are not agents (never deletes them)\n"
    "\n"
    "With [wechat] app_secret set, add, update --nick and remove also change\n"
    "the agent's WeChat kf account, for accounts of the form prefix@wechat_id\n"
    "(the nickname is cut to 16 characters there).\n"
    "\n"
    "account: [A-Za-z0-9_]{1,10}, optionally @[A-Za-z0-9_-]{1,30}; nick: 1-64\n"
    "characters; weight " KF_XSTR(AGENT_WEIGHT_MIN) ".."
    KF_XSTR(AGENT_WEIGHT_MAX) " (default 1); capacity 1.."
    KF_XSTR(AGENT_CAPACITY_MAX) ", 0 = [routing]\n"
    "default_capacity; group: 1-32 of [a-z0-9_-] or letters beyond\n"
    "ASCII (售后), at most 16.\n";

enum {
    O_CONF = 1, O_ACCOUNT = 2, O_NICK = 4, O_WEIGHT = 8, O_CAPACITY = 16,
    O_GROUP = 32, O_NO_GROUPS = 64, O_JSON = 128, O_WECHAT = 256,
};

struct opts {
    const char *conf, *account, *nick, *weight, *capacity, *wechat;
    const char *groups[MAX_GROUP_ARGS];
    int ngroups;
    unsigned seen;
};

struct subcmd {
    const char *name;
    unsigned allowed, required;
    int (*run)(const struct opts *o, const struct config *cfg);
};

static int say(const char *msg)
{
    fprintf(stderr, "wxkf agent: %s\n", msg);
    return 1;
}

/* A line that does not fail the command (e.g. WeChat was skipped). */
static int note(const char *msg)
{
    fprintf(stderr, "wxkf agent: %s\n", msg);
    return 0;
}

/* One line, like every error; the full text is behind --help. */
static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "wxkf agent: %s%s%s (see wxkf agent --help)\n", what,
            arg ? " " : "", arg ? arg : "");
    return 2;
}

/* --------------------------------------------------------------- options */

static const struct {
    const char *name;
    unsigned bit;
    int takes_value;
} optdefs[] = {
    { "-c", O_CONF, 1 },           { "--config", O_CONF, 1 },
    { "--account", O_ACCOUNT, 1 }, { "--nick", O_NICK, 1 },
    { "--weight", O_WEIGHT, 1 },   { "--capacity", O_CAPACITY, 1 },
    { "--group", O_GROUP, 1 },     { "--no-groups", O_NO_GROUPS, 0 },
    { "--json", O_JSON, 0 },       { "--wechat", O_WECHAT, 1 },
};

static int store_opt(struct opts *o, const char *name, unsigned bit,
                     const char *v)
{
    const char **slot = bit == O_CONF ? &o->conf
                        : bit == O_ACCOUNT ? &o->account
                        : bit == O_NICK ? &o->nick
                        : bit == O_WEIGHT ? &o->weight
                        : bit == O_CAPACITY ? &o->capacity
                        : bit == O_WECHAT ? &o->wechat : NULL;

    if (bit == O_GROUP) {
        if (o->ngroups >= MAX_GROUP_ARGS)
            return usage_error("too many --group options", NULL);
        o->groups[o->ngroups++] = v;
    } else if (o->seen & bit && bit != O_NO_GROUPS && bit != O_JSON) {
        return usage_error("option given twice:", name);
    } else if (slot) {
        *slot = v;
    }
    o->seen |= bit;
    return 0;
}

/* "--weight -c FILE" is a missing value, not a weight of "-c". */
static int is_option(const char *a)
{
    size_t d;

    for (d = 0; d < sizeof(optdefs) / sizeof(optdefs[0]); d++)
        if (strcmp(optdefs[d].name, a) == 0 ||
            (strncmp(optdefs[d].name, a, strlen(optdefs[d].name)) == 0 &&
             a[strlen(optdefs[d].name)] == '=' && optdefs[d].takes_value))
            return 1;
    return 0;
}

/* argv[2..]: the first word is the command, the rest options ("--x v" or
 * "--x=v"). Returns 0, or 2 after printing a usage error. */
static int parse(int argc, char **argv, const char **cmd, struct opts *o)
{
    int i, rc;
    size_t d;

    memset(o, 0, sizeof(*o));
    *cmd = NULL;
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '='), *v = NULL;
        size_t n = eq && a[0] == '-' && a[1] == '-' ? (size_t)(eq - a)
                                                     : strlen(a);

        if (a[0] != '-' || !a[1]) {
            if (*cmd)
                return usage_error("unexpected argument:", a);
            *cmd = a;
            continue;
        }
        for (d = 0; d < sizeof(optdefs) / sizeof(optdefs[0]); d++)
            if (strlen(optdefs[d].name) == n &&
                strncmp(optdefs[d].name, a, n) == 0)
                break;
        if (d == sizeof(optdefs) / sizeof(optdefs[0]))
            return usage_error("unknown option", a);
        if (optdefs[d].takes_value) {
            if (n < strlen(a))
                v = a + n + 1;
            else if (i + 1 < argc && !is_option(argv[i + 1]))
                v = argv[++i];
            else
                return usage_error("missing value for", a);
        } else if (n < strlen(a)) {
            return usage_error("takes no value:", a);
        }
        rc = store_opt(o, optdefs[d].name, optdefs[d].bit, v);
        if (rc)
            return rc;
    }
    return 0;
}

/* A decimal integer in [lo, hi], else KF_EINVAL naming the field. */
/* A decimal number checked by check (which says why it is refused);
 * anything but digits is refused as check refuses -1. */
static int parse_num(const char *s, int (*check)(long long,
                                                  struct agent_err *),
                     int *out, struct agent_err *err)
{
    char *end;
    long v;
    int rc;

    if (s[0] < '0' || s[0] > '9')
        return check(-1, err);
    v = strtol(s, &end, 10);      /* past LONG_MAX: LONG_MAX, refused */
    if (*end)
        return check(-1, err);
    rc = check(v, err);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

/* The record from the options (only those given are set). */
static int fill(const struct opts *o, struct agent *a, struct agent_err *err)
{
    int i, rc;

    agent_init(a);
    rc = agent_set_account(a, o->account, err);
    if (rc == 0 && o->nick)
        rc = agent_set_nick(a, o->nick, err);
    if (rc == 0 && o->weight)
        rc = parse_num(o->weight, agent_check_weight, &a->weight, err);
    if (rc == 0 && o->capacity)
        rc = parse_num(o->capacity, agent_check_capacity, &a->capacity,
                       err);
    for (i = 0; rc == 0 && i < o->ngroups; i++)
        rc = agent_add_group(a, o->groups[i], err);
    return rc;
}

/* ------------------------------------------------------------ connections */

struct conns {
    struct pg_conn *db;
    struct store st;
    int st_ok;
    struct wx_api *api;          /* only once wechat_open() made it */
};

static int connect_all(const struct config *cfg, struct conns *c,
                       struct agent_err *err)
{
    memset(c, 0, sizeof(*c));
    if (store_init_config(&c->st, cfg) < 0) {
        snprintf(err->msg, sizeof(err->msg), "[redis] url is invalid");
        return KF_ECONFIG;
    }
    c->st_ok = 1;
    return agent_db_open(cfg->postgres.dsn, PG_USE_CLI, &c->db, err);
}

static void disconnect_all(struct conns *c)
{
    wx_api_free(c->api);
    c->api = NULL;
    agent_db_close(c->db);
    c->db = NULL;
    if (c->st_ok)
        store_release(&c->st);
    c->st_ok = 0;
}

/* ---------------------------------------------------------------- output */

/* Prints j as one compact line and frees it (KF_ENOMEM if j is NULL). */
static int print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = s ? 0 : KF_ENOMEM;

    if (s) {
        puts(s);
        fflush(stdout);
        free(s);
    }
    json_decref(j);
    return rc;
}

static int print_token(const char *account, char *token)
{
    int rc = print_json(json_pack("{s:s, s:s}", "account", account,
                                  "token", token));

    explicit_bzero(token, AGENT_TOKEN_SIZE);
    return rc;
}

/* Terminal columns of code point c: 2 for East Asian wide and fullwidth
 * characters (most nicks here are Chinese), else 1. */
static int columns(unsigned long c)
{
    return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
                   (c >= 0xac00 && c <= 0xd7a3) ||
                   (c >= 0xf900 && c <= 0xfaff) ||
                   (c >= 0xfe30 && c <= 0xfe4f) ||
                   (c >= 0xff00 && c <= 0xff60) ||
                   (c >= 0xffe0 && c <= 0xffe6) ||
                   (c >= 0x1f300 && c <= 0x1f64f) ||
                   (c >= 0x1f900 && c <= 0x1f9ff) ||
                   (c >= 0x20000 && c <= 0x3fffd)
               ? 2 : 1;
}

/* Display width of a valid UTF-8 string (checked by lib/agent). */
static int width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned long c;
    int n = 0, more;

    while (*p) {
        more = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : *p >= 0xc0 ? 1 : 0;
        c = more ? *p & (0x3f >> more) : *p;
        for (p++; more && (*p & 0xc0) == 0x80; more--, p++)
            c = c << 6 | (*p & 0x3f);
        n += columns(c);
    }
    return n;
}

static void cell(const char *s, int w, const char *sep)
{
    int pad = w - width(s);

    fputs(s, stdout);
    printf("%*s%s", pad > 0 ? pad : 0, "", sep);
}

struct row_text {
    char weight[16], capacity[16], groups[AGENT_MAX_GROUPS * 33 + 2];
    const char *status;
};

static void row_text(const struct agent *a, const char *status,
                     struct row_text *t)
{
    size_t n = 0;
    int i;

    snprintf(t->weight, sizeof(t->weight), "%d", a->weight);
    if (a->capacity)
        snprintf(t->capacity, sizeof(t->capacity), "%d", a->capacity);
    else
        snprintf(t->capacity, sizeof(t->capacity), "default");
    t->groups[0] = '\0';
    for (i = 0; i < a->ngroups; i++)
        n += (size_t)snprintf(t->groups + n, sizeof(t->groups) - n, "%s%s",
                              i ? "," : "", a->groups[i]);
    if (!a->ngroups)
        snprintf(t->groups, sizeof(t->groups), "-");
    t->status = *status ? status : "unknown";
}

/* The six cells of one row; they point into t and a. */
static void row_cells(const struct agent *a, const char *status,
                      struct row_text *t, const char *c[6])
{
    row_text(a, status, t);
    c[0] = a->account;
    c[1] = a->nick;
    c[2] = t->weight;
    c[3] = t->capacity;
    c[4] = t->groups;
    c[5] = t->status;
}

static void print_row(const char *const c[6], const int w[6])
{
    int i;

    for (i = 0; i < 5; i++)
        cell(c[i], w[i], "  ");
    cell(c[5], 0, "\n");
}

/* What Redis says of an agent now: its status and load; "unmirrored"
 * and 0 when Redis does not have it, "" and -1 when Redis cannot be
 * asked (rc then KF_EBACKEND). */
struct live {
    char status[16];
    long long load;
};

/* Fills v (see struct live). */
static int live_of(struct store *st, const char *account, struct live *v)
{
    struct agent_err err;
    int rc = agent_mirror_status(st, account, v->status, &v->load, &err);

    if (rc == KF_ENOTFOUND) {
        snprintf(v->status, sizeof(v->status), "unmirrored");
        v->load = 0;
        return 0;
    }
    if (rc < 0) {
        v->status[0] = '\0';
        v->load = -1;
    }
    return rc;
}

/* The agent as the API shows it (api_agent_json), from v. */
static json_t *agent_json(const struct agent *a, const struct live *v)
{
    return api_agent_json(a, v->status[0] ? v->status : NULL, v->load);
}

static void print_table(const struct agent_list *l, const struct live *live)
{
    static const char *const head[6] = { "ACCOUNT", "NICK", "WEIGHT",
                                         "CAPACITY", "GROUPS", "STATUS" };
    const char *c[6];
    struct row_text t;
    int w[6], i;
    size_t r;

    for (i = 0; i < 6; i++)
        w[i] = width(head[i]);
    for (r = 0; r < l->len; r++) {
        row_cells(&l->v[r], live[r].status, &t, c);
        for (i = 0; i < 6; i++)
            if (width(c[i]) > w[i])
                w[i] = width(c[i]);
    }
    print_row(head, w);
    for (r = 0; r < l->len; r++) {
        row_cells(&l->v[r], live[r].status, &t, c);
        print_row(c, w);
    }
}

/* -------------------------------------------------------------- commands */

/* The common tail: reports err (and the stale-mirror case) once. */
static int done(int rc, const struct agent_err *err)
{
    if (rc == 0)
        return 0;
    return say(err->msg[0] ? err->msg : kf_strerror(rc));
}

/* ---------------------------------------------------------------- WeChat */

/* The client for WeChat's API, when credentials are configured (else w
 * has none and the agent_wx verbs say so). c must be connected. */
static void wechat_open(const struct config *cfg, struct conns *c,
                        struct agent_wx *w)
{
    if (agent_wx_configured(cfg) && !c->api &&
        wx_api_new(cfg, &c->st, &c->api) < 0)
        c->api = NULL;             /* the verb reports "no API client" */
    agent_wx_init(w, cfg, c->api);
}

static void nick_note(const struct agent_wx_result *r)
{
    if (r->nick_truncated)
        fprintf(stderr, "wxkf agent: note: WeChat allows %d characters; "
                "the nickname there is \"%s\"\n", AGENT_WX_NICK_CHARS,
                r->nickname);
}

/* After the local change (what says how it went): one line when WeChat
 * was skipped (exit 0) or refused (exit 1). */
static int wechat_report(int rc, const struct agent_wx_result *r,
                         const char *what, const char *retry)
{
    if (r->skipped)
        return note(r->msg);
    nick_note(r);
    if (rc == 0)
        return 0;
    fprintf(stderr, "wxkf agent: %s, but %s; %s\n", what, r->msg, retry);
    return 1;
}

static const char retry_sync[] = "run `wxkf agent wechat-sync` to retry";

/* Mirrors a (add, update) or account (remove) to WeChat; the exit
 * status. */
static int wechat_mirror(const struct config *cfg, struct conns *c,
                         enum agent_wx_op op, const struct agent *a,
                         const char *account)
{
    struct agent_wx_result r;
    struct agent_wx w;
    int rc;

    wechat_open(cfg, c, &w);
    if (op == AGENT_WX_DEL) {
        rc = agent_wx_remove(&w, account, &r);
        return wechat_report(rc, &r, "removed from wxkf", "delete it at "
                             "WeChat (`wxkf agent wechat-sync` lists it)");
    }
    rc = op == AGENT_WX_ADD ? agent_wx_add(&w, a, &r)
                            : agent_wx_update(&w, a, &r);
    return wechat_report(rc, &r, "saved in wxkf", retry_sync);
}

static int run_add(const struct opts *o, const struct config *cfg)
{
    char token[AGENT_TOKEN_SIZE];
    struct agent_err err = { "", 0 };
    struct audit au;
    struct agent a;
    struct conns c;
    int rc = fill(o, &a, &err);

    if (rc == 0)
        rc = agent_validate(&a, &err);
    if (rc == 0)
        rc = cli_audit(cfg, "agent.create", a.account, &au);
    if (rc < 0)
        return done(rc, &err);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0) {
        rc = agent_add(c.db, &c.st, &a, token, &au, &err);
        /* The row exists once PostgreSQL took it: show the token even if
         * the mirror is stale, or it would be lost. */
        if ((rc == 0 || err.mirror_stale) &&
            print_token(a.account, token) < 0 && rc == 0)
            rc = KF_ENOMEM;
    }
    rc = rc == 0 ? wechat_mirror(cfg, &c, AGENT_WX_ADD, &a, NULL)
                 : done(rc, &err);
    disconnect_all(&c);
    return rc;
}

static int run_update(const struct opts *o, const struct config *cfg)
{
    struct agent_err err = { "", 0 };
    struct agent v, out;
    struct audit au;
    unsigned set = 0;
    struct conns c;
    int rc = fill(o, &v, &err);

    if (rc == 0)
        rc = cli_audit(cfg, "agent.update", v.account, &au);
    if (o->seen & O_NICK)
        set |= AGENT_SET_NICK;
    if (o->seen & O_WEIGHT)
        set |= AGENT_SET_WEIGHT;
    if (o->seen & O_CAPACITY)
        set |= AGENT_SET_CAPACITY;
    if (o->seen & (O_GROUP | O_NO_GROUPS))
        set |= AGENT_SET_GROUPS;
    if (rc < 0)
        return done(rc, &err);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0)
        rc = agent_update(c.db, &c.st, &v, set, &out, &au, &err);
    if (rc == 0 || err.mirror_stale) {
        struct live now;

        (void)live_of(&c.st, out.account, &now);
        if (print_json(agent_json(&out, &now)) < 0 && rc == 0)
            rc = KF_ENOMEM;
    }
    if (rc == 0 && (set & AGENT_SET_NICK))   /* WeChat has only the nick */
        rc = wechat_mirror(cfg, &c, AGENT_WX_UPDATE, &out, NULL);
    else
        rc = done(rc, &err);
    disconnect_all(&c);
    return rc;
}

static int run_remove(const struct opts *o, const struct config *cfg)
{
    struct agent_err err = { "", 0 };
    struct audit au;
    struct conns c;
    int rc = agent_check_account(o->account, &err);

    if (rc == 0)
        rc = cli_audit(cfg, "agent.delete", o->account, &au);
    if (rc < 0)
        return done(rc, &err);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0)
        rc = agent_remove(c.db, &c.st, o->account, &au, &err);
    rc = rc == 0 ? wechat_mirror(cfg, &c, AGENT_WX_DEL, NULL, o->account)
                 : done(rc, &err);
    disconnect_all(&c);
    return rc;
}

static int run_token(const struct opts *o, const struct config *cfg)
{
    char token[AGENT_TOKEN_SIZE];
    struct agent_err err = { "", 0 };
    struct audit au;
    struct conns c;
    int rc = agent_check_account(o->account, &err);

    if (rc == 0)
        rc = cli_audit(cfg, "agent.token", o->account, &au);
    if (rc < 0)
        return done(rc, &err);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0) {
        rc = agent_rotate_token(c.db, &c.st, o->account, token, &au,
                                &err);
        if ((rc == 0 || err.mirror_stale) &&
            print_token(o->account, token) < 0 && rc == 0)
            rc = KF_ENOMEM;
    }
    disconnect_all(&c);
    return done(rc, &err);
}

/* Each agent's status and load from Redis. */
static void statuses(struct store *st, const struct agent_list *l,
                     struct live *live)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < l->len; i++) {
        live[i].status[0] = '\0';
        live[i].load = -1;
        if (rc != KF_EBACKEND)     /* once down, do not wait again */
            rc = live_of(st, l->v[i].account, &live[i]);
    }
    if (rc == KF_EBACKEND)
        say("warning: Redis unreachable; status unknown");
}

static json_t *list_json(const struct agent_list *l, const struct live *live)
{
    json_t *arr = json_array();
    size_t i;

    for (i = 0; arr && i < l->len; i++)
        if (json_array_append_new(arr, agent_json(&l->v[i], &live[i]))) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static int run_list(const struct opts *o, const struct config *cfg)
{
    struct agent_err err = { "", 0 };
    struct live *live = NULL;
    struct agent_list l;
    struct conns c;
    int rc;

    agent_list_init(&l);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0)
        rc = agent_db_list(c.db, &l, &err);
    if (rc == 0 && !(live = calloc(l.len + 1, sizeof(*live))))
        rc = KF_ENOMEM;
    if (rc == 0) {
        statuses(&c.st, &l, live);
        if (o->seen & O_JSON)
            rc = print_json(list_json(&l, live));
        else
            print_table(&l, live);
    }
    free(live);
    agent_list_release(&l);
    disconnect_all(&c);
    return done(rc, &err);
}

static int run_sync(const struct opts *o, const struct config *cfg)
{
    struct agent_err err = { "", 0 };
    struct agent_sync_stats st;
    struct conns c;
    int rc;

    (void)o;
    rc = connect_all(cfg, &c, &err);
    if (rc == 0)
        rc = agent_mirror_sync_all(&c.st, c.db, &st, &err);
    if (rc == 0)
        printf("sync: %zu mirrored, %zu removed, %zu kept (sessions or "
               "not offline), %zu stale keys swept\n", st.mirrored,
               st.removed, st.kept, st.swept);
    disconnect_all(&c);
    return done(rc, &err);
}

/* KF_ENOTFOUND ("no agent A") unless PostgreSQL has the account. */
static int agent_exists(struct pg_conn *db, const char *account,
                        struct agent_err *err)
{
    struct agent_list l;
    size_t i;
    int rc;

    agent_list_init(&l);
    rc = agent_db_list(db, &l, err);
    for (i = 0; rc == 0 && i < l.len; i++)
        if (strcmp(l.v[i].account, account) == 0)
            break;
    if (rc == 0 && i == l.len) {
        snprintf(err->msg, sizeof(err->msg), "no agent %s", account);
        rc = KF_ENOTFOUND;
    }
    agent_list_release(&l);
    return rc;
}

static int run_invite(const struct opts *o, const struct config *cfg)
{
    struct agent_err err = { "", 0 };
    struct agent_wx_result r;
    struct agent_wx w;
    struct conns c;
    int rc = agent_check_account(o->account, &err);

    if (rc == 0 && agent_wx_check_wechat_id(o->wechat) < 0) {
        snprintf(err.msg, sizeof(err.msg), "wechat: must be 1-64 of "
                 "[A-Za-z0-9_.-] (a WeChat ID)");
        rc = KF_EINVAL;
    }
    if (rc < 0)
        return done(rc, &err);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0)
        rc = agent_exists(c.db, o->account, &err);
    if (rc == 0) {
        wechat_open(cfg, &c, &w);
        rc = agent_wx_invite(&w, o->account, o->wechat, &r);
        if (r.skipped)
            rc = note(r.msg);
        else if (rc < 0)
            rc = say(r.msg);
        else
            rc = print_json(json_pack("{s:s, s:s, s:s}", "account",
                                      o->account, "invite_wx", o->wechat,
                                      "invite_status", "waiting")) < 0
                     ? say(kf_strerror(KF_ENOMEM)) : 0;
    } else {
        rc = done(rc, &err);
    }
    disconnect_all(&c);
    return rc;
}

/* The summary on stdout; the first failure on stderr (exit 1). */
static int sync_report(int rc, const struct agent_wx_sync_stats *st,
                       const struct agent_wx_kflist *foreign,
                       const struct agent_wx_result *r)
{
    size_t i;

    if (r->skipped)
        return note(r->msg);
    if (rc < 0 && st->failed == 0)
        return say(r->msg);        /* getkflist failed: nothing done */
    printf("wechat-sync: %zu added, %zu updated, %zu unchanged, %zu in wxkf "
           "only (not kf_accounts), %zu failed\n", st->added, st->updated,
           st->unchanged, st->local_only, st->failed);
    if (st->truncated)
        printf("wechat-sync: %zu nicknames cut to %d characters for "
               "WeChat\n", st->truncated, AGENT_WX_NICK_CHARS);
    for (i = 0; i < foreign->len; i++)
        printf("wechat-sync: not a wxkf agent, left alone at WeChat: %s "
               "\"%s\"\n", foreign->v[i].account, foreign->v[i].nick);
    fflush(stdout);
    if (rc == 0)
        return 0;
    fprintf(stderr, "wxkf agent: wechat-sync: %zu account%s failed, the "
            "first %s\n", st->failed, st->failed == 1 ? "" : "s", r->msg);
    return 1;
}

static int run_wechat_sync(const struct opts *o, const struct config *cfg)
{
    struct agent_err err = { "", 0 };
    struct agent_wx_kflist foreign;
    struct agent_wx_sync_stats st;
    struct agent_wx_result r;
    struct agent_list l;
    struct agent_wx w;
    struct conns c;
    int rc;

    (void)o;
    agent_list_init(&l);
    agent_wx_kflist_init(&foreign);
    rc = connect_all(cfg, &c, &err);
    if (rc == 0)
        rc = agent_db_list(c.db, &l, &err);
    if (rc == 0) {
        wechat_open(cfg, &c, &w);
        rc = sync_report(agent_wx_sync(&w, &l, &st, &foreign, &r), &st,
                         &foreign, &r);
    } else {
        rc = done(rc, &err);
    }
    agent_wx_kflist_release(&foreign);
    agent_list_release(&l);
    disconnect_all(&c);
    return rc;
}

static const struct subcmd subcmds[] = {
    { "add", O_CONF | O_ACCOUNT | O_NICK | O_WEIGHT | O_CAPACITY | O_GROUP,
      O_CONF | O_ACCOUNT | O_NICK, run_add },
    { "update", O_CONF | O_ACCOUNT | O_NICK | O_WEIGHT | O_CAPACITY |
                    O_GROUP | O_NO_GROUPS,
      O_CONF | O_ACCOUNT, run_update },
    { "remove", O_CONF | O_ACCOUNT, O_CONF | O_ACCOUNT, run_remove },
    { "token", O_CONF | O_ACCOUNT, O_CONF | O_ACCOUNT, run_token },
    { "list", O_CONF | O_JSON, O_CONF, run_list },
    { "sync", O_CONF, O_CONF, run_sync },
    { "invite", O_CONF | O_ACCOUNT | O_WECHAT, O_CONF | O_ACCOUNT | O_WECHAT,
      run_invite },
    { "wechat-sync", O_CONF, O_CONF, run_wechat_sync },
};

static const char *opt_name(unsigned bit)
{
    size_t d;

    for (d = 1; d < sizeof(optdefs) / sizeof(optdefs[0]); d++)
        if (optdefs[d].bit == bit)
            return optdefs[d].name;
    return "-c";
}

/* Options the command does not take, or lacks, are usage errors. */
static int check_opts(const struct subcmd *sc, const struct opts *o)
{
    unsigned bit;

    for (bit = 1; bit <= O_WECHAT; bit <<= 1) {
        if ((o->seen & bit) && !(sc->allowed & bit))
            return usage_error("option not taken by this command:",
                               opt_name(bit));
        if ((sc->required & bit) && !(o->seen & bit))
            return usage_error("missing", bit == O_CONF ? "-c FILE"
                                                        : opt_name(bit));
    }
    if ((o->seen & O_GROUP) && (o->seen & O_NO_GROUPS))
        return usage_error("--group and --no-groups exclude each other",
                           NULL);
    if (sc->run == run_update &&
        !(o->seen & (O_NICK | O_WEIGHT | O_CAPACITY | O_GROUP |
                     O_NO_GROUPS)))
        return usage_error("nothing to update", NULL);
    return 0;
}

static int wants_help(int argc, char **argv)
{
    int i;

    for (i = 2; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

int cmd_agent(int argc, char **argv)
{
    struct config_err cerr;
    struct config cfg;
    const char *cmd;
    struct opts o;
    size_t i;
    int rc;

    if (wants_help(argc, argv)) {
        fputs(agent_usage, stdout);
        return 0;
    }
    rc = parse(argc, argv, &cmd, &o);
    if (rc)
        return rc;
    if (!cmd)
        return usage_error("missing command", NULL);
    for (i = 0; i < sizeof(subcmds) / sizeof(subcmds[0]); i++)
        if (strcmp(subcmds[i].name, cmd) == 0)
            break;
    if (i == sizeof(subcmds) / sizeof(subcmds[0]))
        return usage_error("unknown command", cmd);
    rc = check_opts(&subcmds[i], &o);
    if (rc)
        return rc;
    config_init(&cfg);
    if (config_load(&cfg, o.conf, &cerr) < 0) {
        fprintf(stderr, "wxkf agent: config: %s\n", cerr.msg);
        config_release(&cfg);
        return 1;
    }
    rc = subcmds[i].run(&o, &cfg);
    config_release(&cfg);
    return rc;
}
