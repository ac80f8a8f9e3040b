/* label: the labels an account's admins define for wrap-ups (售后, 退款,
 * …): a name (1..LABEL_NAME_CHARS characters of Unicode) and a colour
 * (#rrggbb), kept per account in PostgreSQL (table labels, keyed by
 * app_id: sql/0006_wrapup.sql). The checks of both as untrusted input,
 * the list, create, change and remove, and the names of the labels an
 * agent picks when closing a session (they travel in the close event and
 * are kept on the session by name: docs/history.md). Each verb takes a
 * connection the caller opened (label_open: a request's timeouts) and
 * hands back a refusal row of scope REFUSAL_LABEL in *why. */
#ifndef LABEL_H
#define LABEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kf.h"
#include "refusal.h"

#define LABEL_NAME_CHARS 20         /* characters (code points) */
#define LABEL_NAME_SIZE 81          /* bytes, with the NUL */
#define LABELS_MAX 100              /* per account */
#define LABELS_PER_SESSION 5

struct pg_conn;                     /* lib/pg */

/* 0 when name is a label name: UTF-8, 1..LABEL_NAME_CHARS characters, no
 * control characters, not starting or ending with a space. Else
 * KF_EINVAL; *why (NULL ok) says why for the API. */
KF_WUR int label_check_name(const char *name, const char **why);
/* 0 when color is "#" and 6 hex digits (either case); out (8 bytes) gets
 * it in lower case. Else KF_EINVAL. */
KF_WUR int label_check_color(const char *color, char *out);

/* A connection with a request's timeouts (PG_USE_REQUEST); pg_close()
 * it. KF_EBACKEND. */
KF_WUR int label_open(const char *dsn, struct pg_conn **out);

/* The verbs. A label is {"id","name","color"}. Errors: KF_EBACKEND,
 * KF_ENOMEM, KF_EIO, and the refusals (*why set): KF_EINVAL bad name or
 * colour, KF_ENOTFOUND no such label, KF_EEXISTS the name is taken,
 * KF_ETOOBIG the account has LABELS_MAX labels. */

/* {"labels":[label...]} of app_id, oldest first. */
KF_WUR int label_list(struct pg_conn *db, const char *app_id, json_t **out);
/* The new label in *out. */
KF_WUR int label_create(struct pg_conn *db, const char *app_id,
                        const char *name, const char *color, json_t **out,
                        const struct refusal **why);
/* name and/or color (NULL: unchanged); the label as it is now in *out.
 * A label's new name does not change sessions closed before. */
KF_WUR int label_update(struct pg_conn *db, const char *app_id, int64_t id,
                        const char *name, const char *color, json_t **out,
                        const struct refusal **why);
KF_WUR int label_delete(struct pg_conn *db, const char *app_id, int64_t id,
                        const struct refusal **why);
/* The names of labels ids[0..n) (n <= LABELS_PER_SESSION, no id twice)
 * of app_id, in that order, as a new JSON array in *out; KF_ENOTFOUND
 * when one is not app_id's. */
KF_WUR int label_names(struct pg_conn *db, const char *app_id,
                       const int64_t *ids, size_t n, json_t **out,
                       const struct refusal **why);

#endif
