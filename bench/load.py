"""Load with wrk, bounded in time, on loopback; and single probes that say what a server really answers."""

from __future__ import annotations

import http.client
import re
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit

from .servers import run

THREADS = 2
CONNECTIONS = 32

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_LATENCY = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$", re.MULTILINE)
_TOTAL = re.compile(
    r"^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h), (\d+(?:\.\d+)?)(B|KB|MB|GB|TB) read", re.MULTILINE
)
_RATE = re.compile(r"^Requests/sec:\s+(\d+(?:\.\d+)?)", re.MULTILINE)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_BAD_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    bytes_read: int
    requests_per_second: float
    #: Percentile (50, 75, 90, 99) to milliseconds, from wrk's --latency distribution.
    latency_ms: dict[float, float]
    socket_errors: int
    non_2xx_3xx: int

    @property
    def p50(self) -> float:
        return self.latency_ms[50.0]

    @property
    def p99(self) -> float:
        return self.latency_ms[99.0]

    @property
    def bytes_per_response(self) -> float:
        return self.bytes_read / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Probe:
    """One request's answer: status, headers (lower-case names) and body size on the wire."""

    status: int
    headers: dict[str, str]
    body: bytes

    def describe(self) -> str:
        encoding = self.headers.get("content-encoding", "")
        return f"{self.status}{' ' + encoding if encoding else ''}, {len(self.body):,} B"


def wrk(url: str, seconds: int, headers: dict[str, str] | None = None) -> WrkResult:
    """Runs wrk against `url` for `seconds` and parses its report; raises on a broken run."""
    command = [wrk_binary(), f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    done = run([*command, url], timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> WrkResult:
    total, rate = _TOTAL.search(output), _RATE.search(output)
    if total is None or rate is None:
        raise ValueError(f"unreadable wrk output:\n{output}")
    latency = {float(share): float(value) * _UNITS[unit] for share, value, unit in _LATENCY.findall(output)}
    if 50.0 not in latency or 99.0 not in latency:
        raise ValueError(f"wrk output has no latency distribution (--latency):\n{output}")
    sockets, bad = _SOCKET.search(output), _BAD_STATUS.search(output)
    return WrkResult(
        requests=int(total[1]),
        seconds=float(total[2]) * _UNITS[total[3]] / 1e3,
        bytes_read=int(float(total[4]) * _SIZES[total[5]]),
        requests_per_second=float(rate[1]),
        latency_ms=latency,
        socket_errors=sum(int(count) for count in sockets.groups()) if sockets else 0,
        non_2xx_3xx=int(bad[1]) if bad else 0,
    )


def probe(url: str, headers: dict[str, str] | None = None, timeout: float = 30) -> Probe:
    """One GET on a fresh connection, with the body exactly as sent (no decompression, no redirects)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/", headers=headers or {})
        response = connection.getresponse()
        return Probe(response.status, {name.lower(): value for name, value in response.getheaders()}, response.read())
    finally:
        connection.close()


def wrk_binary() -> str:
    return shutil.which("wrk") or "/usr/bin/wrk"
