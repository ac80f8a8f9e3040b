/* user_cmd: `wxkf user add|passwd|disable|enable|list -c FILE ...`, the
 * operator's edge of lib/staff — staff users who sign in to the console
 * with a password. A password is read from standard input (a terminal:
 * asked twice without echo; otherwise its first line), never from the
 * command line, where other users could see it. Exit status: 0 done, 1
 * failed, 2 usage. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "audit.h"
#include "fcgi.h"
#include "password.h"
#include "pg.h"
#include "staff.h"
#include "staff_session.h"
#include "store.h"

#include "banned.h"

static const char user_usage[] =
    "usage: wxkf user <command> -c FILE [options]\n"
    "\n"
    "  add     --login L --name N --role agent|supervisor|admin [--agent A]\n"
    "          the password is read from standard input; role agent needs\n"
    "          --agent, the agent account it signs in as; a supervisor may\n"
    "          have one, the agent it serves users as after a take-over\n"
    "  passwd  --login L   a new password (from standard input); the user's\n"
    "          sessions end and its lock-out is lifted\n"
    "  disable --login L   the user can no longer sign in; its sessions end\n"
    "  enable  --login L\n"
    "  list    [--json]    every user of the account (never a hash)\n"
    "\n"
    "login: 1-32 of [a-z0-9_-], starting with a letter or digit; name: 1-64\n"
    "characters. A password: at least 10 characters, at most 128 bytes, no\n"
    "control characters. On a terminal it is asked twice without echo;\n"
    "otherwise the first line of standard input is the password.\n";

struct uopts {
    const char *conf, *login, *name, *role, *agent;
    int json;
};

static int fail(const char *what, const char *detail)
{
    fprintf(stderr, "wxkf user: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    return 1;
}

static int usage_error(const char *what)
{
    fprintf(stderr, "wxkf user: %s (see wxkf user --help)\n", what);
    return 2;
}

static int parse_opts(int argc, char **argv, struct uopts *o)
{
    static const struct option longs[] = {
        { "config", required_argument, NULL, 'c' },
        { "login", required_argument, NULL, 'l' },
        { "name", required_argument, NULL, 'n' },
        { "role", required_argument, NULL, 'r' },
        { "agent", required_argument, NULL, 'a' },
        { "json", no_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    memset(o, 0, sizeof(*o));
    opterr = 0;
    optind = 3;         /* after "user CMD" */
    while ((c = getopt_long(argc, argv, "c:", longs, NULL)) != -1) {
        switch (c) {
        case 'c': o->conf = optarg; break;
        case 'l': o->login = optarg; break;
        case 'n': o->name = optarg; break;
        case 'r': o->role = optarg; break;
        case 'a': o->agent = optarg; break;
        case 'j': o->json = 1; break;
        default: return usage_error("unknown option or missing value");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument");
    if (!o->conf)
        return usage_error("-c FILE is required");
    return 0;
}

/* One line of fd 0 into buf (without its line end); 0, or -1 if there is
 * none or it does not fit. */
static int read_line(char *buf, size_t n)
{
    size_t len;

    if (!fgets(buf, (int)n, stdin))
        return -1;
    len = strlen(buf);
    if (len == n - 1 && buf[len - 1] != '\n')
        return -1;                          /* longer than a password */
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return 0;
}

static int ask(const char *prompt, char *buf, size_t n)
{
    struct termios old, quiet;
    int rc;

    fputs(prompt, stderr);
    fflush(stderr);
    if (tcgetattr(0, &old) < 0)
        return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    tcsetattr(0, TCSAFLUSH, &quiet);
    rc = read_line(buf, n);
    tcsetattr(0, TCSAFLUSH, &old);
    fputs("\n", stderr);
    return rc;
}

/* The new password into pw (checked against the policy). 0 or 1. */
static int read_password(char *pw, size_t n)
{
    char again[PASSWORD_MAX_BYTES + 3];
    int rc = 0;

    if (isatty(0)) {
        if (ask("new password: ", pw, n) < 0 ||
            ask("again: ", again, sizeof(again)) < 0)
            rc = fail("no password read", NULL);
        else if (strcmp(pw, again) != 0)
            rc = fail("the two passwords differ", NULL);
    } else if (read_line(pw, n) < 0) {
        rc = fail("no password on standard input (or over 128 bytes)", NULL);
    }
    OPENSSL_cleanse(again, sizeof(again));
    if (rc == 0 && password_check(pw, strlen(pw)) < 0)
        rc = fail("password refused", "at least 10 characters, at most 128 "
                  "bytes, no control characters");
    return rc;
}

/* Ends every session of login (after passwd, disable): Redis is asked
 * once; a failure is said, not fatal (the password is changed already;
 * sessions still end at their expiry). */
static void end_sessions(const struct config *cfg, const char *login)
{
    struct store st;
    long n = 0;

    if (store_init_config(&st, cfg) < 0) {
        fail("[redis] url is invalid: sessions not ended", NULL);
        return;
    }
    if (staff_session_end_all(&st, login, NULL, &n) < 0 ||
        staff_lock_clear(&st, login) < 0)
        fail("Redis unreachable: sessions not ended (they end at their "
             "expiry)", NULL);
    else
        printf("%ld session(s) ended\n", n);
    store_release(&st);
}

static const char *err_text(int rc)
{
    return rc == KF_EEXISTS ? "the login is taken, or the agent has a user"
           : rc == KF_ENOTFOUND ? "no such user (or agent)"
           : rc == KF_EBACKEND ? "PostgreSQL unreachable"
           : rc == KF_EINVAL ? "a field is invalid" : kf_strerror(rc);
}

/* The change of cmd (add, passwd, disable, enable) on db. */
static int change(const struct config *cfg, struct pg_conn *db,
                  const char *cmd, const struct uopts *o,
                  struct staff_user *u)
{
    if (strcmp(cmd, "add") == 0) {
        snprintf(u->login, sizeof(u->login), "%s", o->login);
        snprintf(u->name, sizeof(u->name), "%s", o->name);
        snprintf(u->role, sizeof(u->role), "%s", o->role);
        snprintf(u->agent, sizeof(u->agent), "%s", o->agent ? o->agent : "");
        return staff_add(db, cfg->wechat.app_id, u);
    }
    if (strcmp(cmd, "passwd") == 0)
        return staff_set_password(db, cfg->wechat.app_id, o->login, u->hash);
    return staff_set_disabled(db, cfg->wechat.app_id, o->login,
                              strcmp(cmd, "disable") == 0);
}

static int run(const char *cmd, const struct uopts *o,
               const struct config *cfg)
{
    char pw[PASSWORD_MAX_BYTES + 3];
    struct staff_user u;
    struct audit au;
    struct pg_conn *db = NULL;
    json_t *list = NULL;
    int rc = 0, add = strcmp(cmd, "add") == 0;

    memset(&u, 0, sizeof(u));
    if (add || strcmp(cmd, "passwd") == 0) {
        if (add && (staff_check_login(o->login) < 0 ||
                    staff_check_name(o->name) < 0 ||
                    staff_check_role(o->role) < 0 ||
                    staff_check_agent_link(o->role, o->agent != NULL) < 0))
            return fail("invalid --login, --name, --role or --agent", NULL);
        if (read_password(pw, sizeof(pw)))
            return 1;
        rc = password_hash(pw, strlen(pw), u.hash);
        OPENSSL_cleanse(pw, sizeof(pw));
        if (rc < 0)
            return fail("hashing failed", kf_strerror(rc));
    }
    rc = staff_open(cfg->postgres.dsn, 0, &db);
    if (rc == 0 && strcmp(cmd, "list") == 0) {
        rc = staff_list(db, cfg->wechat.app_id, &list);
    } else if (rc == 0) {
        /* audited: the row in the change's transaction (lib/audit) */
        rc = cli_audit(cfg, add ? "staff.create"
                            : strcmp(cmd, "passwd") == 0
                                ? "staff.password_reset"
                                : strcmp(cmd, "disable") == 0
                                      ? "staff.disable" : "staff.enable",
                       o->login, &au);
        if (rc == 0)
            rc = audit_pg_begin(db, NULL);
        if (rc == 0)
            rc = audit_pg_end(db, &au, change(cfg, db, cmd, o, &u), NULL);
    }
    pg_close(db);
    OPENSSL_cleanse(u.hash, sizeof(u.hash));
    if (rc < 0)
        return fail(cmd, err_text(rc));
    if (list) {
        rc = json_dumpf(list, stdout, o->json ? JSON_COMPACT
                                              : JSON_INDENT(2));
        json_decref(list);
        puts("");
        return rc < 0;
    }
    printf("%s: %s\n", cmd, o->login);
    if (!add && strcmp(cmd, "enable") != 0)
        end_sessions(cfg, o->login);
    return 0;
}

int cmd_user(int argc, char **argv)
{
    const char *cmd = argc > 2 ? argv[2] : "";
    struct config cfg;
    struct config_err err;
    struct uopts o;
    int i, rc;

    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(user_usage, stdout);
            return 0;
        }
    if (strcmp(cmd, "add") && strcmp(cmd, "passwd") &&
        strcmp(cmd, "disable") && strcmp(cmd, "enable") &&
        strcmp(cmd, "list"))
        return usage_error("unknown command");
    rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc;
    if (strcmp(cmd, "list") && !o.login)
        return usage_error("--login is required");
    config_init(&cfg);
    if (config_load(&cfg, o.conf, &err) < 0) {
        config_release(&cfg);
        return fail("config", err.msg);
    }
    rc = run(cmd, &o, &cfg);
    config_release(&cfg);
    return rc;
}
