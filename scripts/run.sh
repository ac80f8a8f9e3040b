#!/bin/sh
# wxkf — `make run` / `make stop`: the whole stack for a developer, in var/.
#
#   sh scripts/run.sh start     # generate var/wxkf.conf once, start everything
#   sh scripts/run.sh stop      # stop everything started by start; keeps var/
#
# Environment:
#   PORT           nginx port on 127.0.0.1 (default 8080)
#   SIM_PORT       port of the WeChat simulator the sandbox config points at (default 8089)
#   WXKF_BIN       the wxkf binary (default <repo>/build/rel/wxkf)
#   WORKERS        FastCGI workers (default 2)
#   PG_FSYNC       on (default) | off
#   SIMULATOR_CMD  hook: a command that runs the WeChat simulator in the
#                  foreground (it gets SIM_PORT in its environment). Empty (the
#                  default): in sandbox mode (no app_secret in the config, or
#                  api_base on 127.0.0.1/localhost) the bundled simulator
#                  test/sim/wechat_api_sim.py is started with the config's
#                  credentials and --callback http://127.0.0.1:$PORT/wechat;
#                  with real credentials nothing is started. "none": never
#                  start one. Either way it runs in the background with its pid
#                  in var/run/simulator.pid, logs to var/logs/simulator.log and
#                  is stopped by `stop`.
#
# Files: var/wxkf.conf (sandbox config, generated only if missing; edit freely),
#        var/admin.token (0600, issued together with the config),
#        var/agent.token (0600: a first agent, kf001@sandbox, added once so
#        the console can be tried at once; remove it in the admin view),
#        var/ports.env (Redis and PostgreSQL ports, chosen once and reused;
#        chosen again, with var/wxkf.conf rewritten to match, when one is
#        taken at start or lies in the kernel's ephemeral range: see
#        scripts/ports.sh and docs/operations.md),
#        var/{redis,pg,nginx,run,logs}/ (see scripts/stack.sh).
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
VAR=$REPO/var
CONF=$VAR/wxkf.conf
TOKEN_FILE=$VAR/admin.token
AGENT_FILE=$VAR/agent.token
STAFF_FILE=$VAR/agent.password     # the password of $DEMO_LOGIN
DEMO_LOGIN=wang
NEW_ADMIN=''                       # set when this start made the admin token
DEMO_AGENT=kf001@sandbox
SUPER_FILE=$VAR/supervisor.password   # the password of $SUPER_LOGIN
SUPER_LOGIN=laoli
SUPER_AGENT=lead@sandbox           # the agent the supervisor takes over as
PORTS_FILE=$VAR/ports.env
SAMPLE=$REPO/docs/wxkf.conf.sample
STACK=$REPO/scripts/stack.sh
BIND_FAILED_RC=3   # stack.sh start: a server's port was taken
. "$REPO/scripts/ports.sh"

PORT=${PORT:-8080}
SIM_PORT=${SIM_PORT:-8089}
WXKF_BIN=${WXKF_BIN:-$REPO/build/rel/wxkf}
SIMULATOR_CMD=${SIMULATOR_CMD:-}
SIM_PID=$VAR/run/simulator.pid

say() { printf 'run: %s\n' "$*"; }
die() { printf 'run: ERROR: %s\n' "$*" >&2; exit 1; }

# --- randomness (no openssl needed) ---------------------------------------
rand_hex() {   # rand_hex NBYTES
    od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'
}
rand_alnum() { # rand_alnum NCHARS
    LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"
}
# port_busy PORT: something listens on PORT (the simulator is up).
port_busy() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# new_port AVOID...: a port for a private service (scripts/ports.sh).
new_port() { free_port "$PORT" "$SIM_PORT" "$@" || die "no free port for Redis/PostgreSQL"; }

# --- ports: chosen once, remembered in var/ports.env ------------------------
save_ports() {
    printf '# chosen by scripts/run.sh; delete (with var/wxkf.conf) to choose again\nREDIS_PORT=%s\nPG_PORT=%s\n' \
        "$REDIS_PORT" "$PG_PORT" >"$PORTS_FILE.tmp"
    mv -f "$PORTS_FILE.tmp" "$PORTS_FILE"
}

load_ports() {
    REDIS_PORT='' PG_PORT=''
    if [ -r "$PORTS_FILE" ]; then
        REDIS_PORT=$(sed -n 's/^REDIS_PORT=\([0-9]*\)$/\1/p' "$PORTS_FILE")
        PG_PORT=$(sed -n 's/^PG_PORT=\([0-9]*\)$/\1/p' "$PORTS_FILE")
    fi
    if [ -z "$REDIS_PORT" ] || [ -z "$PG_PORT" ]; then
        [ -n "$REDIS_PORT" ] || REDIS_PORT=$(new_port "$PG_PORT")
        [ -n "$PG_PORT" ] || PG_PORT=$(new_port "$REDIS_PORT")
        save_ports
        say "chose Redis port $REDIS_PORT and PostgreSQL port $PG_PORT (var/ports.env)"
    fi
}

# is_up NAME: stack.sh status says NAME (redis, postgres) runs.
is_up() { STACK_DIR=$VAR bash "$STACK" status 2>/dev/null | grep -q "^$1 *up "; }

# Ports remembered from before (an older run.sh chose up to 39999) that lie
# in the kernel's ephemeral range now: chosen again before the start (not
# while that server still runs on it).
leave_ephemeral_range() {
    top=$(ports_range "$PORTS_RANGE_FILE")
    top=${top#* }
    if [ "$REDIS_PORT" -gt "$top" ] && ! is_up redis; then
        move_port REDIS_PORT "lies in the kernel's ephemeral range (above $top)"
    fi
    if [ "$PG_PORT" -gt "$top" ] && ! is_up postgres; then
        move_port PG_PORT "lies in the kernel's ephemeral range (above $top)"
    fi
}

# move_port NAME WHY: a newly chosen port for NAME (REDIS_PORT or PG_PORT),
# in var/ports.env and in var/wxkf.conf ([redis] url or [postgres] dsn).
move_port() {
    if [ "$1" = REDIS_PORT ]; then
        old=$REDIS_PORT what=Redis sec=redis key=url pre=: bnd=/
        REDIS_PORT=$(new_port "$REDIS_PORT" "$PG_PORT")
        new=$REDIS_PORT
    else
        old=$PG_PORT what=PostgreSQL sec=postgres key=dsn pre=port= bnd='[ \t]'
        PG_PORT=$(new_port "$REDIS_PORT" "$PG_PORT")
        new=$PG_PORT
    fi
    save_ports
    conf_note=''
    if [ -e "$CONF" ]; then
        # the value's "<pre>OLD" followed by <bnd> or its end becomes NEW
        awk -v s="$sec" -v k="$key" -v pre="$pre" -v bnd="$bnd" -v old="$old" -v new="$new" '
            /^[ \t]*\[[^]]*\][ \t]*$/ { sec = $0; gsub(/[ \t\[\]]/, "", sec) }
            sec == s && $0 ~ "^[ \t]*" k "[ \t]*=" && match($0, pre old "(" bnd "|$)") {
                $0 = substr($0, 1, RSTART - 1) pre new substr($0, RSTART + length(pre old))
                n++
            }
            { print }
            END { exit n ? 0 : 3 }
        ' "$CONF" >"$CONF.tmp" && rc=0 || rc=$?
        case $rc in
            0) mv -f "$CONF.tmp" "$CONF"; conf_note=", var/wxkf.conf rewritten ([$sec] $key)" ;;
            3) rm -f "$CONF.tmp"; conf_note="; note: [$sec] $key in var/wxkf.conf does not name port $old, left as it is" ;;
            *) rm -f "$CONF.tmp"; die "could not rewrite $CONF" ;;
        esac
    fi
    say "$what port $old $2: now $new (var/ports.env updated$conf_note)"
}

# moved_port: after stack.sh start said a server's port was taken, a new
# one for it (each at most once). Status 1 when there is nothing to move.
moved_port() {
    name=$(sed -n 's/^\([A-Z_]*\)=[0-9]*$/\1/p' "$VAR/run/bind-failed" 2>/dev/null || true)
    case $name in REDIS_PORT|PG_PORT) ;; *) return 1 ;; esac
    case " $MOVED " in *" $name "*) return 1 ;; esac
    MOVED="$MOVED $name"
    move_port "$name" "was taken at start (by another program's socket)"
}

# --- config: the sample's structure, sandbox values --------------------------
gen_config() {
    [ -r "$SAMPLE" ] || die "$SAMPLE not found"
    admin_token=$(rand_hex 32)
    # Values travel through the environment: awk -v would mangle backslashes.
    G_APP_ID=wx$(rand_hex 8) \
    G_APP_SECRET=$(rand_hex 16) \
    G_TOKEN=$(rand_alnum 16) \
    G_AES_KEY=$(rand_alnum 43) \
    G_ORIGINAL_ID=gh_$(rand_hex 6) \
    G_API_BASE=http://127.0.0.1:$SIM_PORT \
    G_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 \
    G_PG_DSN="host=127.0.0.1 port=$PG_PORT dbname=wxkf user=wxkf" \
    G_LOG_FILE=$VAR/logs/wxkf.log \
    G_ADMIN_SHA=$(printf '%s' "$admin_token" | sha256sum | cut -c1-64) \
    awk '
        BEGIN {
            v["wechat.app_id"] = ENVIRON["G_APP_ID"]
            v["wechat.app_secret"] = ENVIRON["G_APP_SECRET"]
            v["wechat.token"] = ENVIRON["G_TOKEN"]
            v["wechat.encoding_aes_key"] = ENVIRON["G_AES_KEY"]
            v["wechat.original_id"] = ENVIRON["G_ORIGINAL_ID"]
            v["wechat.account_name"] = "wxkf 演示号"
            v["wechat.api_base"] = ENVIRON["G_API_BASE"]
            v["redis.url"] = ENVIRON["G_REDIS_URL"]
            v["postgres.dsn"] = ENVIRON["G_PG_DSN"]
            v["log.file"] = ENVIRON["G_LOG_FILE"]
            v["api.admin_token_sha256"] = ENVIRON["G_ADMIN_SHA"]
            v["api.cookie_secure"] = "0"    # the console is plain http here
            print "# Generated by scripts/run.sh for a local SANDBOX (make run): random"
            print "# credentials, api_base = the bundled WeChat simulator. Edit freely;"
            print "# it is only regenerated when this file is deleted."
            print ""
        }
        /^[ \t]*\[[^]]*\][ \t]*$/ {
            sec = $0; gsub(/[ \t\[\]]/, "", sec)
        }
        /^[ \t]*[A-Za-z0-9_]+[ \t]*=/ {
            key = $0; sub(/^[ \t]*/, "", key); sub(/[ \t]*=.*/, "", key)
            k = sec "." key
            if (k in v) { print key " = " v[k]; done[k] = 1; next }
        }
        { print }
        END {
            bad = 0
            for (k in v) if (!(k in done)) { print "run: the sample config has no key " k > "/dev/stderr"; bad = 1 }
            exit bad
        }
    ' "$SAMPLE" >"$CONF.tmp" || { rm -f "$CONF.tmp"; die "could not generate $CONF from $SAMPLE"; }
    mv -f "$CONF.tmp" "$CONF"
    printf '%s\n' "$admin_token" >"$TOKEN_FILE.tmp"
    chmod 0600 "$TOKEN_FILE.tmp"
    mv -f "$TOKEN_FILE.tmp" "$TOKEN_FILE"
    NEW_ADMIN=1
    say "generated $CONF (sandbox) and a new admin token in $TOKEN_FILE"
}

conf_get() {   # conf_get SECTION KEY
    awk -v s="$1" -v k="$2" '
        /^[ \t]*\[[^]]*\][ \t]*$/ { sec = $0; gsub(/[ \t\[\]]/, "", sec); next }
        sec == s && $0 ~ "^[ \t]*" k "[ \t]*=" { sub(/^[^=]*=[ \t]*/, ""); sub(/[ \t]+$/, ""); val = $0 }
        END { print val }
    ' "$CONF"
}

# --- simulator hook ---------------------------------------------------------
sim_alive() {
    [ -r "$SIM_PID" ] && p=$(cat "$SIM_PID") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null
}

# conf_val KEY: a [wechat] key, the WXKF_WECHAT_KEY environment first.
conf_val() {
    env_name=WXKF_WECHAT_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
    eval "env_val=\${$env_name-}"
    if [ -n "$env_val" ]; then printf '%s\n' "$env_val"; else conf_get wechat "$1"; fi
}

# wait_simulator PORT: until it listens (bounded), or it died.
wait_simulator() {
    i=0
    while [ $i -lt 50 ]; do
        sim_alive || return 1
        port_busy "$1" && return 0
        sleep 0.1
        i=$((i + 1))
    done
    sim_alive
}

start_simulator() {
    if [ "$SIMULATOR_CMD" = none ]; then
        say "simulator: not started (SIMULATOR_CMD=none)"
        return 0
    fi
    if sim_alive; then
        say "simulator: already running (pid $(cat "$SIM_PID"))"
        return 0
    fi
    sim_port=$SIM_PORT
    if [ -n "$SIMULATOR_CMD" ]; then
        SIM_PORT=$SIM_PORT nohup sh -c "exec $SIMULATOR_CMD" </dev/null >>"$VAR/logs/simulator.log" 2>&1 &
        echo $! >"$SIM_PID"
    else
        api_base=$(conf_val api_base)
        app_secret=$(conf_val app_secret)
        case $api_base in
            http://127.0.0.1:[0-9]*|http://localhost:[0-9]*)
                p=$(printf '%s' "$api_base" | sed -n 's|^http://[^:/]*:\([0-9][0-9]*\).*|\1|p')
                if [ -n "$p" ] && [ "$p" != "$SIM_PORT" ]; then
                    say "simulator: api_base $api_base names port $p; using it (not SIM_PORT=$SIM_PORT)"
                    sim_port=$p
                fi
                ;;
            http://127.0.0.1*|http://localhost*) sim_port=80 ;;
            *)
                if [ -n "$app_secret" ]; then
                    say "simulator: not started (real WeChat credentials; api_base = $api_base)"
                    return 0
                fi
                say "simulator: note: no app_secret but api_base = $api_base; the simulator on 127.0.0.1:$SIM_PORT is not what the workers call"
                ;;
        esac
        [ -x /usr/bin/python3 ] || { say "simulator: not started (/usr/bin/python3 missing)"; return 0; }
        # The nginx port the stack really listens on (it may predate $PORT).
        cb_port=$(sed -n 's/^PORT=//p' "$VAR/run/stack.env" 2>/dev/null || true)
        [ -n "$cb_port" ] || cb_port=$PORT
        [ -n "$app_secret" ] || say "simulator: the config has no app_secret: the simulator picks a random one (token fetches will fail)"
        nohup /usr/bin/python3 "$REPO/test/sim/wechat_api_sim.py" \
            --port "$sim_port" \
            --appid "$(conf_val app_id)" \
            --secret "$app_secret" \
            --callback "http://127.0.0.1:$cb_port/wechat" \
            --token "$(conf_val token)" \
            --aes-key "$(conf_val encoding_aes_key)" \
            --original-id "$(conf_val original_id)" \
            </dev/null >>"$VAR/logs/simulator.log" 2>&1 &
        echo $! >"$SIM_PID"
    fi
    wait_simulator "$sim_port" || {
        tail -n 20 "$VAR/logs/simulator.log" >&2 || true
        rm -f "$SIM_PID"
        die "simulator: exited at once (port $sim_port busy?)"
    }
    say "simulator: started on 127.0.0.1:$sim_port (pid $(cat "$SIM_PID"), log var/logs/simulator.log)"
    say "simulator: a user message: curl -s -XPOST http://127.0.0.1:$sim_port/_sim/users/oSandboxUser1/send -d '{\"type\":\"text\",\"content\":\"hi\"}'"
    say "simulator: what was sent: curl -s http://127.0.0.1:$sim_port/_sim/sent (API calls: /_sim/calls)"
}

stop_simulator() {
    if sim_alive; then
        p=$(cat "$SIM_PID")
        kill -TERM "$p" 2>/dev/null || true
        i=0
        while [ $i -lt 50 ] && kill -0 "$p" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        say "simulator: stopped (pid $p)"
    fi
    rm -f "$SIM_PID"
}

# A first agent for the console, once (var/agent.token holds its token).
demo_agent() {
    [ -e "$AGENT_FILE" ] && return 0
    out=$(umask 077; "$WXKF_BIN" agent add -c "$CONF" --account "$DEMO_AGENT" \
              --nick '客服小王' --capacity 10 2>>"$VAR/logs/agent.log") || {
        say "note: could not add the first agent $DEMO_AGENT (see var/logs/agent.log)"
        return 0
    }
    tok=$(printf '%s' "$out" | sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
    [ -n "$tok" ] || return 0
    (umask 077; printf '%s\n' "$tok" >"$AGENT_FILE")
    say "added the first agent $DEMO_AGENT (token in $AGENT_FILE)"
}

# A first staff user who signs in with a password as the first agent, once
# (var/agent.password holds its password).
demo_staff() {
    [ -e "$STAFF_FILE" ] && return 0
    [ -e "$AGENT_FILE" ] || return 0
    pw=$(rand_alnum 16)
    printf '%s\n' "$pw" | "$WXKF_BIN" user add -c "$CONF" --login "$DEMO_LOGIN" \
        --name '客服小王' --role agent --agent "$DEMO_AGENT" \
        >>"$VAR/logs/agent.log" 2>&1 || {
        say "note: could not add the staff user $DEMO_LOGIN (see var/logs/agent.log)"
        return 0
    }
    (umask 077; printf '%s\n' "$pw" >"$STAFF_FILE")
    say "added the staff user $DEMO_LOGIN (password in $STAFF_FILE)"
}

# A supervisor who signs in with a password, linked to an agent account it
# serves users as after a take-over (left offline: routing gives it no
# users of its own), once (var/supervisor.password holds its password).
demo_supervisor() {
    [ -e "$SUPER_FILE" ] && return 0
    # its token is not needed (the supervisor signs in with a password)
    "$WXKF_BIN" agent add -c "$CONF" --account "$SUPER_AGENT" \
        --nick '主管老李' >/dev/null 2>>"$VAR/logs/agent.log" ||
        say "note: could not add the agent $SUPER_AGENT (it may exist; see var/logs/agent.log)"
    pw=$(rand_alnum 16)
    printf '%s\n' "$pw" | "$WXKF_BIN" user add -c "$CONF" --login "$SUPER_LOGIN" \
        --name '主管老李' --role supervisor --agent "$SUPER_AGENT" \
        >>"$VAR/logs/agent.log" 2>&1 || {
        say "note: could not add the supervisor $SUPER_LOGIN (see var/logs/agent.log)"
        return 0
    }
    (umask 077; printf '%s\n' "$pw" >"$SUPER_FILE")
    say "added the supervisor $SUPER_LOGIN (password in $SUPER_FILE)"
}

# --- commands --------------------------------------------------------------
do_start() {
    [ -x "$WXKF_BIN" ] || die "$WXKF_BIN not built (run: make)"
    mkdir -p "$VAR" "$VAR/logs" "$VAR/run"
    umask 077
    load_ports
    leave_ephemeral_range
    if [ -e "$CONF" ]; then
        say "using existing $CONF"
        [ -e "$TOKEN_FILE" ] || say "note: $TOKEN_FILE is missing; issue a new admin token by deleting $CONF (or set [api] admin_token_sha256 yourself)"
    else
        gen_config
    fi
    MOVED=''
    while :; do
        umask 022
        rc=0
        STACK_DIR=$VAR WXKF_BIN=$WXKF_BIN WXKF_CONF=$CONF PORT=$PORT \
        REDIS_PORT=$REDIS_PORT PG_PORT=$PG_PORT WORKERS=${WORKERS:-2} \
        PG_FSYNC=${PG_FSYNC:-on} \
            bash "$STACK" start || rc=$?
        [ "$rc" -eq 0 ] && break
        umask 077
        [ "$rc" -eq "$BIND_FAILED_RC" ] && moved_port && continue
        # Never half-started: what did come up is stopped again.
        say "the stack did not come up (see above): stopping what did"
        STACK_DIR=$VAR bash "$STACK" stop >/dev/null 2>&1 || true
        die "the stack did not come up (see above)"
    done
    start_simulator
    demo_agent
    demo_staff
    demo_supervisor

    # The port nginx really listens on (it may have been started earlier).
    port=$(sed -n 's/^PORT=//p' "$VAR/run/stack.env" 2>/dev/null || true)
    [ -n "$port" ] || port=$PORT
    token=${WXKF_WECHAT_TOKEN:-$(conf_get wechat token)}
    # the bootstrap admin token is printed once, when it is made
    if [ -n "$NEW_ADMIN" ]; then
        admin_line="$(cat "$TOKEN_FILE" 2>/dev/null) (shown once; kept in $TOKEN_FILE)"
        first_admin="
The admin token above is a bootstrap credential: use it once to make the
first admin user, then sign in with a password and make named, scoped API
tokens for scripts (console: 用户 / API 令牌; or wxkf token add). Rotate or
disable it as docs/security.md says (\"The bootstrap admin token\").
  printf '%s\\n' 'a long password' | build/rel/wxkf user add -c $CONF --login admin --name 管理员 --role admin
"
    else
        admin_line="in $TOKEN_FILE"
        first_admin=''
    fi
    cat <<EOF

wxkf is up on 127.0.0.1 (sandbox: api_base -> http://127.0.0.1:$SIM_PORT)
  WeChat URL:   http://127.0.0.1:$port/wechat
  console:      http://127.0.0.1:$port/
  config:       $CONF
  logs:         $VAR/logs/

Sign in to the console with a login and password (kept in $VAR):
  $DEMO_LOGIN / $(cat "$STAFF_FILE" 2>/dev/null || echo "(none: $STAFF_FILE missing)")   (agent $DEMO_AGENT)
  $SUPER_LOGIN / $(cat "$SUPER_FILE" 2>/dev/null || echo "(none: $SUPER_FILE missing)")   (supervisor; takes conversations over as $SUPER_AGENT)
More users: build/rel/wxkf user add -c $CONF --login L --name N --role agent|supervisor|admin [--agent A]
Or with a token (使用令牌登录):
  agent $DEMO_AGENT:  $(cat "$AGENT_FILE" 2>/dev/null || echo "(none: $AGENT_FILE missing)")
  admin:                $admin_line
${first_admin}Go online in the console, then be a WeChat user (the simulator signs and
encrypts the callback); the message appears in the console, answer it there:
  curl -s -XPOST http://127.0.0.1:${sim_port:-$SIM_PORT}/_sim/users/oSandboxUser1/send -d '{"type":"text","content":"你好，我想问一下订单"}'
What your answers sent to "WeChat":  curl -s http://127.0.0.1:${sim_port:-$SIM_PORT}/_sim/sent

Signed server verification (WeChat's GET handshake; prints the echostr back):
  T='$token'; TS=\$(date +%s); N=\$(od -An -tu4 -N4 /dev/urandom | tr -d ' '); S=\$(printf '%s\n' "\$T" "\$TS" "\$N" | LC_ALL=C sort | tr -d '\n' | sha1sum | cut -c1-40); curl -s "http://127.0.0.1:$port/wechat?signature=\$S&timestamp=\$TS&nonce=\$N&echostr=hello_wxkf"; echo

Stop everything:  make stop
EOF
}

do_stop() {
    stop_simulator
    STACK_DIR=$VAR bash "$STACK" stop
}

case ${1:-} in
    start) do_start ;;
    stop) do_stop ;;
    *) echo "usage: sh scripts/run.sh start|stop" >&2; exit 2 ;;
esac
