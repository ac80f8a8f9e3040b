/* log: key=value lines with a request id. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "banned.h"

static const char *const names[] = { "error", "warn", "info", "debug" };

int log_open(struct log *l, const char *file, const char *level)
{
    size_t i;

    l->fd = 2;
    l->owns_fd = 0;
    l->level = LOG_INFO;
    l->pid = (long)getpid();
    l->rid[0] = '-';
    l->rid[1] = '\0';
    for (i = 0; level && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(level, names[i]) == 0)
            l->level = (enum log_level)i;
    if (file && *file) {
        int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

        if (fd < 0)
            return KF_EIO;
        l->fd = fd;
        l->owns_fd = 1;
    }
    return 0;
}

void log_close(struct log *l)
{
    if (l->owns_fd && l->fd >= 0)
        close(l->fd);
    l->fd = 2;
    l->owns_fd = 0;
}

static int safe_char(unsigned char c, int rid)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '_' || c == '-')
        return 1;
    return !rid && c && strchr("@.:/+", c) != NULL;
}

static const char *copy_safe(char *out, size_t n, struct kf_str s, int rid)
{
    size_t i, m;

    if (n == 0)
        return out;
    m = s.len < n - 1 ? s.len : n - 1;
    for (i = 0; i < m; i++)
        out[i] = safe_char((unsigned char)s.p[i], rid) ? s.p[i] : '?';
    out[m] = '\0';
    return out;
}

const char *log_safe(char *out, size_t n, struct kf_str s)
{
    return copy_safe(out, n, s, 0);
}

void log_for_request(struct log *l, const struct log *base, struct kf_str rid)
{
    l->fd = base->fd;
    l->owns_fd = 0;
    l->level = base->level;
    l->pid = base->pid;
    if (rid.len == 0)
        rid = KF_STR("-");
    copy_safe(l->rid, sizeof(l->rid), rid, 1);
}

void log_write(const struct log *l, enum log_level lvl, const char *mod,
               const char *ev, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    k = snprintf(line, sizeof(line),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s pid=%ld "
                 "rid=%s mod=%s ev=%s",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[lvl],
                 l->pid, l->rid, mod, ev);
    n = k < 0 ? 0 : (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1;
    if (fmt && *fmt && n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, fmt);
        k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (k > 0)
            n += (size_t)k < sizeof(line) - n ? (size_t)k
                                               : sizeof(line) - n - 1;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    while (write(l->fd, line, n) < 0 && errno == EINTR)
        ;
}
