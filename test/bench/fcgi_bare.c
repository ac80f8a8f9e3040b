/*
 * fcgi_bare — the smallest possible libfcgi responder.
 *
 * Answers every request with 200 "success" and does nothing else: no
 * parsing, no Redis, no PostgreSQL. It is the "ceiling" of the benchmark
 * (nginx -> unix socket -> libfcgi round trip) and a stand-in worker for
 * checking scripts/stack.sh before the real wxkf binary exists.
 *
 * Build:  cc -O2 test/bench/fcgi_bare.c $(pkg-config --cflags --libs fcgi) -o fcgi_bare
 * Run:    under spawn-fcgi (the listening socket is fd 0), any arguments are ignored.
 *
 * SIGTERM/SIGINT: finish the request in hand (if any), then exit 0.
 * The handler sets libfcgi's shutdown flag so a worker blocked in
 * accept() returns instead of retrying on EINTR.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcgiapp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1;
    FCGX_ShutdownPending(); /* only stores a flag inside libfcgi */
}

int main(int argc, char **argv)
{
    static const char reply[] =
        "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nsuccess";
    FCGX_Request req;
    struct sigaction sa;

    (void)argc;
    (void)argv;
    /* as wxkf does: no lingering close (the input is read to its end) */
    setenv("LIBFCGI_OS_CLOSE_POLL_TIMEOUT", "0", 0);
    if (FCGX_Init() != 0)
        return 1;

    /* After FCGX_Init, so ours wins; no SA_RESTART so accept() sees EINTR. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    if (FCGX_InitRequest(&req, 0, 0) != 0)
        return 1;
    while (!stop_requested && FCGX_Accept_r(&req) >= 0) {
        char junk[4096];

        while (FCGX_GetStr(junk, sizeof junk, req.in) > 0)
            ;
        FCGX_PutStr(reply, (int)(sizeof reply - 1), req.out);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    return 0;
}
