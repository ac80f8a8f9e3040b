#!/bin/sh
# wxkf — build the libFuzzer harnesses of test/fuzz/ and run each for a
# bounded time.
#
#   sh scripts/fuzz.sh [SECONDS [HARNESS...]]
#
#   SECONDS  fuzzing time per harness (default 300); 0 = build, replay the
#            regressions and the seed corpus once, no fuzzing
#   HARNESS  xml crypto callback query json config journal canned voice
#            (default: all)
#
# Everything is written under build/fuzz/: the lib/ objects built with
# clang -fsanitize=fuzzer-no-link,address,undefined (build/fuzz/obj, with
# the embedded Lua and SQL generated into build/fuzz/gen), the harnesses
# (build/fuzz/fuzz_<name>), the working corpus (build/fuzz/corpus/<name>,
# seeded from test/fuzz/corpus/<name> and kept between runs), the logs
# (build/fuzz/logs/<name>.log) and the reproducers libFuzzer writes
# (build/fuzz/artifacts/<name>/). test/fuzz/ is only read.
#
# For each harness, every file in test/fuzz/regressions/<name>/ is first
# replayed once; then it is fuzzed with -max_total_time=SECONDS,
# -timeout=5, -rss_limit_mb=2048 and its own -max_len and dictionary.
# The exit status is nonzero if any harness crashed, leaked, timed out,
# ran out of memory or printed a sanitizer report; the reproducer paths
# are printed.
#
# Runs for different harnesses may go in parallel: the build step is
# serialized (flock on build/fuzz/.build.lock), the rest is per harness.
#
# Environment: FUZZ_NICE (default 10) is the niceness of the fuzzing runs;
# FUZZ_JOBS (default: the number of CPUs) parallel compiles; CLANG
# (default clang).
set -eu

cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-300}
[ $# -gt 0 ] && shift
ALL="xml crypto callback query json config journal canned voice"
HARNESSES=${*:-$ALL}
CLANG=${CLANG:-clang}
NICE=${FUZZ_NICE:-10}
JOBS=${FUZZ_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)}
OUT=build/fuzz
PKGS="fcgi hiredis libpq expat jansson libcurl libcrypto opencore-amrnb speex
libargon2 xlsxwriter"

case $SECONDS_EACH in
    ''|*[!0-9]*) echo "fuzz: SECONDS must be a number: $SECONDS_EACH" >&2
                 exit 2 ;;
esac
for h in $HARNESSES; do
    case " $ALL " in
        *" $h "*) ;;
        *) echo "fuzz: unknown harness $h (one of: $ALL)" >&2; exit 2 ;;
    esac
done

# -max_len per harness: a little past the limit the parser enforces where
# that is cheap (query strings), else enough for every shape of input.
max_len() {
    case $1 in
        xml) echo 16384 ;;       # WX_XML_MAX is 64 KiB; 512 elements fit
        crypto) echo 4096 ;;
        callback) echo 8192 ;;
        query) echo 4200 ;;      # HTTP_QUERY_MAX 4096
        json) echo 8192 ;;       # API_BODY_MAX is 16 KiB
        config) echo 8192 ;;     # lines over 4096 bytes are an error
        journal) echo 16384 ;;   # a few records with their bodies
        canned) echo 8192 ;;     # CSV: enough rows for every shape
        voice) echo 16384 ;;     # 3000 one-byte frames (60 s) and more
    esac
}

# --- toolchain: clang and its fuzzer runtime, the project's libraries ------
have_pkg() {
    st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
    case $st in *" ok installed") return 0 ;; esac
    return 1
}

if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for p in clang libclang-rt-14-dev; do
        have_pkg "$p" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        SUDO=""
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || {
                echo "fuzz: missing:$missing; not root and no sudo" >&2
                exit 1; }
            SUDO=sudo
        fi
        echo "fuzz: installing:$missing"
        # shellcheck disable=SC2086
        if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update \
                >/dev/null ||
           ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y \
                --no-install-recommends $missing >/dev/null; then
            echo "fuzz: apt-get failed for:$missing" >&2
            exit 1
        fi
    fi
fi
command -v "$CLANG" >/dev/null 2>&1 || {
    echo "fuzz: $CLANG not found" >&2; exit 1; }
# shellcheck disable=SC2086
pkg-config --exists $PKGS || sh scripts/deps.sh

# --- build -----------------------------------------------------------------
# shellcheck disable=SC2086
PKG_CFLAGS=$(pkg-config --cflags $PKGS)
# shellcheck disable=SC2086
PKG_LIBS="$(pkg-config --libs $PKGS) -pthread"
WARN="-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla -Wformat=2"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all \
-fno-omit-frame-pointer"
CFLAGS="-std=c11 -O1 -g $WARN -pthread -D_POSIX_C_SOURCE=200809L \
-D_DEFAULT_SOURCE -Ilib -Ibuild/gen $PKG_CFLAGS $SAN"
export CLANG CFLAGS

mkdir -p "$OUT/obj" "$OUT/gen" "$OUT/logs"
# Several runs may start at once (e.g. two sets of harnesses in parallel):
# one builds, the others wait for it and then find everything up to date.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.build.lock"
    flock 9
fi

# True if $1 is missing or older than any of the other files.
stale() {
    t=$1
    shift
    [ -e "$t" ] || return 0
    [ -n "$(find "$@" -newer "$t" 2>/dev/null | head -n 1)" ]
}

# The embedded Lua (build/gen/lua.c and lua.h) is plain C: the Makefile's
# rule, which knows which scripts route, writes it for every build.
make -s build/gen/lua.c build/gen/lua.h
SQL_SRC=$(echo sql/[0-9][0-9][0-9][0-9]_*.sql)
# shellcheck disable=SC2086
if stale "$OUT/gen/migrations.c" $SQL_SRC scripts/embed_sql.sh; then
    echo "  GEN     $OUT/gen/migrations.c"
    sh scripts/embed_sql.sh "$OUT/gen/migrations.c" $SQL_SRC
fi

# Objects depend on the flags they were built with (kept in a file that
# changes only when they do).
printf '%s\n' "$CLANG $CFLAGS" >"$OUT/flags.$$"
if cmp -s "$OUT/flags.$$" "$OUT/flags"; then
    rm -f "$OUT/flags.$$"
else
    mv "$OUT/flags.$$" "$OUT/flags"
fi
HDRS="$(ls lib/*.h) build/gen/lua.h"
stale_objs=""
objs=""
for src in lib/*.c build/gen/lua.c "$OUT/gen/migrations.c"; do
    base=$(basename "$src" .c)
    case $src in */gen/*) base=gen_$base ;; esac
    obj=$OUT/obj/$base.o
    objs="$objs $obj"
    # shellcheck disable=SC2086
    stale "$obj" "$src" $HDRS "$OUT/flags" && stale_objs="$stale_objs $src:$obj"
done
if [ -n "$stale_objs" ]; then
    # shellcheck disable=SC2016,SC2086
    printf '%s\n' $stale_objs | xargs -P "$JOBS" -n 1 sh -c '
        src=${1%%:*}; obj=${1#*:}
        echo "  CC      $obj"
        # shellcheck disable=SC2086
        $CLANG $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj.tmp" &&
        mv "$obj.tmp" "$obj"' sh || { echo "fuzz: build failed" >&2; exit 1; }
    rm -f "$OUT/libwxkf.a"
fi
# a source that went away must leave the archive too
echo "$objs" >"$OUT/objs.list.$$"
if cmp -s "$OUT/objs.list.$$" "$OUT/objs.list"; then
    rm -f "$OUT/objs.list.$$"
else
    rm -f "$OUT/libwxkf.a"
    mv "$OUT/objs.list.$$" "$OUT/objs.list"
fi
if [ ! -e "$OUT/libwxkf.a" ]; then
    echo "  AR      $OUT/libwxkf.a"
    # shellcheck disable=SC2086
    ar rcs "$OUT/libwxkf.a" $objs
fi
for h in $HARNESSES; do
    bin=$OUT/fuzz_$h
    if stale "$bin" "test/fuzz/fuzz_$h.c" test/fuzz/fuzz.h "$OUT/libwxkf.a" \
        "$OUT/flags"
    then
        echo "  LD      $bin"
        # shellcheck disable=SC2086
        $CLANG $CFLAGS -Itest/fuzz -fsanitize=fuzzer -o "$bin" \
            "test/fuzz/fuzz_$h.c" "$OUT/libwxkf.a" $PKG_LIBS
    fi
done

exec 9>&-      # the build is done: unlock (the fuzzers must not hold it)

# --- run ---------------------------------------------------------------------
# Sanitizers: stop at the first report; LSan on (libFuzzer checks every
# input that allocates more than it frees).
export ASAN_OPTIONS="abort_on_error=0:detect_leaks=1:halt_on_error=1:\
allocator_may_return_null=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

# Prints where libFuzzer put the reproducers of a failed run.
reproducers() {
    sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$1"
}

# 0 if the log shows no sanitizer report (even with exit status 0).
clean_log() {
    ! grep -q -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
        -e 'runtime error:' -e 'ERROR: libFuzzer' -e 'SUMMARY: ' "$1"
}

failed=""
summary=""
for h in $HARNESSES; do
    bin=$OUT/fuzz_$h
    log=$OUT/logs/$h.log
    art=$OUT/artifacts/$h/
    corpus=$OUT/corpus/$h
    dict=test/fuzz/dict/$h.dict
    opts="-timeout=5 -rss_limit_mb=2048 -max_len=$(max_len "$h")"
    opts="$opts -artifact_prefix=$art -print_final_stats=1"
    [ -f "$dict" ] && opts="$opts -dict=$dict"
    mkdir -p "$art" "$corpus"

    # 1. regressions: every file, once
    regs=""
    if [ -d "test/fuzz/regressions/$h" ]; then
        regs=$(find "test/fuzz/regressions/$h" -type f | sort)
    fi
    if [ -n "$regs" ]; then
        n=$(printf '%s\n' "$regs" | wc -l)
        echo "== $h: replaying $n regression file(s)"
        # shellcheck disable=SC2086
        if ! "$bin" $opts $regs >"$log.regressions" 2>&1 ||
           ! clean_log "$log.regressions"; then
            echo "fuzz: $h: a regression input fails again:" >&2
            grep -e '^Running: ' -e 'ERROR: ' -e 'runtime error:' \
                -e 'contract broken' "$log.regressions" | tail -n 5 >&2
            echo "fuzz: log: $log.regressions" >&2
            failed="$failed $h"
            summary="$summary
  $h: FAILED (regression)"
            continue
        fi
    fi

    # 2. the seed corpus, then fuzzing (the working corpus grows here)
    if [ -d "test/fuzz/corpus/$h" ]; then
        find "test/fuzz/corpus/$h" -type f -exec cp {} "$corpus/" \;
    fi
    # the working corpus only grows: minimize it now and then
    if [ "$(find "$corpus" -type f | wc -l)" -gt 3000 ]; then
        echo "== $h: minimizing the working corpus"
        rm -rf "$corpus.min"
        mkdir -p "$corpus.min"
        # shellcheck disable=SC2086
        if nice -n "$NICE" "$bin" $opts -merge=1 "$corpus.min" "$corpus" \
            >"$log.merge" 2>&1; then
            rm -rf "$corpus"
            mv "$corpus.min" "$corpus"
        else
            rm -rf "$corpus.min"
        fi
    fi
    if [ "$SECONDS_EACH" -eq 0 ]; then
        echo "== $h: replaying the corpus" \
             "($(find "$corpus" -type f | wc -l) files)"
        runs="-runs=0"
    else
        echo "== $h: fuzzing for ${SECONDS_EACH}s (log: $log)"
        runs="-max_total_time=$SECONDS_EACH"
    fi
    rc=0
    # shellcheck disable=SC2086
    nice -n "$NICE" "$bin" $opts $runs "$corpus" >"$log" 2>&1 || rc=$?
    stats=$(grep -E '^#[0-9]+.*(DONE|INITED)' "$log" | tail -n 1 |
            sed -n 's/.*\(cov: [0-9]*\) \(ft: [0-9]*\) \(corp: [^ ]*\).*/\1 \2 \3/p')
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ] || ! clean_log "$log"; then
        echo "fuzz: $h FAILED (exit $rc); the report:" >&2
        grep -e 'ERROR: ' -e 'runtime error:' -e 'contract broken' \
            -e 'SUMMARY: ' "$log" | head -n 5 >&2 || tail -n 5 "$log" >&2
        for r in $(reproducers "$log"); do
            echo "fuzz: $h: reproducer: $r" >&2
            echo "fuzz:   replay: $bin $r" >&2
        done
        echo "fuzz: log: $log" >&2
        failed="$failed $h"
        summary="$summary
  $h: FAILED"
    else
        summary="$summary
  $h: ok  ${stats:-?}  exec/s: ${eps:-?}"
    fi
done

echo "fuzz: summary (${SECONDS_EACH}s each):$summary"
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
fi
