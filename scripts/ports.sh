# wxkf — the choice of TCP ports for private services on 127.0.0.1 (POSIX
# sh, sourced by scripts/run.sh; test/pylib/wxkf_ports.py is the same rule
# for the test stacks and make bench).
#
# A port is chosen below the kernel's ephemeral range, so that no outgoing
# connection can be handed it between the choice and the server's bind:
# 10000 up to one below the lower bound in
# /proc/sys/net/ipv4/ip_local_port_range (Linux's default 32768-60999 gives
# 10000-32767); 1024 up to it when that bound is below 11000; 10000-32767
# when the file is unreadable or the bound is below 2024. Each candidate is
# checked by binding and listening on it with SO_REUSEADDR, as Redis,
# PostgreSQL and nginx do (a listener or the local end of a connection makes
# it fail), from a random start upwards, at most 200 candidates.
#
#   ports_range FILE          prints "LO HI" (FILE: $PORTS_RANGE_FILE)
#   port_bindable PORT        status 0 when a server could listen there now
#   free_port [AVOID...]      prints a port (status 1 when none was found)

PORTS_RANGE_FILE=/proc/sys/net/ipv4/ip_local_port_range
PORTS_TRIES=200

ports_range() {
    _pr_low=$(sed -n '1s/^[[:space:]]*\([0-9][0-9]*\).*/\1/p' "$1" 2>/dev/null || true)
    case $_pr_low in
        ''|????????*) echo "10000 32767"; return 0 ;;   # unreadable, garbled
    esac
    _pr_low=$((_pr_low + 0))
    if [ "$_pr_low" -ge 11000 ]; then
        [ "$_pr_low" -le 65536 ] || _pr_low=65536
        echo "10000 $((_pr_low - 1))"
    elif [ "$_pr_low" -ge 2024 ]; then
        echo "1024 $((_pr_low - 1))"
    else
        echo "10000 32767"
    fi
}

port_bindable() {
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError:
    sys.exit(1)
' "$1" 2>/dev/null
}

free_port() {
    [ -x /usr/bin/python3 ] || { echo "free_port: /usr/bin/python3 is needed to check ports (run: make deps)" >&2; return 1; }
    _fp_range=$(ports_range "$PORTS_RANGE_FILE")
    _fp_lo=${_fp_range% *} _fp_hi=${_fp_range#* }
    _fp_size=$((_fp_hi - _fp_lo + 1))
    _fp_off=$(($(od -An -tu4 -N4 /dev/urandom | tr -d ' \n') % _fp_size))
    _fp_i=0
    while [ $_fp_i -lt "$PORTS_TRIES" ] && [ $_fp_i -lt $_fp_size ]; do
        _fp_p=$((_fp_lo + (_fp_off + _fp_i) % _fp_size))
        _fp_i=$((_fp_i + 1))
        case " $* " in *" $_fp_p "*) continue ;; esac
        port_bindable "$_fp_p" && { echo "$_fp_p"; return 0; }
    done
    echo "free_port: no free port in $_fp_lo-$_fp_hi ($_fp_i tried)" >&2
    return 1
}
