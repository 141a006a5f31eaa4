"""Two hosts on one machine (bench/hosts.py): network namespaces joined to the host by veth
pairs, and the TCP forwarders that carry their traffic to services listening on 127.0.0.1.

    service address 10.231.0.1   veth pair hsvc0/hsvc1, both ends on the host (the sandbox binds it)
    host a  netns hosts-a        hsta-h 10.231.1.1 (host side) <-> hsta-n 10.231.1.2 (in the netns)
    host b  netns hosts-b        hstb-h 10.231.2.1 (host side) <-> hstb-n 10.231.2.2 (in the netns)

Each namespace routes everything through its host-side address. PostgreSQL, Redis and RabbitMQ
on this machine listen on 127.0.0.1 only and are shared with other people's runs, so nothing
about them changes: one forwarder process per host listens on that host's host-side address
(5432, 6379, 5672) and relays to 127.0.0.1. A host's traffic to the databases and the broker
passes only through its own forwarder, so killing the forwarder closes every server-side
connection the host had, at once.

Everything is named with the `hosts-`/`hst`/`hsvc` prefixes and forwarders leave pid files, so a
crashed run's leftovers are found and removed by `cleanup()` (namespaces, veths, the processes
in the namespaces, forwarders), which is idempotent. Needs root (CI has it).

    python -m bench.netns forward 10.231.1.1 5432 6379 5672    # one forwarder (bench/hosts.py)
    python -m bench.netns cleanup                               # remove a crashed run's leftovers
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "10.231"
SERVICE_ADDRESS = f"{PREFIX}.0.1"
SERVICE_LINKS = ("hsvc0", "hsvc1")
FORWARDED_PORTS = (5432, 6379, 5672)
STATE_DIR = Path(os.environ.get("HOSTS_STATE_DIR", "/tmp/bench-hosts"))
FORWARDER_MARK = "bench.netns"
IP_TIMEOUT_S = 10


@dataclass(frozen=True)
class Host:
    name: str
    index: int

    @property
    def netns(self) -> str:
        return f"hosts-{self.name}"

    @property
    def host_link(self) -> str:
        return f"hst{self.name}-h"

    @property
    def ns_link(self) -> str:
        return f"hst{self.name}-n"

    @property
    def gateway(self) -> str:
        """The host-side address: where this host reaches the forwarders."""
        return f"{PREFIX}.{self.index}.1"

    @property
    def address(self) -> str:
        """The host's own address inside its namespace."""
        return f"{PREFIX}.{self.index}.2"

    @property
    def cpus(self) -> set[int]:
        """The cores this host's processes are pinned to: a machine of its own (one core each
        on this 2-core machine; HOSTS_CPUS="0;1" sets them, "" turns pinning off)."""
        spec = os.environ.get("HOSTS_CPUS", "0;1" if (os.cpu_count() or 1) >= len(HOSTS) else "")
        if not spec:
            return set()
        return {int(cpu) for cpu in spec.split(";")[self.index - 1].split(",")}

    def enter(self) -> None:
        """In a child before exec: pin to the host's cores (inherited by everything it starts)
        and die with the harness."""
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        die_with_parent()

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside this host's namespace (`ip netns exec` execs it, no extra process)."""
        return ["ip", "netns", "exec", self.netns, *argv]


HOSTS = (Host("a", 1), Host("b", 2))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], check=check, capture_output=True, text=True, timeout=IP_TIMEOUT_S
    )


def netns_list() -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def links() -> list[str]:
    out = ip("-o", "link", "show", check=False).stdout
    # "5: hsta-h@if4: <...>" -> "hsta-h"
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def foreign_addresses(ours: Sequence[str]) -> list[str]:
    """Addresses in our 10.231/16 range on interfaces that are not ours (would clash)."""
    out = ip("-o", "-4", "addr", "show", check=False).stdout
    clashes = []
    for line in out.splitlines():
        parts = line.split()
        name, address = parts[1], parts[3]
        if address.startswith(PREFIX + ".") and name not in ours:
            clashes.append(f"{name} {address}")
    return clashes


def our_links() -> list[str]:
    return [*SERVICE_LINKS, *(h.host_link for h in HOSTS)]


def netns_pids(netns: str) -> list[int]:
    if netns not in netns_list():
        return []
    out = ip("netns", "pids", netns, check=False).stdout
    return [int(pid) for pid in out.split() if pid.isdigit()]


def kill_netns_processes(netns: str, *, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process in the namespace (by id) and wait until none is left."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while pids := netns_pids(netns):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes left in {netns} after SIGKILL: {pids}")
        time.sleep(0.05)
    return killed


def up() -> None:
    """Create the service address, both namespaces and their veth pairs (after `cleanup()`)."""
    clashes = foreign_addresses(our_links())
    if clashes:
        raise RuntimeError(f"{PREFIX}.0.0/16 is already in use here: {clashes}")
    a, b = SERVICE_LINKS
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    ip("addr", "add", f"{SERVICE_ADDRESS}/32", "dev", a)
    ip("link", "set", a, "up")
    ip("link", "set", b, "up")
    for host in HOSTS:
        ip("netns", "add", host.netns)
        ip("link", "add", host.host_link, "type", "veth", "peer", "name", host.ns_link)
        ip("link", "set", host.ns_link, "netns", host.netns)
        ip("addr", "add", f"{host.gateway}/24", "dev", host.host_link)
        ip("link", "set", host.host_link, "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.ns_link)
        ip("-n", host.netns, "link", "set", host.ns_link, "up")
        ip("-n", host.netns, "route", "add", "default", "via", host.gateway)


def link_set(host: Host, *, up: bool) -> None:
    """Pull or plug the host's cable: its veth goes down (no packet passes, nothing is reset)."""
    ip("link", "set", host.host_link, "up" if up else "down")


def cleanup() -> list[str]:
    """Remove everything `up()` and the forwarders made, from this run or a crashed one.
    Returns what was removed (for the log)."""
    removed = []
    for pid in forwarder_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            removed.append(f"forwarder {pid}")
    for pidfile in STATE_DIR.glob("forwarder-*.pid"):
        pidfile.unlink(missing_ok=True)
    for host in HOSTS:
        if host.netns in netns_list():
            killed = kill_netns_processes(host.netns)
            if killed:
                removed.append(f"{len(killed)} processes in {host.netns}")
            ip("netns", "del", host.netns, check=False)
            removed.append(f"netns {host.netns}")
    present = links()
    for name in (SERVICE_LINKS[0], *(h.host_link for h in HOSTS)):
        # Deleting a namespace destroys its veth end (and so the pair) asynchronously; delete
        # the host side too so the next `up()` never races it.
        if name in present:
            ip("link", "del", name, check=False)
            removed.append(f"link {name}")
    return removed


# --- forwarders ------------------------------------------------------------------------------


def forwarder_pids() -> list[int]:
    """Live forwarder processes named by our pid files (the pid must still be a forwarder)."""
    pids = []
    for pidfile in STATE_DIR.glob("forwarder-*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if is_forwarder(cmdline):
            pids.append(pid)
    return pids


def is_forwarder(cmdline: Sequence[bytes]) -> bool:
    """Whether a /proc cmdline is one of our forwarders (a pid may have been reused)."""
    return FORWARDER_MARK.encode() in cmdline and b"forward" in cmdline


def die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if the harness dies (even by SIGKILL) the forwarder goes with it.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


class Forwarder:
    """One forwarder process for one host: listens on `address`, relays to 127.0.0.1."""

    def __init__(self, name: str, address: str, ports: Sequence[int] = FORWARDED_PORTS) -> None:
        self.name, self.address, self.ports = name, address, tuple(ports)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pidfile(self) -> Path:
        return STATE_DIR / f"forwarder-{self.name}.pid"

    def start(self, *, timeout: float = 10.0) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", FORWARDER_MARK, "forward", self.address]
        self.proc = subprocess.Popen(
            [*argv, *map(str, self.ports)],
            cwd=Path(__file__).resolve().parents[1],
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        self.pidfile.write_text(str(self.proc.pid))
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not _accepts(self.address, port):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"forwarder {self.name} did not listen on {port}")
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """CPU time the forwarder used so far (user + system)."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: the kernel closes every connection it relayed, on both sides."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.pidfile.unlink(missing_ok=True)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # Either side gone: close the other, so the peer sees what a real network would.
        writer.close()


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    target: tuple[str, int],
) -> None:
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        _pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer)
    )


async def serve(address: str, ports: Sequence[int], target_host: str = "127.0.0.1") -> None:
    """Relay `address:port` to `target_host:port` for every port, until cancelled."""
    servers = []
    for port in ports:

        async def handle(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, port: int = port
        ) -> None:
            await _relay(r, w, (target_host, port))

        servers.append(await asyncio.start_server(handle, address, port))
    try:
        await asyncio.gather(*(server.serve_forever() for server in servers))
    finally:
        for server in servers:
            server.close()


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["forward"] and len(argv) >= 3:
        asyncio.run(serve(argv[1], [int(p) for p in argv[2:]]))
        return 0
    if argv[:1] == ["cleanup"]:
        for item in cleanup():
            print("removed", item)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
