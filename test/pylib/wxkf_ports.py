"""The choice of TCP ports for private services on loopback (the test
stacks, make bench, scratch Redis servers): below the kernel's ephemeral
range, so that no outgoing connection can be handed the port between the
choice and the server's bind, and checked by binding it the way the
servers do. scripts/ports.sh is the same rule for `make run`.

The range: 10000 up to one below the lower bound in
/proc/sys/net/ipv4/ip_local_port_range (Linux's default 32768-60999 gives
10000-32767); 1024 up to it when that bound is below 11000; FALLBACK when
the file is unreadable or the bound is below 2024 (then the kernel hands
out almost every port, and only the check by binding and the retry on a
new port protect). Standard library only."""

import errno
import random
import socket

RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range'
FLOOR = 10000
FALLBACK = (10000, 32767)
TRIES = 200


def port_range(path=RANGE_FILE):
    """(lo, hi), inclusive: where private services' ports are chosen."""
    try:
        with open(path, encoding='ascii') as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return FALLBACK
    if low >= FLOOR + 1000:
        return (FLOOR, min(low, 65536) - 1)
    if low >= 2024:
        return (1024, low - 1)
    return FALLBACK


def bindable(port, addr='127.0.0.1'):
    """A server could listen on addr:port now: bind and listen with
    SO_REUSEADDR, as Redis, PostgreSQL and nginx do (a listener or the
    local end of a connection there makes it fail; a TIME_WAIT does not)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(1)
        return True
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        s.close()


def free_ports(n, avoid=(), span=None, addr='127.0.0.1'):
    """n distinct ports in span (default: port_range()) that bind now,
    none in avoid: from a random start upwards, wrapping, at most TRIES
    candidates. Raises RuntimeError when fewer were found."""
    lo, hi = span or port_range()
    size = hi - lo + 1
    start = random.randrange(size)
    taken = set(avoid)
    out = []
    for i in range(min(size, TRIES)):
        p = lo + (start + i) % size
        if p in taken or not bindable(p, addr):
            continue
        out.append(p)
        taken.add(p)
        if len(out) == n:
            return out
    raise RuntimeError('only %d of %d free ports in %d-%d (%d tried)'
                       % (len(out), n, lo, hi, min(size, TRIES)))


def free_port(avoid=(), span=None):
    """One port, as free_ports."""
    return free_ports(1, avoid, span)[0]


def occupy_with_connection(port, addr='127.0.0.1'):
    """Makes addr:port the local end of an established loopback connection
    (not a listener), as an outgoing connection handed that port by the
    kernel would. Returns the three sockets (listener, client, accepted);
    the caller closes them."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind((addr, 0))
        srv.listen(1)
        cli.bind((addr, port))
        cli.connect(srv.getsockname())
        acc, _ = srv.accept()
    except OSError:
        srv.close()
        cli.close()
        raise
    return [srv, cli, acc]


class PortTaken(Exception):
    """A server could not bind its port: another socket holds it."""


def bind_refused(log_path):
    """The server's log says a bind failed because the address was in
    use (Redis, PostgreSQL and nginx all say it so)."""
    try:
        with open(log_path, encoding='utf-8', errors='replace') as f:
            return 'Address already in use' in f.read()
    except OSError:
        return False


def start_on_free_port(start, avoid=()):
    """start(port) starts a server on a newly chosen port and returns what
    the caller keeps; it raises PortTaken when the server's bind was
    refused, and is then called once more on another newly chosen port."""
    port = free_port(avoid)
    try:
        return start(port)
    except PortTaken:
        return start(free_port(tuple(avoid) + (port,)))
