#!/bin/sh
# wxkf — `make test-fresh`: the README's promise checked on a bare Debian 12.
#
#   sh scripts/test-fresh.sh        (as root; make test-fresh)
#
# Builds a bare Debian 12 (bookworm) root with debootstrap (--variant=minbase
# plus make, git and ca-certificates: what the README says a fresh machine
# needs), clones this repository's HEAD into it, and runs inside it, as a
# newcomer would:
#
#   make test                   every suite (FRESH_TARGET overrides: e.g. check)
#   make run                    the whole stack, sandbox simulator
#   signed GET /wechat          WeChat's URL verification echoes echostr
#   signed POST /wechat         a user's text message, signed and encrypted
#                               by the bundled simulator, is acknowledged
#   GET /healthz                200
#   make install DESTDIR=...    the installed binary runs `wxkf check`
#                               against the running stack
#   make stop                   nothing of the stack is left running
#
# Nothing is installed in the root by hand: `make test` and `make run` must
# apt-get what they need themselves. The only things copied in from this
# host are what a machine behind a corporate proxy already has configured:
# the Debian mirror (from this host's apt sources), apt's Acquire:: settings
# (proxies, CA, validity of snapshot mirrors), extra trusted CA certificates
# (/usr/local/share/ca-certificates), npm's proxy/CA/registry settings, the
# proxy environment variables, and the DNS resolver.
#
# Mounts only proc, sys, dev, dev/pts and a tmpfs on dev/shm (and the root
# onto itself, so that it is a mount point as `ip netns` needs), and
# unmounts them (and stops every process left inside the root) on every
# way out.
# Prints each step with its time; exits non-zero on the first failure.
#
# Environment:
#   FRESH_DIR     where the root is built (default <repo>/build/fresh; wiped)
#   FRESH_TARGET  the make goals run first inside the root (default test;
#                 "deps check" runs the unit tests only)
#   FRESH_KEEP=1  keep the root afterwards (unmounted) to look into it
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
FRESH_DIR=${FRESH_DIR:-$REPO/build/fresh}
FRESH_TARGET=${FRESH_TARGET:-test}
FRESH_KEEP=${FRESH_KEEP:-0}
ROOT=$FRESH_DIR/root
SUITE=bookworm
CHECKOUT=/root/wxkf
STEPLOG=$FRESH_DIR/steps.txt

say() { printf 'fresh: %s\n' "$*"; }
die() { printf 'fresh: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
case $FRESH_DIR in /|"") die "FRESH_DIR must not be /" ;; esac

# --- mounts and processes inside the root ---------------------------------
MOUNTS="proc sys dev dev/pts dev/shm"

mounted() { grep -q " $1 " /proc/self/mounts; }

# Every process whose root directory is inside $ROOT (PostgreSQL, Redis,
# nginx, workers a failed step left behind).
root_pids() {
    for d in /proc/[0-9]*; do
        r=$(readlink "$d/root" 2>/dev/null) || continue
        case $r in "$ROOT"|"$ROOT"/*) echo "${d#/proc/}" ;; esac
    done
}

stop_root_processes() {
    pids=$(root_pids)
    [ -n "$pids" ] || return 0
    say "stopping $(echo "$pids" | wc -w) process(es) left inside the root"
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    i=0
    while [ $i -lt 50 ] && [ -n "$(root_pids)" ]; do sleep 0.1; i=$((i + 1)); done
    pids=$(root_pids)
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}

unmount_all() {
    # deepest first; -R takes whatever else a test mounted below
    for m in dev/shm dev/pts dev sys proc; do
        p=$ROOT/$m
        mounted "$p" || continue
        umount -R "$p" 2>/dev/null || umount -R -l "$p" ||
            say "could not unmount $p"
    done
    # anything else below the root (a test's own mounts, netns bind
    # mounts), then the root's bind onto itself
    grep -o " $ROOT/[^ ]*" /proc/self/mounts | sort -r | while read -r p; do
        umount -l "$p" 2>/dev/null || true
    done
    i=0
    while mounted "$ROOT" && [ $i -lt 10 ]; do
        umount "$ROOT" 2>/dev/null || umount -l "$ROOT" || true
        i=$((i + 1))
    done
}

cleanup() {
    rc=$?
    trap - EXIT INT TERM HUP
    if [ -d "$ROOT" ]; then
        stop_root_processes
        unmount_all
        if grep -q " $ROOT" /proc/self/mounts; then
            say "something is still mounted below $ROOT: not deleting it"
        elif [ "$FRESH_KEEP" = 1 ]; then
            say "kept the root in $ROOT"
        else
            rm -rf --one-file-system "$ROOT"
        fi
    fi
    if [ -s "$STEPLOG" ]; then
        say "steps (seconds):"
        sed 's/^/  /' "$STEPLOG"
    fi
    if [ "$rc" -eq 0 ]; then say "PASSED"; else say "FAILED (exit $rc)"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mount_all() {
    # The root a mount point of its own: `ip netns` (the cluster suite's
    # network namespaces) makes / a slave mount, which fails on a chroot
    # whose / is only a directory.
    mount --bind "$ROOT" "$ROOT"
    mount --make-private "$ROOT"
    mount -t proc proc "$ROOT/proc"
    mount --rbind /sys "$ROOT/sys"
    mount --make-rslave "$ROOT/sys"
    mount --bind /dev "$ROOT/dev"
    mount --make-slave "$ROOT/dev"
    mount -t devpts devpts "$ROOT/dev/pts" -o newinstance,ptmxmode=0666,mode=0620 2>/dev/null ||
        { mount --bind /dev/pts "$ROOT/dev/pts" && mount --make-slave "$ROOT/dev/pts"; }
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$ROOT/dev/shm"
}

# --- steps, timed -----------------------------------------------------------
T0=$(date +%s)
step() {   # step NAME COMMAND...
    name=$1; shift
    say "== $name"
    s=$(date +%s)
    if "$@"; then
        e=$(date +%s)
        printf '%6d  ok      %s\n' $((e - s)) "$name" >>"$STEPLOG"
        say "== $name: ok in $((e - s)) s"
    else
        rc=$?
        e=$(date +%s)
        printf '%6d  FAILED  %s\n' $((e - s)) "$name" >>"$STEPLOG"
        say "== $name: FAILED (exit $rc) after $((e - s)) s"
        exit 1
    fi
}

# inside CMD: run a shell command in the checkout inside the root, with a
# clean environment (only the proxy variables pass).
inside() {
    # shellcheck disable=SC2086
    chroot "$ROOT" /usr/bin/env -i HOME=/root USER=root LOGNAME=root \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 TERM=dumb $PROXY_ENV /bin/sh -c "cd $CHECKOUT && $1"
}

# --- what the host's apt knows ----------------------------------------------
# Prints "URI SUITE" for every enabled deb source of Debian 12 with the main
# component, from one-line .list files and deb822 .sources files.
apt_sources() {
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] || continue
            sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
                awk '$1 == "deb" && NF >= 4 { c = ""; for (i = 4; i <= NF; i++) c = c " " $i; print $2, $3, c }'
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            awk '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
                        n = split(uris, U, " "); m = split(suites, S, " ")
                        for (i = 1; i <= n; i++) for (j = 1; j <= m; j++)
                            print U[i], S[j], " " comps
                    }
                    types = uris = suites = comps = enabled = key = ""
                }
                /^#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v)
                           if (key == "uris") uris = uris " " v
                           else if (key == "suites") suites = suites " " v
                           else if (key == "components") comps = comps " " v
                           next }
                { i = index($0, ":"); if (i == 0) next
                  key = tolower(substr($0, 1, i - 1)); v = substr($0, i + 1)
                  gsub(/^[ \t]+|[ \t]+$/, "", v)
                  if (key == "types") types = v
                  else if (key == "uris") uris = v
                  else if (key == "suites") suites = v
                  else if (key == "components") comps = v
                  else if (key == "enabled") enabled = v }
                END { flush() }' "$f"
        done
    } | awk -v s="$SUITE" '($2 == s || $2 == s "-updates" || $2 == s "-security") && $0 ~ / main( |$)/ { print $1, $2 }' |
        awk '!seen[$0]++'
}

# --- the steps ---------------------------------------------------------------
prepare() {
    if [ -d "$ROOT" ]; then
        say "removing the root of an earlier run"
        stop_root_processes
        unmount_all
        grep -q " $ROOT" /proc/self/mounts && die "$ROOT still has mounts"
        rm -rf --one-file-system "$ROOT"
    fi
    mkdir -p "$FRESH_DIR"
    : >"$STEPLOG"
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap could not be installed"
    SOURCES=$(apt_sources)
    MIRROR=$(echo "$SOURCES" | awk -v s="$SUITE" '$2 == s { print $1; exit }')
    [ -n "$MIRROR" ] || die "no '$SUITE main' source in this host's apt sources"
    # debootstrap fetches with wget, which reads the proxy from the environment
    PROXY_ENV=""
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        eval "val=\${$v:-}"
        [ -z "$val" ] || PROXY_ENV="$PROXY_ENV $v=$val"
    done
    if [ -z "${http_proxy:-}" ] && command -v apt-config >/dev/null 2>&1; then
        eval "$(apt-config shell APT_PROXY Acquire::http::Proxy)"
        if [ -n "${APT_PROXY:-}" ]; then
            export http_proxy="$APT_PROXY"
        fi
    fi
}

bootstrap() {
    debootstrap --variant=minbase --include=make,git,ca-certificates \
        "$SUITE" "$ROOT" "$MIRROR" >"$FRESH_DIR/debootstrap.log" 2>&1 || {
        tail -n 20 "$FRESH_DIR/debootstrap.log" >&2
        return 1
    }
}

# What a machine behind a corporate proxy already has configured.
configure() {
    echo "$SOURCES" | while read -r uri suite; do
        echo "deb $uri $suite main"
    done >"$ROOT/etc/apt/sources.list"
    for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] || continue
        grep -q 'Acquire' "$f" && cp "$f" "$ROOT/etc/apt/apt.conf.d/$(basename "$f")"
    done
    if [ -d /usr/local/share/ca-certificates ]; then
        cp -R /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
    fi
    chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || return 1
    [ ! -e /etc/resolv.conf ] || cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
    echo wxkf-fresh >"$ROOT/etc/hostname"
    npm_settings >"$ROOT/etc/npmrc"
}

# npm's proxy, CA and registry settings of this host, if it has npm.
npm_settings() {
    command -v npm >/dev/null 2>&1 || return 0
    for k in registry proxy https-proxy noproxy cafile strict-ssl; do
        v=$(npm config get "$k" 2>/dev/null) || continue
        case $v in ""|null|undefined) continue ;; esac
        if [ "$k" = cafile ]; then
            [ -r "$v" ] || continue
            case $v in /etc/ssl/certs/*) ;; *)   # the system bundle is rebuilt inside
                mkdir -p "$ROOT$(dirname "$v")" && cp "$v" "$ROOT$v" ;;
            esac
        fi
        echo "$k=$v"
    done
}

clone() {
    rev=$(git -C "$REPO" rev-parse HEAD)
    if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
        say "note: uncommitted changes are not tested; HEAD $rev is"
    fi
    git clone -q --no-local "$REPO" "$ROOT$CHECKOUT" &&
        git -C "$ROOT$CHECKOUT" checkout -q "$rev"
}

# One signed GET (URL verification) and one signed POST (a user's text) on
# /wechat, and /healthz, against the stack `make run` started.
smoke() {
    inside '
set -eu
port=$(sed -n "s/^PORT=//p" var/run/stack.env)
tok=$(sed -n "s/^token *= *//p" var/wxkf.conf | head -n 1)
base=http://127.0.0.1:$port
sig() { printf "%s\n" "$tok" "$1" "$2" | LC_ALL=C sort | tr -d "\n" | sha1sum | cut -d" " -f1; }
ts=$(date +%s); nonce=fresh$$; echo=e$(date +%N)
got=$(curl -sS --max-time 10 "$base/wechat?signature=$(sig "$ts" "$nonce")&timestamp=$ts&nonce=$nonce&echostr=$echo")
[ "$got" = "$echo" ] || { echo "GET /wechat answered [$got], not the echostr"; exit 1; }
echo "signed GET /wechat: echostr returned"
# The POST: the bundled simulator plays the WeChat user; it signs (and, as
# make run configures an EncodingAESKey, encrypts) the callback to /wechat.
sim=$(sed -n "s#^api_base *= *http://127.0.0.1:\([0-9]*\).*#\1#p" var/wxkf.conf | head -n 1)
out=$(curl -sS --max-time 20 -XPOST "http://127.0.0.1:$sim/_sim/users/oFreshUser0000001/send" -d "{\"type\":\"text\",\"content\":\"你好, from a fresh machine\",\"mode\":\"safe\"}")
case $out in *"\"status\": 200"*|*"\"status\":200"*) ;; *) echo "signed POST /wechat (through the simulator): $out"; exit 1 ;; esac
echo "signed POST /wechat (safe mode, by the simulator): 200"
code=$(curl -sS --max-time 10 -o /dev/null -w "%{http_code}" "$base/healthz")
[ "$code" = 200 ] || { echo "GET /healthz: HTTP $code"; exit 1; }
echo "GET /healthz: 200"
'
}

# `make install` into a DESTDIR inside the root; the installed binary runs
# `wxkf check` against the stack `make run` started.
installed() {
    inside '
set -eu
rm -rf /tmp/wxkf-destdir
make -s install DESTDIR=/tmp/wxkf-destdir PREFIX=/usr >/dev/null
/tmp/wxkf-destdir/usr/bin/wxkf check -c var/wxkf.conf
'
}

stopped() {
    inside 'make stop' || return 1
    left=$(root_pids)
    [ -z "$left" ] && return 0
    say "still running inside the root after make stop:"
    for p in $left; do ps -o pid=,user=,args= -p "$p" 2>/dev/null; done
    return 1
}

step "prepare (debootstrap, mirror from this host's apt sources)" prepare
say "mirror: $(echo "$MIRROR" | sed 's#://[^/]*#://<mirror>#'); sources: $(echo "$SOURCES" | awk '{print $2}' | tr '\n' ' ')"
step "debootstrap --variant=minbase $SUITE (+ make git ca-certificates)" bootstrap
step "copy the host's proxy/CA/mirror settings" configure
step "mount the root, proc, sys, dev, dev/pts, dev/shm" mount_all
step "clone HEAD" clone
step "make $FRESH_TARGET" inside "make $FRESH_TARGET"
step "make run" inside 'make run'
step "signed GET and POST /wechat, /healthz" smoke
step "make install DESTDIR; installed wxkf check" installed
step "make stop" stopped
say "total $(( $(date +%s) - T0 )) s"
