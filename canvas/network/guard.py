"""Outbound network policy: the SSRF guard in front of every connection to a third-party system.

Users type host names and URLs into credentials and block variables, and the platform then connects to them from
inside the operator's network. Without a guard a user could read cloud metadata (instance credentials!) or reach
internal services. So every outbound connection resolves the name first, checks EVERY address it resolves to, and
then connects to one of the checked addresses itself, never to the name again: resolving twice would leave a DNS
rebinding window (first answer public, second answer 127.0.0.1).

Rules:
- link-local (169.254.0.0/16, fe80::/10) and cloud metadata addresses are always refused;
- private, loopback, CGNAT, unspecified, multicast and reserved addresses are refused unless the operator allows
  private networks (`CANVAS_ALLOW_PRIVATE_NETWORKS=true`) or lists the network (`...=10.1.0.0/16,192.168.5.0/24`);
- an IPv6 address that embeds an IPv4 address (IPv4-mapped, 6to4, NAT64) is also judged by that IPv4 address.

Residual risks, on purpose out of scope here: name resolution itself (getaddrinfo) has no timeout of its own;
protocols whose client library opens its own sockets (most SQL drivers other than libpq) resolve the name again.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import Iterator, Union

import requests
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3 import exceptions as urllib3_errors
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Timeout, parse_url

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

SETTING_NAME = "CANVAS_ALLOW_PRIVATE_NETWORKS"
DEFAULT_HTTP_TIMEOUT = 30.0  # seconds; a guarded session never waits forever for a silent server
DEFAULT_MAX_REDIRECTS = 10

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # CGNAT; Python does not call it private
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ftps": 21, "sftp": 22, "ssh": 22, "smtp": 25, "smtps": 465}

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off", ""})


class BlockedAddressError(Exception):
    """The policy refuses the address; raised before any connection is attempted. The message is safe to show."""


class ConnectTimeoutError(TimeoutError):
    """Opening the TCP connection timed out (as opposed to waiting for an answer on an open connection)."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _judged_forms(address: IPAddress) -> list[IPAddress]:
    embedded = embedded_ipv4(address)
    return [address] if embedded is None else [embedded, address]


def _is_never_allowed(address: IPAddress) -> bool:
    return address in METADATA_ADDRESSES or address.is_link_local


def _non_public_kind(address: IPAddress) -> str | None:
    """Name the non-public range an address is in, or None when it is a public address."""
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("shared/CGNAT", address.version == 4 and address in SHARED_ADDRESS_SPACE),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, matches in checks if matches), None)


def _parse_networks(text: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{SETTING_NAME}: {item!r} is neither true/false nor a CIDR network") from None
    return tuple(networks)


def _strip_brackets(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _unique(items: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class NetworkPolicy:
    """Which outbound addresses may be reached, and which CAs TLS connections trust."""

    allow_private: bool = False
    allowlist: tuple[IPNetwork, ...] = ()
    ca_file: str | None = None

    @classmethod
    def from_setting(cls, value: str | None, ca_file: str | None = None) -> "NetworkPolicy":
        """Build from CANVAS_ALLOW_PRIVATE_NETWORKS: true/false, or a comma list of CIDR networks allowed."""
        text = (value or "").strip()
        if text.lower() in _TRUE_WORDS:
            return cls(allow_private=True, ca_file=ca_file or None)
        if text.lower() in _FALSE_WORDS:
            return cls(ca_file=ca_file or None)
        return cls(allowlist=_parse_networks(text), ca_file=ca_file or None)

    def check_address(self, address: str, host: str | None = None) -> None:
        """Raise BlockedAddressError unless the policy allows connecting to this IP address."""
        ip = ipaddress.ip_address(address)
        forms = _judged_forms(ip)
        shown = address if not host or host == address else f"{host} ({address})"
        if any(_is_never_allowed(form) for form in forms):
            raise BlockedAddressError(
                f"Refused to connect to {shown}: link-local/cloud metadata addresses are never allowed"
            )
        kind = next((k for k in map(_non_public_kind, forms) if k), None)
        if kind is None or self.allow_private or self._is_allowlisted(forms):
            return
        label = "private address" if kind == "private" else f"private address ({kind})"
        raise BlockedAddressError(f"Refused to connect to {shown}: {label}; set {SETTING_NAME} to allow it")

    def _is_allowlisted(self, forms: list[IPAddress]) -> bool:
        return any(form in network for form in forms for network in self.allowlist)

    def resolve(self, host: str, port: int | None) -> list[str]:
        """Resolve a host name and check every address; return the addresses (all allowed) in resolver order.

        socket.gaierror propagates when the name does not resolve.
        """
        name = _strip_brackets((host or "").strip())
        if not name:
            raise BlockedAddressError("Refused to connect: no host name given")
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        # The scope suffix (fe80::1%eth0) only occurs on link-local addresses, which are refused anyway.
        addresses = _unique(str(info[4][0]).split("%")[0] for info in infos)
        for address in addresses:
            self.check_address(address, host=name)
        return addresses

    def connect(
        self, host: str, port: int, timeout: float | None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        """Open a TCP connection to one of the checked addresses of `host` (never resolving it a second time).

        Raises BlockedAddressError, socket.gaierror, ConnectTimeoutError, or the OSError of the last address tried.
        """
        last_error: OSError | None = None
        for address in self.resolve(host, port):
            try:
                return socket.create_connection((address, port), timeout, source_address)
            except TimeoutError as error:
                last_error = ConnectTimeoutError(f"timed out connecting to {address} port {port}")
                last_error.__cause__ = error
            except OSError as error:
                last_error = error
        assert last_error is not None  # resolve() never returns an empty list
        raise last_error

    def check_url(self, url: str) -> None:
        """Resolve the URL's host and check every address; raise BlockedAddressError if one is refused."""
        parsed = parse_url(url)
        if not parsed.host:
            raise BlockedAddressError("Refused to connect: the URL has no host name")
        port = parsed.port or DEFAULT_PORTS.get((parsed.scheme or "").lower(), 0)
        self.resolve(parsed.host, port)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context with default verification (the system's CAs), also trusting ca_file when set: for SMTP
        and FTPS. One per process (_verifying_context)."""
        return _verifying_context(self.ca_file, for_https=False)

    def https_context(self) -> ssl.SSLContext:
        """The context of HTTPS requests: the CAs requests trusts (certifi's bundle); with ca_file, the system's CAs,
        ca_file and that bundle. One per process (_verifying_context)."""
        return _verifying_context(self.ca_file, for_https=True)


def system_trust_context() -> ssl.SSLContext:
    """The system's CAs alone, for the platform's own mail relay: shared like the policies' contexts."""
    return _verifying_context(None, for_https=False)


@functools.cache
def _verifying_context(ca_file: str | None, for_https: bool) -> ssl.SSLContext:
    """Built once per process and CA file, then shared by every connection (an SSLContext serves any number of them,
    from any thread, and no caller here changes it): loading a trust store costs ~25-30 ms of CPU, which every SMTP,
    FTPS and HTTPS connection of a run used to pay. A CA file changed on disk counts from the process's next start."""
    if for_https and not ca_file:
        return ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
    context = ssl.create_default_context()
    for bundle in (ca_file, DEFAULT_CA_BUNDLE_PATH if for_https else None):
        if bundle:
            context.load_verify_locations(cafile=bundle)
    return context


# --- requests -----------------------------------------------------------------------------------------------------
# The check sits where urllib3 opens a connection: that runs for the first request and for every redirect hop, before
# a single byte is sent, and it connects to the very address that was checked, which closes the rebinding window.


class _GuardedConnectionMixin:
    """urllib3 connection whose socket comes from NetworkPolicy.connect; TLS still verifies against the host name."""

    policy: NetworkPolicy  # set on the per-policy subclasses built by _guarded_pool_classes

    def _new_conn(self) -> socket.socket:
        timeout = Timeout.resolve_default_timeout(self.timeout)  # urllib3's "default" token means socket's default
        try:
            sock = self.policy.connect(self.host, self.port, timeout, self.source_address)
        except socket.gaierror as error:
            raise urllib3_errors.NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:
            raise urllib3_errors.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        except OSError as error:
            raise urllib3_errors.NewConnectionError(self, f"Failed to establish a new connection: {error}") from error
        for option in self.socket_options or ():
            sock.setsockopt(*option)
        return sock


def _guarded_pool_classes(policy: NetworkPolicy) -> dict[str, type[HTTPConnectionPool]]:
    http_connection = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), {"policy": policy})
    https_connection = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection), {"policy": policy})
    return {
        "http": type("GuardedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_connection}),
        "https": type("GuardedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_connection}),
    }


class GuardedHTTPAdapter(HTTPAdapter):
    """Transport adapter whose connection pools only open connections the policy allows."""

    __attrs__ = HTTPAdapter.__attrs__ + ["policy"]

    def __init__(self, policy: NetworkPolicy, **kwargs):
        self.policy = policy  # before super().__init__, which builds the pool manager
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=DEFAULT_POOLBLOCK, **pool_kwargs):
        # requests' `verify=<path>` would REPLACE the default CAs; a context ADDS the operator's CA to them.
        pool_kwargs.setdefault("ssl_context", self.policy.https_context())
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _guarded_pool_classes(self.policy)

    def cert_verify(self, conn, url, verify, cert):
        """Certificates are verified against the pool's context, which holds its CAs already: requests would have each
        new connection load its CA bundle into it again. Every connection of the process shares that context, and
        urllib3 applies a request's TLS options to it: verification turned off, another CA bundle or a client
        certificate would stay there for everyone's later connections, so none is accepted (CANVAS_TLS_CA_FILE is
        the platform's one way to trust more CAs)."""
        if verify is not True or cert is not None:
            raise ValueError("Refused to connect: a request cannot change how certificates are verified")
        super().cert_verify(conn, url, verify, cert)
        conn.ca_certs = conn.ca_cert_dir = None

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # A proxy resolves and connects on our behalf, out of the guard's sight.
        raise BlockedAddressError("Refused to connect through a proxy: the outbound guard cannot check its targets")


class GuardedSession(requests.Session):
    """A requests session that enforces a NetworkPolicy on every request and redirect hop.

    It ignores proxy settings and .netrc from the environment (trust_env is off) and applies a default timeout.
    """

    def __init__(self, policy: NetworkPolicy, default_timeout: float | None = DEFAULT_HTTP_TIMEOUT):
        super().__init__()
        self.policy = policy
        self.default_timeout = default_timeout
        self.trust_env = False
        self.max_redirects = DEFAULT_MAX_REDIRECTS
        adapter = GuardedHTTPAdapter(policy)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(self, method, url, *args, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


def guarded_session(policy: NetworkPolicy, default_timeout: float | None = DEFAULT_HTTP_TIMEOUT) -> GuardedSession:
    """A requests session for calling third-party systems under `policy`."""
    return GuardedSession(policy, default_timeout)
