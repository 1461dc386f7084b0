"""Hosts for multi-host tests: Linux network namespaces joined by a bridge, reachable from the test.

Each host is a network namespace with its own loopback and one interface (``eth0``) plugged
into a bridge; the test process (the "driver", in the root namespace) is plugged into the same
bridge. Every host gets an address in a private /24 that no interface or route of this machine
uses; processes started on a host listen and connect through that address only::

    root namespace: the driver, interface wb<token> ---+
    namespace wb<token>-scheduler: eth0 ----------------+--- bridge br0 in namespace wb<token>-switch
    namespace wb<token>-worker-a: eth0 -----------------+

The bridge sits in a namespace of its own rather than in the root namespace: the root namespace
then gains a single interface (the driver's end of its veth pair), the machine's firewall and
bridge-netfilter rules never see the traffic between hosts, and deleting the namespaces takes
every veth pair with it (a pair dies with either end). All names carry a random token, so that
concurrent runs never clash. Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Host", "Network", "NamespacesUnavailable", "network"]

_HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,14}$")  # also the host's port name on the bridge (<= 15 chars)
_BRIDGE = "br0"
_KILL_TIMEOUT = 10.0


class NamespacesUnavailable(RuntimeError):
    """This machine does not let the test create network namespaces (not root, no CAP_NET_ADMIN)."""


@dataclass
class Host:
    """One "host": a network namespace with an address, and the processes started in it."""

    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, command: Sequence[str], log: Path) -> subprocess.Popen:
        """Run ``command`` inside the host, its stdout and stderr appended to ``log``."""
        with open(log, "ab") as output:
            process = subprocess.Popen(["ip", "netns", "exec", self.namespace, *command],
                                       stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes.append(process)  # `ip netns exec` execs the command: this PID is the command's
        return process

    def pids(self) -> list[int]:
        """Every process inside the host, whoever started it."""
        return [int(pid) for pid in _ip("netns", "pids", self.namespace).split()]

    def kill(self) -> None:
        """SIGKILL every process of the host until none is left: the host crashes (its kernel still
        closes the connections, so peers notice at once, as after a crash rather than a power cut)."""
        deadline = time.monotonic() + _KILL_TIMEOUT
        while pids := self.pids():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for process in self.processes:
                process.poll()  # reap ours
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} of host {self.name} survived SIGKILL for {_KILL_TIMEOUT:g} s")
            time.sleep(0.02)
        for process in self.processes:
            process.wait()


@dataclass
class Network:
    """Hosts on one bridge, and the driver's (this process's) address on it."""

    token: str
    subnet: ipaddress.IPv4Network
    driver_address: str
    hosts: dict[str, Host]

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def namespaces(self) -> list[str]:
        return [f"wb{self.token}-switch", *(host.namespace for host in self.hosts.values())]

    @property
    def driver_link(self) -> str:
        return f"wb{self.token}"


@contextmanager
def network(host_names: Sequence[str]) -> Iterator[Network]:
    """Create hosts named ``host_names`` on a fresh bridge; on exit kill their processes and remove
    every namespace and link, even when the body failed, and check that nothing is left.

    Raises :class:`NamespacesUnavailable` when namespaces cannot be created here.
    """
    bad = [name for name in host_names if not _HOST_NAME.match(name) or name == "switch"]
    if bad or len(set(host_names)) != len(host_names):
        raise ValueError(f"host names must be distinct, 1-15 characters of a-z, 0-9 and '-' (not 'switch'): "
                         f"{list(host_names)!r}")
    token = _free_token()
    subnet = _free_subnet()
    addresses = [str(address) for address in subnet.hosts()]
    net = Network(token, subnet, driver_address=addresses[0], hosts={
        name: Host(name, f"wb{token}-{name}", address) for name, address in zip(host_names, addresses[1:])
    })
    switch = net.namespaces[0]
    _create_first_namespace(switch)
    try:
        _ip("link", "add", _BRIDGE, "type", "bridge", namespace=switch)
        _ip("link", "set", _BRIDGE, "up", namespace=switch)
        _ip("link", "add", net.driver_link, "type", "veth", "peer", "name", "driver", "netns", switch)
        _plug(switch, "driver")
        _ip("address", "add", f"{net.driver_address}/{subnet.prefixlen}", "dev", net.driver_link)
        _ip("link", "set", net.driver_link, "up")
        for host in net.hosts.values():
            _ip("netns", "add", host.namespace)
            _ip("link", "set", "lo", "up", namespace=host.namespace)
            _ip("link", "add", host.name, "type", "veth", "peer", "name", "eth0", "netns", host.namespace,
                namespace=switch)
            _plug(switch, host.name)
            _ip("address", "add", f"{host.address}/{subnet.prefixlen}", "dev", "eth0", namespace=host.namespace)
            _ip("link", "set", "eth0", "up", namespace=host.namespace)
        yield net
    finally:
        _remove(net)


def _plug(switch: str, port: str) -> None:
    _ip("link", "set", port, "master", _BRIDGE, namespace=switch)
    _ip("link", "set", port, "up", namespace=switch)


def _remove(net: Network) -> None:
    """Kill every host's processes, delete namespaces and links, then check that none is left."""
    errors = []
    for host in net.hosts.values():
        if host.namespace in _namespaces():
            try:
                host.kill()
            except RuntimeError as error:
                errors.append(str(error))
    for namespace in net.namespaces:
        if namespace in _namespaces():
            _ip("netns", "delete", namespace, check=False)
    if _link_exists(net.driver_link):  # normally gone with its peer in the switch namespace
        _ip("link", "delete", net.driver_link, check=False)
    left = [namespace for namespace in net.namespaces if namespace in _namespaces()]
    left += [net.driver_link] if _link_exists(net.driver_link) else []
    if errors or left:
        raise RuntimeError(f"network namespace clean-up failed: {'; '.join(errors)} left behind: {left}")


def _create_first_namespace(namespace: str) -> None:
    """``ip netns add``, telling a machine that forbids namespaces from a failure of the test."""
    try:
        result = subprocess.run(["ip", "netns", "add", namespace], capture_output=True, text=True)
    except FileNotFoundError:
        raise NamespacesUnavailable("the `ip` command (iproute2) is not installed") from None
    if result.returncode != 0:
        message = f"`ip netns add` failed (uid {os.geteuid()}): {result.stderr.strip()}"
        if os.geteuid() != 0 or re.search(r"not permitted|permission denied", result.stderr, re.IGNORECASE):
            raise NamespacesUnavailable(message)
        raise RuntimeError(message)


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result.stdout


def _namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()}


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def _free_token() -> str:
    """Six hex digits that no namespace or link of this machine uses yet."""
    while True:
        token = secrets.token_hex(3)
        if not _link_exists(f"wb{token}") and not any(n.startswith(f"wb{token}-") for n in _namespaces()):
            return token


def _free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no address or route of the root namespace."""
    used = [ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            for link in json.loads(_ip("-j", "-4", "address")) for a in link.get("addr_info", [])]
    used += [ipaddress.ip_network(route["dst"]) for route in json.loads(_ip("-j", "-4", "route"))
             if route["dst"] != "default"]
    for _ in range(100):
        subnet = ipaddress.ip_network(f"10.{1 + secrets.randbelow(254)}.{secrets.randbelow(256)}.0/24")
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise RuntimeError(f"no free 10.x.y.0/24 subnet: this machine uses {used}")
