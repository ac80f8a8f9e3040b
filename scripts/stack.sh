#!/usr/bin/env bash
# shellcheck disable=SC2046,SC2086  # pid lists ($kids, $left, $(children ..)) are split on purpose
# wxkf — start/stop/status of one private stack: Redis, PostgreSQL, the
# FastCGI workers (spawn-fcgi + multiwatch) and nginx, all on 127.0.0.1 /
# unix sockets, everything (data, sockets, pid files, logs) under STACK_DIR.
#
#   scripts/stack.sh start|stop|status
#
# Environment (start):
#   STACK_DIR   required, absolute: holds redis/ pg/ nginx/ run/ logs/ (html/)
#   WXKF_BIN    absolute path of the wxkf binary (run as: WXKF_BIN fcgi -c WXKF_CONF)
#   WXKF_CONF   absolute path of the config file (written by the caller; never edited here)
#   PORT        nginx TCP port on LISTEN_ADDR
#   LISTEN_ADDR the IPv4 address nginx listens on (default 127.0.0.1; e.g. a
#               network namespace's own address: test/cluster runs this
#               script under `ip netns exec NS`)
#   REDIS_PORT  Redis TCP port on 127.0.0.1 (not needed with SKIP_REDIS=1)
#   PG_PORT     PostgreSQL TCP port on 127.0.0.1 (not needed with SKIP_PG=1)
#   WORKERS     number of FastCGI workers (default 2)
#   HTML_DIR    static console (default <repo>/nginx/html; if missing, an empty
#               STACK_DIR/html is served)
#   MAX_BODY    nginx client_max_body_size (= client_body_buffer_size), default 64k
#   SKIP_PG=1   do not start PostgreSQL (and do not migrate)
#   SKIP_REDIS=1  do not start Redis: WXKF_CONF names an external one
#   WXKF_PUSH_URL / WXKF_PUSH_SOCKET  [push] for the workers and jobs
#               (default: this stack's Nchan publisher; WXKF_PUSH_URL= turns
#               push off)
#   PG_FSYNC    on (default) | off  (off also sets synchronous_commit=off; for tests)
# stop and status need only STACK_DIR (they work from pid files).
#
# Exit status of start: 0 up; 3 a server could not bind its port because
# something else holds it (a listener, or the local end of a connection):
# run/bind-failed then names it, one NAME=PORT line (NAME: REDIS_PORT,
# PG_PORT or PORT), that server is not running, the ones before it are,
# and a start with another port for NAME completes the stack
# (scripts/run.sh and test/it do that once); 1 any other failure.
#
# Layout:  STACK_DIR/run/{redis.pid,multiwatch.pid,nginx.pid,wxkf.sock,stack.env}
#          STACK_DIR/logs/{redis,postgres,initdb,migrate,wxkf,nginx-error,nginx-access}.log
#          STACK_DIR/redis/ (AOF)  STACK_DIR/pg/{data,sock}/  STACK_DIR/nginx/nginx.conf
#
# start is idempotent (a component whose pid file names a live process of the
# right program is left alone); stop only signals pids from our pid files
# (never by name) and keeps all data. Every wait is bounded.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=stack

say()  { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die()  { printf '%s: ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

# show_log FILE [N]: the tail of a log, on stderr, after a failure.
show_log() {
    local f=$1 n=${2:-30}
    if [ -s "$f" ]; then
        printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
        tail -n "$n" "$f" >&2 || true
        printf -- '-----\n' >&2
    else
        printf '%s: (%s is empty or missing)\n' "$PROG" "$f" >&2
    fi
}

usage() {
    sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- settings
[ $# -eq 1 ] || usage
CMD=$1
case $CMD in start|stop|status) ;; -h|--help|help) usage ;; *) usage ;; esac

[ -n "${STACK_DIR:-}" ] || die "STACK_DIR is required (an absolute directory)"
case $STACK_DIR in /*) ;; *) die "STACK_DIR must be absolute: $STACK_DIR" ;; esac
STACK_DIR=${STACK_DIR%/}
[[ $STACK_DIR =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "STACK_DIR may only contain [A-Za-z0-9._/+-] (it goes into nginx.conf): $STACK_DIR"

RUN=$STACK_DIR/run
LOGS=$STACK_DIR/logs
REDIS_DIR=$STACK_DIR/redis
PG_DIR=$STACK_DIR/pg
PG_DATA=$PG_DIR/data
PG_SOCK=$PG_DIR/sock
NGX_DIR=$STACK_DIR/nginx
SOCK=$RUN/wxkf.sock
PUB_SOCK=$RUN/nchan-pub.sock
REDIS_PID=$RUN/redis.pid
MW_PID=$RUN/multiwatch.pid
JOBS_PID=$RUN/jobs.pid
JOBS_LOG=$STACK_DIR/logs/jobs.log
NGX_PID=$RUN/nginx.pid
PG_PID=$PG_DATA/postmaster.pid
WXKF_LOG=$LOGS/wxkf.log

WORKERS=${WORKERS:-2}
MAX_BODY=${MAX_BODY:-64k}
HTML_DIR=${HTML_DIR:-$REPO/nginx/html}
SKIP_PG_SET=${SKIP_PG+set}
SKIP_PG=${SKIP_PG:-0}
SKIP_REDIS_SET=${SKIP_REDIS+set}
SKIP_REDIS=${SKIP_REDIS:-0}
LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1}
[[ $LISTEN_ADDR =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "LISTEN_ADDR must be an IPv4 address (got '$LISTEN_ADDR')"
# where the probes reach nginx (0.0.0.0 = every address, loopback included)
PROBE_ADDR=$LISTEN_ADDR
[ "$PROBE_ADDR" != 0.0.0.0 ] || PROBE_ADDR=127.0.0.1
# Real-time push: the workers and `wxkf jobs` get this stack's Nchan
# publisher (PUB_SOCK) unless the environment sets WXKF_PUSH_URL itself
# (empty = push off; the consoles then poll the feed).
export WXKF_PUSH_URL=${WXKF_PUSH_URL-http://localhost/pub/}
export WXKF_PUSH_SOCKET=${WXKF_PUSH_SOCKET-$PUB_SOCK}
# Callbacks that arrive while Redis is unreachable are kept here (fsync'd)
# and replayed into Redis when it is back.
export WXKF_REDIS_JOURNAL_DIR=${WXKF_REDIS_JOURNAL_DIR-$STACK_DIR/journal}
PG_FSYNC=${PG_FSYNC:-on}

# The oldest nginx and Nchan wxkf works with (docs/operations.md,
# "Versions"; Redis and PostgreSQL are checked by wxkf itself).
NGINX_MIN=1.13.0    # TLSv1.3 in ssl_protocols (nginx/wxkf-production.conf)
NGINX_WHY='TLSv1.3 in ssl_protocols, $request_id, dynamic modules'
NCHAN_MIN=1.3.6     # the oldest tested (Debian 12's libnginx-mod-nchan)

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
PG_USER=postgres          # owner of the PostgreSQL files when we run as root
NGX_USER=nobody           # nginx worker user when we run as root
NGX_GROUP=$(id -gn "$NGX_USER" 2>/dev/null || echo nogroup)

pg_bindir() {
    local d
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    # the newest installed major version
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
        [ -x "$d/pg_ctl" ] && { echo "$d"; return; }
    done
    echo /usr/lib/postgresql/15/bin
}
PG_BIN=$(pg_bindir)

# ---------------------------------------------------------------- helpers
# pid_of PIDFILE COMM: print the pid if the file names a live process whose
# /proc/PID/comm is COMM (guards against a stale file and a recycled pid).
pid_of() {
    local f=$1 comm=$2 pid c
    [ -r "$f" ] || return 1
    pid=$(head -n 1 "$f" 2>/dev/null | tr -dc '0-9')
    [ -n "$pid" ] && [ "$pid" -gt 1 ] || return 1
    alive "$pid" || return 1
    c=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$c" = "$comm" ] || return 1
    echo "$pid"
}

# alive PID: the process exists and is not a zombie. (Daemons are reparented
# to PID 1, which on some machines, e.g. container inits, reaps only every
# couple of seconds: a zombie has exited and must count as gone.)
alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st:0:1}" != Z ]
}

# children PID: direct children of PID.
children() { ps -o pid= --ppid "$1" 2>/dev/null | xargs || true; }

# sock_holders PATH: pids holding the listening unix socket bound to PATH
# (the workers inherit it as fd 0; nobody else has it).
sock_holders() {
    ss -Hxlp "src $1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un | xargs || true
}

# file_holders FILE COMM: pids named COMM with FILE open (a path unique to
# this STACK_DIR, e.g. its nginx access log).
file_holders() {
    local f=$1 comm=$2 pid out=""
    # (f has no glob characters: safe_path allows only [A-Za-z0-9._/+-])
    for pid in $(find /proc/[0-9]*/fd -maxdepth 1 -lname "$f" 2>/dev/null | cut -d/ -f3 | sort -un); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && out="$out $pid"
    done
    printf '%s\n' "$out" | xargs || true
}

# kill_pids WHAT PID...: SIGTERM, bounded wait, SIGKILL what is left.
kill_pids() {
    local what=$1
    shift
    [ $# -gt 0 ] || return 0
    warn "$what: stopping leftover processes: $*"
    kill -TERM "$@" 2>/dev/null || true
    wait_until 5 none_alive "$@" || kill -KILL "$@" 2>/dev/null || true
    wait_until 3 none_alive "$@" || true
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s; bounded by count.
wait_until() {
    local secs=$1 i n
    shift
    n=$((secs * 10))
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    "$@"
}

gone() { ! alive "$1"; }
none_alive() { local p; for p; do alive "$p" && return 1; done; return 0; }

# Ports are not checked in advance: the server's own bind is the check
# (the local end of a connection holds a port as well as a listener does,
# and nothing that lists sockets beforehand closes the window before the
# bind). A bind refused with EADDRINUSE ends start with status 3.
BIND_RC=3

log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# bind_refused LOG OFFSET: LOG has, after its first OFFSET bytes, a line
# saying a bind failed because the address is in use.
bind_refused() { tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -q 'Address already in use'; }

# port_taken WHAT NAME PORT ADDR: report it (run/bind-failed) and exit 3.
port_taken() {
    printf '%s=%s\n' "$2" "$3" >"$RUN/bind-failed"
    printf '%s: ERROR: %s: %s:%s is taken by another socket (bind: Address already in use); start again with another %s\n' \
        "$PROG" "$1" "$4" "$3" "$2" >&2
    exit "$BIND_RC"
}

tcp_accepts() { timeout 1 bash -c 'exec 3<>"/dev/tcp/$2/$1"' _ "$1" "${2:-127.0.0.1}" 2>/dev/null; }

need_port() {
    local name=$1 val=${2:-}
    [[ $val =~ ^[0-9]+$ ]] && [ "$val" -ge 1 ] && [ "$val" -le 65535 ] ||
        die "$name must be a TCP port number (got '${val}')"
}

# Paths go into nginx.conf and command lines: keep them boring.
safe_path() {
    [[ $2 =~ ^/[A-Za-z0-9._/+-]*$ ]] || die "$1 contains characters stack.sh will not put in nginx.conf: $2"
}

# as_pg CMD...: run CMD as the PostgreSQL owner (postgres when we are root),
# from a directory that user can read.
as_pg() {
    if [ "$IS_ROOT" -eq 1 ]; then
        (cd "$PG_DIR" && runuser -u "$PG_USER" -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

# reachable_by USER DIR: (root only) make every directory from / down to DIR
# traversable by USER, adding o+x where it is missing (never read permission).
reachable_by() {
    local user=$1 path=$2 d="" part
    [ "$IS_ROOT" -eq 1 ] || return 0
    IFS=/ read -r -a parts <<<"${path#/}"
    for part in "${parts[@]}"; do
        [ -n "$part" ] || continue
        d=$d/$part
        [ -d "$d" ] || break
        if ! runuser -u "$user" -- test -x "$d" 2>/dev/null; then
            chmod o+x "$d"
            say "chmod o+x $d (so $user can reach $path)"
        fi
    done
}

# ---------------------------------------------------------------- Redis
redis_up() {
    pid_of "$REDIS_PID" redis-server >/dev/null &&
        [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

redis_refused() { bind_refused "$LOGS/redis.log" "$REDIS_LOG_OFF"; }
redis_settled() { redis_refused || redis_up; }

start_redis() {
    local pid
    if [ "$SKIP_REDIS" = 1 ]; then
        say "redis: skipped (SKIP_REDIS=1: the one in $WXKF_CONF)"
        return 0
    fi
    if pid=$(pid_of "$REDIS_PID" redis-server); then
        say "redis: already running (pid $pid)"
        return 0
    fi
    need_port REDIS_PORT "${REDIS_PORT:-}"
    mkdir -p "$REDIS_DIR"
    rm -f "$REDIS_PID"
    REDIS_LOG_OFF=$(log_size "$LOGS/redis.log")
    if ! redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
            --dir "$REDIS_DIR" --appendonly yes --appendfsync everysec --save "" \
            --daemonize yes --pidfile "$REDIS_PID" --logfile "$LOGS/redis.log" \
            </dev/null >>"$LOGS/redis.log" 2>&1; then
        redis_refused && port_taken redis REDIS_PORT "$REDIS_PORT" 127.0.0.1
        show_log "$LOGS/redis.log"
        die "redis: redis-server failed to start"
    fi
    # (daemonized: the server binds after redis-server has returned)
    if ! wait_until 10 redis_settled || redis_refused; then
        redis_refused && port_taken redis REDIS_PORT "$REDIS_PORT" 127.0.0.1
        show_log "$LOGS/redis.log"
        die "redis: no PONG on 127.0.0.1:$REDIS_PORT within 10 s"
    fi
    say "redis: started on 127.0.0.1:$REDIS_PORT (pid $(pid_of "$REDIS_PID" redis-server))"
}

stop_redis() {
    local pid
    if [ "$SKIP_REDIS" = 1 ] && [ ! -e "$REDIS_PID" ]; then
        say "redis: skipped (SKIP_REDIS=1)"
        return 0
    fi
    if ! pid=$(pid_of "$REDIS_PID" redis-server); then
        say "redis: not running"
        return 0
    fi
    # SIGTERM = SHUTDOWN with the configured save points (none): the AOF is
    # flushed and fsynced, no RDB is written.
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 15 gone "$pid"; then
        warn "redis: pid $pid still alive after 15 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 5 gone "$pid" || true
    fi
    rm -f "$REDIS_PID"
    say "redis: stopped (pid $pid)"
}

# ---------------------------------------------------------------- PostgreSQL
psql_wxkf() {
    timeout 20 psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U wxkf "$@"
}

start_pg() {
    local pid opts exists off
    if [ "$SKIP_PG" = 1 ]; then
        say "postgres: skipped (SKIP_PG=1)"
        return 0
    fi
    need_port PG_PORT "${PG_PORT:-}"
    [ -x "$PG_BIN/pg_ctl" ] || die "postgres: $PG_BIN/pg_ctl not found (install postgresql, or set PG_BIN)"

    if pid=$(pid_of "$PG_PID" postgres); then
        say "postgres: already running (pid $pid)"
    else
        mkdir -p "$PG_DIR" "$PG_SOCK"
        if [ "$IS_ROOT" -eq 1 ]; then
            id "$PG_USER" >/dev/null 2>&1 || die "postgres: user '$PG_USER' does not exist (install postgresql)"
            chown "$PG_USER:" "$PG_DIR" "$PG_SOCK"
            chmod 0700 "$PG_DIR"
            reachable_by "$PG_USER" "$PG_DIR"
        fi
        if [ ! -s "$PG_DATA/PG_VERSION" ]; then
            : >"$LOGS/initdb.log"
            if [ "$IS_ROOT" -eq 1 ]; then chown "$PG_USER:" "$LOGS/initdb.log"; fi
            if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U wxkf -E UTF8 \
                    --locale=C.UTF-8 >>"$LOGS/initdb.log" 2>&1; then
                # Old or minimal systems without C.UTF-8: plain C collation.
                rm -rf "$PG_DATA"
                if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U wxkf -E UTF8 \
                        --locale=C >>"$LOGS/initdb.log" 2>&1; then
                    show_log "$LOGS/initdb.log"
                    die "postgres: initdb failed"
                fi
            fi
            say "postgres: initialised $PG_DATA (superuser wxkf, trust auth, loopback only)"
        fi
        touch "$LOGS/postgres.log"
        off=$(log_size "$LOGS/postgres.log")
        if [ "$IS_ROOT" -eq 1 ]; then chown "$PG_USER:" "$LOGS/postgres.log"; fi
        opts="-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1"
        case $PG_FSYNC in
            off) opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off" ;;
            on) ;;
            *) die "PG_FSYNC must be on or off (got '$PG_FSYNC')" ;;
        esac
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$LOGS/postgres.log" -o "$opts" \
                -w -t 30 start </dev/null >/dev/null 2>>"$LOGS/postgres.log"; then
            bind_refused "$LOGS/postgres.log" "$off" && port_taken postgres PG_PORT "$PG_PORT" 127.0.0.1
            show_log "$LOGS/postgres.log"
            die "postgres: pg_ctl start failed (or not ready within 30 s)"
        fi
        pid=$(pid_of "$PG_PID" postgres) || { show_log "$LOGS/postgres.log"; die "postgres: started but no live postmaster.pid"; }
        say "postgres: started on 127.0.0.1:$PG_PORT (pid $pid, fsync=$PG_FSYNC)"
    fi

    if ! exists=$(psql_wxkf -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'wxkf'" 2>&1); then
        printf '%s\n' "$exists" >&2
        show_log "$LOGS/postgres.log"
        die "postgres: cannot connect as wxkf on 127.0.0.1:$PG_PORT"
    fi
    if [ "$exists" != 1 ]; then
        psql_wxkf -d postgres -c "CREATE DATABASE wxkf" || die "postgres: CREATE DATABASE wxkf failed"
        say "postgres: created database wxkf"
    fi
}

migrate() {
    [ "$SKIP_PG" = 1 ] && return 0
    if timeout 10 env -u WXKF_BIN -u WXKF_CONF "$WXKF_BIN" migrate --help >/dev/null 2>&1 </dev/null; then
        say "migrate: $WXKF_BIN migrate -c $WXKF_CONF"
        if ! (cd "$REPO" && timeout 300 env -u WXKF_BIN -u WXKF_CONF \
                "$WXKF_BIN" migrate -c "$WXKF_CONF") </dev/null >>"$LOGS/migrate.log" 2>&1; then
            show_log "$LOGS/migrate.log"
            die "migrate: failed"
        fi
    else
        say "migrate: skipped ('$WXKF_BIN migrate --help' did not succeed: no migrate subcommand yet)"
    fi
}

stop_pg() {
    local pid
    if ! pid=$(pid_of "$PG_PID" postgres); then
        say "postgres: not running"
        return 0
    fi
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop </dev/null >/dev/null 2>>"$LOGS/postgres.log"; then
        warn "postgres: pg_ctl stop -m fast failed, sending SIGQUIT (immediate shutdown) to $pid"
        kill -QUIT "$pid" 2>/dev/null || true
        if ! wait_until 10 gone "$pid"; then
            warn "postgres: pid $pid still alive, sending SIGKILL to it and its children"
            kill -KILL $(children "$pid") "$pid" 2>/dev/null || true
        fi
    fi
    say "postgres: stopped (pid $pid)"
}

# ---------------------------------------------------------------- workers
count_children() { local c; c=$(children "$1"); set -- $c; echo $#; }

workers_up() {
    local pid
    pid=$(pid_of "$MW_PID" multiwatch) || return 1
    [ -S "$SOCK" ] && [ "$(count_children "$pid")" -ge "$WORKERS" ]
}

start_workers() {
    local pid sockopts out
    if pid=$(pid_of "$MW_PID" multiwatch); then
        say "workers: already running (multiwatch pid $pid, $(count_children "$pid") workers)"
        return 0
    fi
    [[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive number (got '$WORKERS')"
    rm -f "$SOCK" "$MW_PID"
    if [ "$IS_ROOT" -eq 1 ]; then
        # nginx workers run as nobody:nogroup: give the socket to that group only.
        sockopts=(-M 0660 -G "$NGX_GROUP")
    else
        sockopts=(-M 0600)
    fi
    # spawn-fcgi points the child's stdout/stderr at /dev/null: the sh wrapper
    # re-opens them on wxkf.log (fd 0, the listening socket, stays) and then execs multiwatch (same pid, which
    # spawn-fcgi writes to the pid file); workers inherit them.
    if ! out=$(env -u WXKF_BIN -u WXKF_CONF \
            spawn-fcgi -s "$SOCK" "${sockopts[@]}" -P "$MW_PID" -- \
            /bin/sh -c 'log=$1; shift; exec "$@" >>"$log" 2>&1' sh "$WXKF_LOG" \
            /usr/bin/multiwatch -f "$WORKERS" -s TERM -- "$WXKF_BIN" fcgi -c "$WXKF_CONF" 2>&1 </dev/null); then
        printf '%s\n' "$out" >&2
        show_log "$WXKF_LOG"
        die "workers: spawn-fcgi failed"
    fi
    if ! wait_until 10 workers_up; then
        printf '%s\n' "$out" >&2
        show_log "$WXKF_LOG"
        die "workers: $WORKERS workers not up under multiwatch within 10 s"
    fi
    pid=$(pid_of "$MW_PID" multiwatch)
    say "workers: started $WORKERS x $WXKF_BIN fcgi (multiwatch pid $pid, socket $SOCK)"
}

stop_workers() {
    local pid kids left p
    if ! pid=$(pid_of "$MW_PID" multiwatch); then
        # multiwatch itself may have been killed: its orphaned workers still
        # hold our socket.
        kill_pids workers $(sock_holders "$SOCK")
        say "workers: not running"
        rm -f "$SOCK" "$MW_PID"
        return 0
    fi
    kids=$(children "$pid")
    # multiwatch forwards SIGTERM to its children (-s TERM) and exits after them.
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until 10 gone "$pid"; then
        warn "workers: multiwatch $pid still alive after 10 s, sending SIGKILL to its process group"
        # spawn-fcgi made multiwatch a session/group leader: the group is exactly
        # multiwatch and its workers.
        if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then
            kill -KILL -- "-$pid" 2>/dev/null || true
        else
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait_until 5 gone "$pid" || true
    fi
    left=""
    for p in $kids; do alive "$p" && left="$left $p"; done
    if [ -n "$left" ]; then
        wait_until 3 none_alive $left || {
            warn "workers: killing leftover workers:$left"
            kill -KILL $left 2>/dev/null || true
        }
    fi
    kill_pids workers $(sock_holders "$SOCK")
    rm -f "$SOCK" "$MW_PID"
    say "workers: stopped (multiwatch pid $pid)"
}

# ---------------------------------------------------------------- nginx
render_nginx_conf() {
    local tpl=$REPO/nginx/wxkf.conf.in conf=$NGX_DIR/nginx.conf text user_line left
    [ -r "$tpl" ] || die "nginx: template $tpl not found"
    if [ "$IS_ROOT" -eq 1 ]; then
        user_line="user $NGX_USER $NGX_GROUP;"
    else
        user_line="# user: (not root: workers run as $(id -un))"
    fi
    text=$(<"$tpl")
    text=${text//@USER_LINE@/"$user_line"}
    text=${text//@PID_FILE@/"$NGX_PID"}
    text=${text//@LOG_DIR@/"$LOGS"}
    text=${text//@TEMP_DIR@/"$NGX_DIR/tmp"}
    text=${text//@PORT@/"$PORT"}
    text=${text//@MAX_BODY@/"$MAX_BODY"}
    text=${text//@SOCK@/"$SOCK"}
    text=${text//@HTML_DIR@/"$HTML_DIR"}
    text=${text//@PUB_SOCK@/"$PUB_SOCK"}
    if [ "$LISTEN_ADDR" != 127.0.0.1 ]; then
        # The template listens on loopback; LISTEN_ADDR moves that listener.
        grep -q "^[[:space:]]*listen 127\.0\.0\.1:$PORT;" <<<"$text" ||
            die "nginx: template has no 'listen 127.0.0.1:@PORT@;' line for LISTEN_ADDR to replace"
        text=${text//"listen 127.0.0.1:$PORT;"/"listen $LISTEN_ADDR:$PORT;"}
    fi
    left=$(grep -v '^[[:space:]]*#' <<<"$text" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ' || true)
    [ -z "$left" ] || die "nginx: template has placeholders stack.sh does not know: $left"
    printf '%s\n' "$text" >"$conf.tmp"
    mv -f "$conf.tmp" "$conf"
}

nginx_up() { pid_of "$NGX_PID" nginx >/dev/null && tcp_accepts "$PORT" "$PROBE_ADDR"; }

start_nginx() {
    local pid out off conf=$NGX_DIR/nginx.conf
    if pid=$(pid_of "$NGX_PID" nginx); then
        say "nginx: already running (pid $pid)"
        return 0
    fi
    need_port PORT "${PORT:-}"
    [[ $MAX_BODY =~ ^[0-9]+[kKmM]?$ ]] || die "MAX_BODY must look like 65536, 64k or 1m (got '$MAX_BODY')"
    mkdir -p "$NGX_DIR/tmp"
    [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] ||
        die "nginx: the Nchan module is missing (apt-get install libnginx-mod-nchan, or make deps)"
    render_nginx_conf
    rm -f "$NGX_PID" "$PUB_SOCK"    # a stale socket after a crash blocks the listen
    if ! out=$(nginx -t -q -p "$NGX_DIR/" -c "$conf" -e "$LOGS/nginx-error.log" 2>&1 </dev/null); then
        printf '%s\n' "$out" >&2
        die "nginx: configuration test failed ($conf)"
    fi
    off=$(log_size "$LOGS/nginx-error.log")
    if ! out=$(nginx -p "$NGX_DIR/" -c "$conf" -e "$LOGS/nginx-error.log" 2>&1 </dev/null); then
        printf '%s\n' "$out" >&2
        bind_refused "$LOGS/nginx-error.log" "$off" && port_taken nginx PORT "$PORT" "$LISTEN_ADDR"
        show_log "$LOGS/nginx-error.log"
        die "nginx: failed to start"
    fi
    if ! wait_until 10 nginx_up; then
        show_log "$LOGS/nginx-error.log"
        die "nginx: $LISTEN_ADDR:$PORT not accepting within 10 s"
    fi
    say "nginx: started on http://$LISTEN_ADDR:$PORT/ (pid $(pid_of "$NGX_PID" nginx))"
}

stop_nginx() {
    local pid kids left p
    if ! pid=$(pid_of "$NGX_PID" nginx); then
        # A killed master leaves its workers (still serving our port).
        kill_pids nginx $(file_holders "$LOGS/nginx-access.log" nginx)
        say "nginx: not running"
        return 0
    fi
    kids=$(children "$pid")
    kill -QUIT "$pid" 2>/dev/null || true          # = nginx -s quit (graceful)
    if ! wait_until 10 gone "$pid"; then
        warn "nginx: master $pid still alive after 10 s of graceful quit, sending SIGTERM"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_until 5 gone "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            wait_until 3 gone "$pid" || true
        fi
    fi
    left=""
    for p in $kids; do alive "$p" && left="$left $p"; done
    if [ -n "$left" ]; then
        wait_until 3 none_alive $left || {
            warn "nginx: killing leftover nginx workers:$left"
            kill -KILL $left 2>/dev/null || true
        }
    fi
    kill_pids nginx $(file_holders "$LOGS/nginx-access.log" nginx)
    rm -f "$NGX_PID"
    say "nginx: stopped (pid $pid)"
}

# First request through the whole chain: nginx -> socket -> a worker. Any HTTP
# status but 502/504 means a worker answered (the route may well be 404/503).
probe_chain() {
    local code
    command -v curl >/dev/null 2>&1 || { say "probe: curl not installed, skipped"; return 0; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$PROBE_ADDR:$PORT/healthz" 2>/dev/null || true)
    case $code in
        502|504|000|"")
            show_log "$WXKF_LOG"
            show_log "$LOGS/nginx-error.log" 10
            die "probe: GET /healthz through nginx gave '${code}': the workers do not answer"
            ;;
    esac
    say "probe: GET http://$PROBE_ADDR:$PORT/healthz -> $code"
}

# ---------------------------------------------------------------- commands
# A component that is already running keeps the port it was started with:
# report that port (stack.env, probe) rather than the one asked for now.
keep_running_ports() {
    local f=$RUN/stack.env old
    [ -r "$f" ] || return 0
    if pid_of "$NGX_PID" nginx >/dev/null; then
        old=$(sed -n 's/^PORT=//p' "$f")
        if [ -n "$old" ] && [ "$old" != "$PORT" ]; then
            warn "nginx: already running on port $old, not $PORT (stop the stack to change it)"
            PORT=$old
        fi
    fi
    if [ "$SKIP_REDIS" != 1 ] && pid_of "$REDIS_PID" redis-server >/dev/null; then
        old=$(sed -n 's/^REDIS_PORT=//p' "$f")
        if [ -n "$old" ] && [ "$old" != "$REDIS_PORT" ]; then
            warn "redis: already running on port $old, not $REDIS_PORT (stop the stack to change it)"
            REDIS_PORT=$old
        fi
    fi
    if [ "$SKIP_PG" != 1 ] && pid_of "$PG_PID" postgres >/dev/null; then
        old=$(sed -n 's/^PG_PORT=//p' "$f")
        if [ -n "$old" ] && [ "$old" != "$PG_PORT" ]; then
            warn "postgres: already running on port $old, not $PG_PORT (stop the stack to change it)"
            PG_PORT=$old
        fi
    fi
}

# `wxkf jobs`: the sweeper (session expiry, heartbeats, queues). NO_JOBS=1
# leaves it out (a test that drives sweeps itself).
start_jobs() {
    local pid
    if [ "${NO_JOBS:-0}" = 1 ]; then
        say "jobs: not started (NO_JOBS=1)"
        return 0
    fi
    if pid=$(pid_of "$JOBS_PID" wxkf); then
        say "jobs: already running (pid $pid)"
        return 0
    fi
    env -u WXKF_BIN -u WXKF_CONF setsid "$WXKF_BIN" jobs -c "$WXKF_CONF" \
        >>"$JOBS_LOG" 2>&1 </dev/null &
    echo $! >"$JOBS_PID"
    sleep 0.2
    if ! pid=$(pid_of "$JOBS_PID" wxkf); then
        show_log "$JOBS_LOG"
        die "jobs: wxkf jobs exited at once"
    fi
    say "jobs: started (pid $pid)"
}

stop_jobs() {
    local pid
    if ! pid=$(pid_of "$JOBS_PID" wxkf); then
        say "jobs: not running"
        rm -f "$JOBS_PID"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    wait_until 10 gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    wait_until 3 gone "$pid" || true
    rm -f "$JOBS_PID"
    say "jobs: stopped (pid $pid)"
}

# version_ge A B: A >= B (dotted numbers).
version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]; }

# nginx from `nginx -v`; Nchan (a dynamic module that does not say its
# version) from Debian's package, when dpkg knows it.
check_versions() {
    local v
    v=$(nginx -v 2>&1 </dev/null) || true
    v=${v##*nginx/}
    v=${v%%[!0-9.]*}
    [[ $v =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] ||
        die "nginx: cannot read its version from 'nginx -v'"
    version_ge "$v" "$NGINX_MIN" ||
        die "nginx $v is too old: wxkf needs >= $NGINX_MIN ($NGINX_WHY)"
    command -v dpkg-query >/dev/null 2>&1 || return 0
    v=$(dpkg-query -W -f '${Version}' libnginx-mod-nchan 2>/dev/null </dev/null) || return 0
    v=${v#*:}
    v=${v%%[!0-9.]*}
    [[ $v =~ ^[0-9]+\.[0-9]+ ]] || return 0
    version_ge "$v" "$NCHAN_MIN" ||
        die "nchan $v is too old: wxkf needs >= $NCHAN_MIN (the oldest tested)"
}

do_start() {
    [ -n "${WXKF_BIN:-}" ] || die "WXKF_BIN is required"
    [ -n "${WXKF_CONF:-}" ] || die "WXKF_CONF is required"
    case $WXKF_BIN in /*) ;; *) die "WXKF_BIN must be absolute: $WXKF_BIN" ;; esac
    case $WXKF_CONF in /*) ;; *) die "WXKF_CONF must be absolute: $WXKF_CONF" ;; esac
    [ -x "$WXKF_BIN" ] || die "WXKF_BIN is not an executable file: $WXKF_BIN"
    [ -r "$WXKF_CONF" ] || die "WXKF_CONF is not readable: $WXKF_CONF"
    safe_path STACK_DIR "$STACK_DIR"
    # sun_path holds 107 bytes; PostgreSQL's socket name adds 17.
    [ ${#SOCK} -le 100 ] || die "STACK_DIR is too long for a unix socket path: $SOCK"
    [ ${#PG_SOCK} -le 85 ] || die "STACK_DIR is too long for PostgreSQL's socket path: $PG_SOCK"
    need_port PORT "${PORT:-}"
    [ "$SKIP_REDIS" = 1 ] || need_port REDIS_PORT "${REDIS_PORT:-}"
    [ "$SKIP_PG" = 1 ] || need_port PG_PORT "${PG_PORT:-}"
    for c in redis-server redis-cli spawn-fcgi nginx ss; do
        command -v "$c" >/dev/null 2>&1 || die "$c is not installed (run: make deps)"
    done
    [ -x /usr/bin/multiwatch ] || die "/usr/bin/multiwatch is not installed (run: make deps)"
    check_versions

    mkdir -p "$STACK_DIR" "$RUN" "$LOGS" "$NGX_DIR"
    rm -f "$RUN/bind-failed"
    if [ ! -d "$HTML_DIR" ]; then
        HTML_DIR=$STACK_DIR/html
        mkdir -p "$HTML_DIR"
    fi
    safe_path HTML_DIR "$HTML_DIR"
    chmod 0755 "$LOGS"
    # run/ holds the FastCGI socket and Nchan's publisher socket (which
    # nginx makes 0666): only this stack's nginx workers may enter it.
    if [ "$IS_ROOT" -eq 1 ]; then
        chgrp "$NGX_GROUP" "$RUN"
        chmod 0750 "$RUN"
    else
        chmod 0700 "$RUN"
    fi
    reachable_by "$NGX_USER" "$RUN"
    reachable_by "$NGX_USER" "$HTML_DIR"
    touch "$WXKF_LOG"

    keep_running_ports
    {
        echo "# written by scripts/stack.sh start at $(date -u +%FT%TZ); informational"
        printf 'PORT=%s\nREDIS_PORT=%s\nPG_PORT=%s\nWORKERS=%s\nWXKF_BIN=%s\nWXKF_CONF=%s\nHTML_DIR=%s\nSKIP_PG=%s\nSKIP_REDIS=%s\nLISTEN_ADDR=%s\n' \
            "$PORT" "${REDIS_PORT:-}" "${PG_PORT:-}" "$WORKERS" "$WXKF_BIN" "$WXKF_CONF" "$HTML_DIR" "$SKIP_PG" "$SKIP_REDIS" "$LISTEN_ADDR"
    } >"$RUN/stack.env"

    start_redis
    start_pg
    migrate
    start_workers
    start_jobs
    start_nginx
    probe_chain
    say "up: http://$LISTEN_ADDR:$PORT/  (logs in $LOGS)"
}

do_stop() {
    if [ ! -d "$STACK_DIR" ]; then
        say "nothing to stop ($STACK_DIR does not exist)"
        return 0
    fi
    # Front to back: no new requests, then workers, then their stores.
    stop_nginx
    stop_jobs
    stop_workers
    stop_redis
    stop_pg
}

do_status() {
    local pid all=0 port="" rport="" pport=""
    if [ -r "$RUN/stack.env" ]; then
        port=$(sed -n 's/^PORT=//p' "$RUN/stack.env")
        rport=$(sed -n 's/^REDIS_PORT=//p' "$RUN/stack.env")
        pport=$(sed -n 's/^PG_PORT=//p' "$RUN/stack.env")
        # A stack started with SKIP_PG=1 reports postgres as skipped.
        [ -n "$SKIP_PG_SET" ] || SKIP_PG=$(sed -n 's/^SKIP_PG=//p' "$RUN/stack.env")
        [ -n "$SKIP_REDIS_SET" ] || SKIP_REDIS=$(sed -n 's/^SKIP_REDIS=//p' "$RUN/stack.env")
        LISTEN_ADDR=$(sed -n 's/^LISTEN_ADDR=//p' "$RUN/stack.env")
        LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1}
    fi
    line() { printf '%-9s %-5s %s\n' "$1" "$2" "$3"; }
    if [ "$SKIP_REDIS" = 1 ]; then line redis skip "(SKIP_REDIS=1)"
    elif pid=$(pid_of "$REDIS_PID" redis-server); then line redis up "pid $pid 127.0.0.1:$rport"
    else line redis down ""; all=1; fi
    if [ "$SKIP_PG" = 1 ]; then line postgres skip "(SKIP_PG=1)"
    elif pid=$(pid_of "$PG_PID" postgres); then line postgres up "pid $pid 127.0.0.1:$pport"
    else line postgres down ""; all=1; fi
    if pid=$(pid_of "$MW_PID" multiwatch); then
        line workers up "multiwatch pid $pid, workers: $(children "$pid")"
    else line workers down ""; all=1; fi
    if pid=$(pid_of "$JOBS_PID" wxkf); then line jobs up "pid $pid"
    else line jobs down ""; fi
    if pid=$(pid_of "$NGX_PID" nginx); then line nginx up "pid $pid http://$LISTEN_ADDR:$port/"
    else line nginx down ""; all=1; fi
    return $all
}

case $CMD in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
esac
