/* main: the wxkf program — subcommand dispatch, like git. */
#include <stdio.h>
#include <string.h>

#include "fcgi.h"
#include "pg.h"
#include "migrate.h"

#include "banned.h"

static const char usage[] =
    "usage: wxkf <command> -c FILE\n"
    "\n"
    "commands:\n"
    "  fcgi    -c FILE   FastCGI worker; the listen socket is fd 0 "
    "(spawn-fcgi)\n"
    "  jobs    -c FILE   background daemon: session expiry, heartbeats, queues\n"
    "  migrate -c FILE   apply the PostgreSQL migrations (idempotent)\n"
    "  check   -c FILE   validate the config and reach Redis and PostgreSQL\n"
    "  config  -c FILE   print the effective configuration (secrets hidden)\n"
    "  agent   add|list|update|remove|token|sync -c FILE ...\n"
    "                    manage agents (wxkf agent --help)\n"
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

static int wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    return 0;
}

static int load(struct config *cfg, const char *path)
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
    int rc = load(&cfg, path);

    kf_buf_init(&out, 1 << 20);
    if (rc == 0 && config_dump(&cfg, &out) == 0)
        fputs(out.p ? out.p : "", stdout);
    kf_buf_release(&out);
    config_release(&cfg);
    return rc;
}

static int cmd_check(const char *path)
{
    struct config cfg;
    struct store st;
    int rc = load(&cfg, path);

    if (rc == 0) {
        int i;

        printf("config: ok (%s)\n", path);
        printf("wechat: encoding %s\n", cfg.wechat.encoding);
        for (i = 0; config_advice(&cfg, i); i++)
            printf("config: warning: %s\n", config_advice(&cfg, i));
        rc = store_init_config(&st, &cfg) < 0;
        if (rc == 0 && st.nsentinels) {
            rc = store_ping(&st) < 0;
            printf("redis: %s (master %s of the Sentinels %s: %s:%d)\n",
                   rc ? "UNREACHABLE" : "ok", cfg.redis.master_name,
                   cfg.redis.sentinels, *st.host ? st.host : "?", st.port);
        } else if (rc == 0) {
            rc = store_ping(&st) < 0;
            printf("redis: %s (%s)\n", rc ? "UNREACHABLE" : "ok",
                   cfg.redis.url);
        } else {
            printf("redis: bad url %s\n", cfg.redis.url);
        }
        store_release(&st);
        if (pg_ping(cfg.postgres.dsn) == 0) {
            printf("postgres: ok\n");
        } else {
            printf("postgres: UNREACHABLE\n");
            rc = 1;
        }
    }
    config_release(&cfg);
    return rc ? 1 : 0;
}

static int cmd_migrate(const char *path)
{
    struct config cfg;
    struct migrate_result res;
    int rc = load(&cfg, path);

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
    if (strcmp(cmd, "agent") == 0)
        return cmd_agent(argc, argv);  /* its own options and --help */
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
