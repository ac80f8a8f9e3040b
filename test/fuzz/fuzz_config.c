/* fuzz_config: lib/config's INI parser. There is no in-memory entry
 * point, so each input is written to one temporary file (created once and
 * unlinked, rewritten per input) and read back through /proc/self/fd with
 * config_load(); the WXKF_*
 * environment overrides are out of scope and cleared at start. A
 * configuration that loads is then dumped (config_dump) and handed to
 * what a worker builds from it first — lib/route (its rules), lib/callback
 * (lib/wx_crypto's keys) and lib/store's URL parser.
 * Checks: a failure says where, "FILE:LINE: ..." or "FILE: ..."; what
 * config_load accepts, route_init, callback_init and store_init accept
 * too (config.h
 * and route.h promise the same syntax is validated at load time). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "callback.h"
#include "config.h"
#include "fuzz.h"
#include "store.h"

extern char **environ;

static char path[256];
static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    size_t i;

    (void)argc;
    (void)argv;
    /* no WXKF_* override may change what a file means */
    for (i = 0; environ[i];) {
        if (strncmp(environ[i], "WXKF_", 5) == 0) {
            char name[256];
            const char *eq = strchr(environ[i], '=');
            size_t n = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);

            if (n >= sizeof(name))
                abort();
            memcpy(name, environ[i], n);
            name[n] = '\0';
            unsetenv(name);
            continue;
        }
        i++;
    }
    /* tmpfs when there is one: a file is written per input */
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof(path), "%s/wxkf-fuzz-config-XXXXXX", tmp);
    fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        abort();
    }
    /* unlinked at once (nothing is left behind by a crash) and read back
     * through /proc */
    unlink(path);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return 0;
}

static void write_input(const uint8_t *data, size_t size)
{
    size_t off = 0;

    FZ_CHECK(ftruncate(fd, 0) == 0);
    while (off < size) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        FZ_CHECK(n > 0);
        off += (size_t)n;
    }
}

/* What a worker does with a loaded configuration before any request. */
static void use(const struct config *c)
{
    struct callback cb;
    struct route rt;
    struct store s;
    struct kf_buf dump;
    int rc;

    kf_buf_init(&dump, 1 << 20);
    FZ_CHECK(config_dump(c, &dump) == 0);
    FZ_CHECK(dump.len > 0 && strstr(dump.p, "wechat.app_id = ") != NULL);
    /* secrets stay hidden */
    FZ_CHECK(strstr(dump.p, "\nwechat.token = (set)\n") != NULL);
    FZ_CHECK(!*c->wechat.encoding_aes_key ||
             strstr(dump.p, "\nwechat.encoding_aes_key = (set)\n"));
    kf_buf_release(&dump);

    rc = store_init(&s, c->redis.url, c->wechat.app_id,
                    c->redis.connect_timeout_ms, c->redis.io_timeout_ms);
    /* the URL's syntax is not checked by config_load: either is fine */
    FZ_CHECK(rc == 0 || rc == KF_ECONFIG);
    s.next_try_ms = INT64_MAX;           /* never connect */
    rc = route_init(&rt, &s, c);
    if (rc != 0)
        fprintf(stderr, "config_load accepted what route_init refuses: "
                "%s\n", kf_strerror(rc));
    FZ_CHECK(rc == 0);
    rc = callback_init(&cb, c, &rt);
    if (rc != 0)
        fprintf(stderr, "config_load accepted what callback_init refuses: "
                "%s\n", kf_strerror(rc));
    FZ_CHECK(rc == 0);
    callback_release(&cb);
    callback_release(&cb);               /* safe twice */
    store_release(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    struct config_err err;
    int rc;

    write_input(data, size);
    config_init(&c);
    memset(&err, 'x', sizeof(err));
    rc = config_load(&c, path, &err);
    FZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
    if (rc < 0) {
        FZ_CHECK(rc == KF_ECONFIG || rc == KF_ENOMEM);
        FZ_CHECK(rc == KF_ENOMEM ||
                 (strncmp(err.msg, path, strlen(path)) == 0 &&
                  err.msg[strlen(path)] == ':'));
    } else {
        FZ_CHECK(rc == 0 && err.msg[0] == '\0');
        FZ_CHECK(*c.wechat.app_id && *c.wechat.token);
        use(&c);
    }
    config_release(&c);
    config_release(&c);                  /* safe twice */
    return 0;
}
