/* log: one line per event, `ts=… lvl=… rid=… mod=… ev=… k=v…`, written
 * with a single write(2) to an O_APPEND file (or stderr), so lines from
 * many worker processes never interleave. The level is checked before
 * formatting. Secrets and message bodies are never passed here. */
#ifndef LOG_H
#define LOG_H

#include "kf.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

struct log {
    int fd;          /* owned when owns_fd */
    int owns_fd;
    enum log_level level;
    char rid[64];    /* request id, "-" outside a request */
    long pid;        /* the process's, read once at log_open */
};

/* file NULL or "" = stderr. level is "error|warn|info|debug". */
KF_WUR int log_open(struct log *l, const char *file, const char *level);
void log_close(struct log *l);                    /* safe twice */
/* Copies the sink of base into l with the given request id (sanitized:
 * only [A-Za-z0-9_-], at most 63 bytes). Borrowed fd: close base only. */
void log_for_request(struct log *l, const struct log *base, struct kf_str rid);

void log_write(const struct log *l, enum log_level lvl, const char *mod,
               const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG_AT(l, lvl, ...) \
    do { if ((l)->level >= (lvl)) log_write((l), (lvl), __VA_ARGS__); } while (0)
#define log_error(l, ...) LOG_AT(l, LOG_ERROR, __VA_ARGS__)
#define log_warn(l, ...) LOG_AT(l, LOG_WARN, __VA_ARGS__)
#define log_info(l, ...) LOG_AT(l, LOG_INFO, __VA_ARGS__)
#define log_debug(l, ...) LOG_AT(l, LOG_DEBUG, __VA_ARGS__)

/* Copies s into out (size n) keeping only bytes safe in a log value
 * ([A-Za-z0-9@._:/+-]); others become '?'. Truncates. Returns out. */
const char *log_safe(char *out, size_t n, struct kf_str s);

#endif
