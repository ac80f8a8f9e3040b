/* canned_db: the canned_replies table in PostgreSQL (sql/0004) — one
 * account's shared replies and each agent's personal ones: list, add,
 * change, remove, export and the all-or-nothing import, through lib/pg
 * only, parameterized. Who may write which row is decided here, in the
 * SQL (owner NULL: the caller is an admin and writes shared rows; else
 * the caller is that agent and writes its own rows only). Refusals are
 * rows of lib/refusal (scope REFUSAL_CANNED). Its connection is a new
 * one per request with lib/pg's PG_USE_REQUEST timeouts (connect 2 s,
 * statement 5 s), like the agents routes. */
#ifndef CANNED_DB_H
#define CANNED_DB_H

#include <stdint.h>

#include <jansson.h>

#include "canned.h"
#include "kf.h"
#include "pg.h"

struct refusal;

/* The detail of a failure: the refusal (NULL when none: a backend
 * failure) and the text for the log (may quote the server). */
struct canned_db_err {
    const struct refusal *why;
    char msg[256];
};

/* On success *out is new: close it with pg_close(). KF_EBACKEND. */
KF_WUR int canned_db_open(const char *dsn, struct pg_conn **out,
                          struct canned_db_err *err);

/* A reply as the API shows it:
 * {"id","scope":"shared"|"personal","owner":account|null,"folder",
 *  "title","text","sort","updated_at" (RFC 3339 UTC)}. */

/* The replies a caller sees, shared ones first, each list by folder,
 * sort, id: owner NULL the account's shared ones; else also owner's
 * personal ones. *out is a new array. */
KF_WUR int canned_db_list(struct pg_conn *db, const char *app_id,
                          const char *owner, json_t **out,
                          struct canned_db_err *err);
/* The rows of one list (owner NULL: shared; else owner's personal) for
 * an export, replacing l's contents. */
KF_WUR int canned_db_items(struct pg_conn *db, const char *app_id,
                           const char *owner, struct canned_list *l,
                           struct canned_db_err *err);
/* Adds it (checked by the caller) to owner's list (NULL: shared);
 * CANNED_FULL at CANNED_ROWS_MAX rows. *out is the new row. */
KF_WUR int canned_db_add(struct pg_conn *db, const char *app_id,
                         const char *owner, const struct canned_item *it,
                         json_t **out, struct canned_db_err *err);

enum {
    CANNED_SET_FOLDER = 1, CANNED_SET_TITLE = 2, CANNED_SET_TEXT = 4,
    CANNED_SET_SORT = 8,
};
/* Changes the fields in set of row id in owner's list (NULL: shared).
 * CANNED_UNKNOWN when the caller cannot see the row, CANNED_SHARED when
 * an agent names a shared one. *out is the row after. */
KF_WUR int canned_db_update(struct pg_conn *db, const char *app_id,
                            int64_t id, const char *owner, unsigned set,
                            const struct canned_item *it, json_t **out,
                            struct canned_db_err *err);
/* Removes row id from owner's list; refusals as canned_db_update. */
KF_WUR int canned_db_remove(struct pg_conn *db, const char *app_id,
                            int64_t id, const char *owner,
                            struct canned_db_err *err);
/* Adds every item of l to owner's list in one transaction (replace:
 * the list's rows are deleted first): all or nothing. CANNED_FULL when
 * the list would pass CANNED_ROWS_MAX. */
KF_WUR int canned_db_import(struct pg_conn *db, const char *app_id,
                            const char *owner, const struct canned_list *l,
                            int replace, struct canned_db_err *err);

#endif
