/* main: the wxkf program — subcommand dispatch, like git. */
#include <stdio.h>
#include <string.h>

#include "fcgi.h"
#include "pg.h"
#include "migrate.h"
#include "version.h"

#include "banned.h"

static const char usage[] =
    "usage: wxkf <command> -c FILE\n"
    "\n"
    "commands:\n"
    "  fcgi    -c FILE   FastCGI worker; the listen socket is fd 0 "
    "(spawn-fcgi)\n"
    "  jobs    -c FILE   background daemon: session expiry, heartbeats, queues\n"
    "  migrate -c FILE   apply the PostgreSQL migrations (idempotent)\n"
    "  check   -c FILE   validate the config, reach Redis and PostgreSQL and\n"
    "                    check their versions\n"
    "  config  -c FILE   print the effective configuration (secrets hidden)\n"
    "  agent   add|list|update|remove|token|sync -c FILE ...\n"
    "                    manage agents (wxkf agent --help)\n"
    "  user    add|passwd|disable|enable|list -c FILE ...\n"
    "                    staff users who sign in with a password\n"
    "                    (wxkf user --help)\n"
    "  routes            print every HTTP route: methods, path, least role,\n"
    "                    and whether it is audited (or exempt, and why)\n"
    "  token   add|list|revoke -c FILE ...\n"
    "                    named, scoped API tokens of machine clients\n"
    "                    (wxkf token --help)\n"
    "  version           print the version\n"
    "\n"
    "Every config key can be overridden by WXKF_<SECTION>_<KEY>.\n";

static const char *conf_arg(int argc, char **argv)
{
    int i;

    for (i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
            return argv[i + 1];
    return NULL;
}

const char *cli_opt(int argc, char **argv, const char *name)
{
    int i;

    for (i = 3; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static int wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

int cli_load(struct config *cfg, const char *path)
{
    struct config_err err;

    config_init(cfg);
    if (config_load(cfg, path, &err) < 0) {
        fprintf(stderr, "wxkf: config: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int cmd_config(const char *path)
{
    struct config cfg;
    struct kf_buf out;
    int rc = cli_load(&cfg, path);

    kf_buf_init(&out, 1 << 20);
    if (rc == 0 && config_dump(&cfg, &out) == 0)
        fputs(out.p ? out.p : "", stdout);
    kf_buf_release(&out);
    config_release(&cfg);
    return rc;
}

/* The rest of a "redis: " or "postgres: " line for a reachable server:
 * "ok (<where>, <name> <version>)", or "TOO OLD (<where>): <why>". 1 when
 * too old; a version the server did not say proves nothing (0). */
static int print_version(int vrc, enum version_server kind,
                         const struct version *v, const char *where)
{
    char msg[256];
    int old = 0;

    if (vrc < 0)
        snprintf(msg, sizeof(msg), "version unknown: %s", kf_strerror(vrc));
    else
        old = version_check(kind, v, msg, sizeof(msg)) < 0;
    if (old)
        printf("TOO OLD%s%s%s: %s\n", *where ? " (" : "", where,
               *where ? ")" : "", msg);
    else
        printf("ok (%s%s%s)\n", where, *where ? ", " : "", msg);
    return old;
}

/* The url as `wxkf check` may print it: a password never (as in
 * `wxkf config`). */
static const char *shown_url(const struct config *cfg, const struct store *st,
                             char *buf, size_t n)
{
    if (!strchr(cfg->redis.url, '@'))
        return cfg->redis.url;
    snprintf(buf, n, "redis://(password)@%s:%d/%d", st->host, st->port,
             st->db);
    return buf;
}

static int check_redis(const struct config *cfg)
{
    struct store st;
    struct version v;
    char where[600], url[300];
    int rc = store_init_config(&st, cfg) < 0;

    if (rc) {
        printf("redis: bad url %s\n", strchr(cfg->redis.url, '@')
               ? "(holds a password)" : cfg->redis.url);
    } else if (store_ping(&st) < 0) {
        printf("redis: UNREACHABLE (%s)\n", *cfg->redis.sentinels
               ? cfg->redis.sentinels : shown_url(cfg, &st, url,
                                                  sizeof(url)));
        rc = 1;
    } else {
        int vrc = store_server_version(&st, &v);

        if (st.nsentinels)
            snprintf(where, sizeof(where), "master %s of the Sentinels %s: "
                     "%s:%d", cfg->redis.master_name, cfg->redis.sentinels,
                     st.host, st.port);
        else
            snprintf(where, sizeof(where), "%s",
                     shown_url(cfg, &st, url, sizeof(url)));
        printf("redis: ");
        rc = print_version(vrc, VERSION_REDIS, &v, where);
    }
    store_release(&st);
    return rc;
}

static int check_postgres(const struct config *cfg)
{
    struct version v;
    struct pg_err err;
    int rc;

    if (pg_ping(cfg->postgres.dsn) < 0) {
        printf("postgres: UNREACHABLE\n");
        return 1;
    }
    rc = pg_server_version(cfg->postgres.dsn, &v, &err);
    if (rc == KF_EBACKEND) {
        printf("postgres: CANNOT LOG IN: %s\n", err.msg);
        return 1;
    }
    printf("postgres: ");
    return print_version(rc, VERSION_POSTGRES, &v, "");
}

static int cmd_check(const char *path)
{
    struct config cfg;
    int rc = cli_load(&cfg, path);

    if (rc == 0) {
        int i;

        printf("config: ok (%s)\n", path);
        printf("wechat: encoding %s\n", cfg.wechat.encoding);
        for (i = 0; config_advice(&cfg, i); i++)
            printf("config: warning: %s\n", config_advice(&cfg, i));
        rc = check_redis(&cfg);
        rc |= check_postgres(&cfg);
    }
    config_release(&cfg);
    return rc ? 1 : 0;
}

static int cmd_migrate(const char *path)
{
    struct config cfg;
    struct migrate_result res;
    int rc = cli_load(&cfg, path);

    if (rc == 0) {
        rc = migrate_run(cfg.postgres.dsn, &res) < 0;
        if (rc)
            fprintf(stderr, "wxkf migrate: %s\n", res.error);
        else if (res.applied)
            printf("migrate: schema %d -> %d (%d applied)\n", res.from,
                   res.to, res.applied);
        else
            printf("migrate: schema %d is up to date\n", res.to);
    }
    config_release(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    const char *path = conf_arg(argc, argv);

    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("wxkf %s\n", WXKF_VERSION);
        return 0;
    }
    if (strcmp(cmd, "routes") == 0)
        return routes_print(stdout);
    if (strcmp(cmd, "agent") == 0)
        return cmd_agent(argc, argv);  /* its own options and --help */
    if (strcmp(cmd, "user") == 0)
        return cmd_user(argc, argv);   /* its own options and --help */
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc, argv); /* the same */
    if (strcmp(cmd, "token") == 0)
        return cmd_token(argc, argv);  /* the same */
    if (!*cmd || wants_help(argc, argv) || strcmp(cmd, "help") == 0) {
        fputs(usage, *cmd ? stdout : stderr);
        return *cmd ? 0 : 2;
    }
    if (strcmp(cmd, "fcgi") && strcmp(cmd, "check") &&
        strcmp(cmd, "config") && strcmp(cmd, "migrate") &&
        strcmp(cmd, "jobs")) {
        fprintf(stderr, "wxkf: unknown command '%s'\n\n%s", cmd, usage);
        return 2;
    }
    if (!path) {
        fprintf(stderr, "wxkf %s: -c FILE is required\n", cmd);
        return 2;
    }
    if (strcmp(cmd, "fcgi") == 0)
        return worker_main(path);
    if (strcmp(cmd, "jobs") == 0)
        return jobs_main(path);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(path);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(path);
    return cmd_config(path);
}
