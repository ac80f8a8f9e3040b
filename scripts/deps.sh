#!/bin/sh
# wxkf — install the Debian packages the build, the stack and the tests need.
#
#   sh scripts/deps.sh        (make deps)
#
# Idempotent and quiet: every package is checked with dpkg-query first; only
# when something is missing does it run `apt-get update` and install exactly
# the missing packages, non-interactively, without recommends.
#
# wxkf runs its OWN private nginx, Redis and PostgreSQL (scripts/stack.sh) on
# loopback ports under var/ or a test folder. Debian's packaged services are
# not used: when no /usr/sbin/policy-rc.d exists, one that forbids starting
# services is put in place for the duration of the install, so installing
# nginx does not start anything on port 80 (nor redis on 6379, postgresql on
# 5432). Services that are already installed are neither started nor stopped.
set -eu

PKGS="build-essential pkg-config libfcgi-dev libhiredis-dev libpq-dev
libexpat1-dev libjansson-dev libcurl4-openssl-dev libssl-dev libcmocka-dev
libopencore-amrnb-dev libopencore-amrnb0 libspeex-dev libspeex1
libargon2-dev libargon2-1
libxlsxwriter-dev libxlsxwriter4 zlib1g-dev python3-openpyxl
nginx libnginx-mod-nchan spawn-fcgi multiwatch redis-server postgresql wrk curl
python3-pytest python3-requests python3-redis python3-psycopg2
python3-cryptography iproute2 procps chromium fonts-wqy-microhei
fonts-noto-color-emoji nodejs npm
systemd"

# libopencore-amrnb-dev / libopencore-amrnb0, libspeex-dev / libspeex1:
# the AMR-NB and Speex decoders `wxkf jobs` turns users' voice messages
# into WAV with (lib/voice.c; the runtime libraries are all an installed
# wxkf needs).
# libargon2-dev / libargon2-1: argon2id, the staff users' password hashes
# (lib/password.c; docs/security.md).
# libxlsxwriter-dev / libxlsxwriter4: the reports' XLSX export
# (lib/report.c); zlib1g-dev: its pkg-config names -lz, which
# libxlsxwriter-dev does not depend on;
# python3-openpyxl: test/it/test_reports.py reads the XLSX back.
# fonts-wqy-microhei: Chinese glyphs in the console's screenshots (the
# console is for Chinese teams; without a CJK font they show as boxes);
# fonts-noto-color-emoji: the emoji picker's glyphs in them.
# systemd: systemd-analyze, -sysusers and -tmpfiles check the installed
# units (test/it/test_install.py); nothing is started.
# The browser test needs the node and npm commands (test/browser/README.md).
# Debian ships npm as a package of its own that --no-install-recommends does
# not pull with nodejs. A machine whose node/npm come from elsewhere (a
# newer Node.js installed by hand) keeps them: the packages are asked for
# only when the command is missing, so Debian's npm never fights another
# Node.js for /usr/bin/node.
wanted() {   # wanted PACKAGE: 0 when PACKAGE must be installed
    case $1 in
        nodejs) ! command -v node >/dev/null 2>&1 ;;
        npm) ! command -v npm >/dev/null 2>&1 ;;
        *) return 0 ;;
    esac
}

command -v dpkg-query >/dev/null 2>&1 ||
    { echo "deps: dpkg-query not found: this script is for Debian (12)" >&2; exit 1; }

missing=""
for p in $PKGS; do
    wanted "$p" || continue
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $st in
        *" ok installed") ;;
        *) missing="$missing $p" ;;
    esac
done
missing=${missing# }

if [ -z "$missing" ]; then
    echo "deps: all present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "deps: missing: $missing" >&2
        echo "deps: not root and no sudo: install them as root" >&2
        exit 1
    fi
fi

POLICY=/usr/sbin/policy-rc.d
LOG=$(mktemp "${TMPDIR:-/tmp}/wxkf-deps.XXXXXX")
placed_policy=0
cleanup() {
    if [ "$placed_policy" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
    rm -f "$LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ ! -e "$POLICY" ]; then
    # exit 101 = "action forbidden": invoke-rc.d / deb-systemd-invoke start nothing.
    $SUDO sh -c "printf '#!/bin/sh\n# temporary, from wxkf scripts/deps.sh\nexit 101\n' >'$POLICY' && chmod 0755 '$POLICY'"
    placed_policy=1
fi

echo "deps: installing: $missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update >"$LOG" 2>&1 ||
   ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        $missing >>"$LOG" 2>&1; then
    echo "deps: apt-get failed; last lines of its output:" >&2
    tail -n 25 "$LOG" >&2
    exit 1
fi

still=""
for p in $missing; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case $st in *" ok installed") ;; *) still="$still $p" ;; esac
done
if [ -n "$still" ]; then
    echo "deps: still missing after install:$still" >&2
    exit 1
fi
echo "deps: installed: $missing"
