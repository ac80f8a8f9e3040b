/* token_cmd: `wxkf token add|list|revoke -c FILE ...` — the operator's
 * edge of lib/api_token: named, scoped API tokens of machine clients.
 * add prints the secret once (standard output, its last line alone);
 * nothing keeps it but as its SHA-256. Exit status: 0 done, 1 failed,
 * 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_token.h"
#include "fcgi.h"
#include "pg.h"

#include "banned.h"

static const char usage[] =
    "usage: wxkf token <command> -c FILE [options]\n"
    "\n"
    "  add     --name N --scopes S[,S...]   a new API token: its secret is\n"
    "          printed once (the last line), keep it; scopes: read, agents,\n"
    "          reports, history (docs/api.md, \"API tokens\")\n"
    "  list    [--json]   every token of the account, newest first, with\n"
    "          its last use (never a secret)\n"
    "  revoke  --id ID    refused from the next request on\n";

static int has(int argc, char **argv, const char *name)
{
    int i;

    for (i = 3; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

static int fail(const char *cmd, int rc)
{
    fprintf(stderr, "wxkf token %s: %s\n", cmd,
            rc == KF_EEXISTS ? "a live token has this name already"
            : rc == KF_ELIMIT ? "100 live tokens already: revoke one"
            : rc == KF_ENOTFOUND ? "no such token"
            : rc == KF_EBACKEND ? "PostgreSQL unreachable"
            : rc == KF_EINVAL ? "invalid --name or --scopes"
                              : kf_strerror(rc));
    return 1;
}

/* One line per token: id, name, scopes, last use, state. */
static void print_list(const json_t *list)
{
    const json_t *t, *s;
    size_t i, j;

    json_array_foreach(json_object_get(list, "tokens"), i, t) {
        const char *used = json_string_value(json_object_get(t,
                                                             "last_used_at"));
        const char *rev = json_string_value(json_object_get(t, "revoked_at"));

        printf("%lld\t%s\t", (long long)json_integer_value(
                                 json_object_get(t, "id")),
               json_string_value(json_object_get(t, "name")));
        json_array_foreach(json_object_get(t, "scopes"), j, s)
            printf("%s%s", j ? "," : "", json_string_value(s));
        printf("\tlast used %s\t%s%s\n", used ? used : "never",
               rev ? "revoked " : "live", rev ? rev : "");
    }
}

static int run(const char *cmd, int argc, char **argv,
               const struct config *cfg)
{
    const char *name = cli_opt(argc, argv, "--name");
    const char *sc = cli_opt(argc, argv, "--scopes");
    const char *id = cli_opt(argc, argv, "--id");
    struct pg_conn *db = NULL;
    struct pg_err e = { 0, "", "", 0 };
    json_t *out = NULL;
    unsigned scopes = 0;
    char *end = NULL;
    long long n = 0;
    int rc;

    if (strcmp(cmd, "add") == 0 &&
        (!name || !sc || api_token_scopes_parse(sc, &scopes) < 0 ||
         api_token_check_name(name) < 0))
        return fail(cmd, KF_EINVAL);
    if (strcmp(cmd, "revoke") == 0 &&
        (!id || (n = strtoll(id, &end, 10)) < 1 || *end))
        return fail(cmd, KF_ENOTFOUND);
    rc = pg_open(cfg->postgres.dsn, "wxkf-token", PG_USE_CLI, &db, &e);
    if (rc == 0 && strcmp(cmd, "add") == 0)
        rc = api_token_add(db, cfg->wechat.app_id, name, scopes, "cli", &out);
    else if (rc == 0 && strcmp(cmd, "list") == 0)
        rc = api_token_list(db, cfg->wechat.app_id, &out);
    else if (rc == 0)
        rc = api_token_revoke(db, cfg->wechat.app_id, n, &out);
    pg_close(db);
    if (rc < 0)
        return fail(cmd, rc == KF_EIO || rc == KF_EBACKEND ? KF_EBACKEND
                                                           : rc);
    if (strcmp(cmd, "list") == 0 && has(argc, argv, "--json"))
        rc = json_dumpf(out, stdout, JSON_COMPACT) < 0 || puts("") < 0;
    else if (strcmp(cmd, "list") == 0)
        print_list(out);
    else if (strcmp(cmd, "revoke") == 0)
        printf("revoked: %lld\n", n);
    else
        printf("token %lld (%s) made; it is shown only now:\n%s\n",
               (long long)json_integer_value(json_object_get(out, "id")),
               name, json_string_value(json_object_get(out, "token")));
    json_decref(out);
    return rc ? 1 : 0;
}

int cmd_token(int argc, char **argv)
{
    const char *cmd = argc > 2 ? argv[2] : "";
    const char *path = cli_opt(argc, argv, "-c");
    struct config cfg;
    int rc;

    if (has(argc, argv, "--help") || strcmp(cmd, "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if ((strcmp(cmd, "add") && strcmp(cmd, "list") &&
         strcmp(cmd, "revoke")) || !path) {
        fputs(usage, stderr);
        return 2;
    }
    rc = cli_load(&cfg, path) ? 1 : run(cmd, argc, argv, &cfg);
    config_release(&cfg);
    return rc;
}
