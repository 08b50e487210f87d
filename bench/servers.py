"""The servers under test: the service as deployed, a naive feedgen app, and nginx; start, watch, stop."""

# ruff: noqa: S108, S603 - starts the servers under test
from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from feeds import supervisor

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin" if (REPO / ".venv" / "bin").is_dir() else Path(sys.executable).parent
HOST = "127.0.0.1"
WORKERS = 2
#: Every URL inside a feed starts with this, whichever server wrote it, so all serve the same bytes.
BASE_URL = "https://frettir.example.is"


GRANIAN, GUNICORN = "granian", "gunicorn"


def server_command(port: int, app: str = "app", server: str = GRANIAN) -> list[str]:
    """The production server exactly as deployed (`make run`); change it there and every row follows.

    The service runs under its supervisor (granian beside the indexer); the naive app is granian
    alone, with the same flags. gunicorn (threaded workers, which keep connections alive as wrk
    does) is the alternative measured for the choice of server.
    """
    if server == GUNICORN:
        return [
            str(BIN / "gunicorn"), "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", "4",
            "--bind", f"{HOST}:{port}", f"{app}:app",
        ]  # fmt: skip
    if app == "app":
        # No access log: nginx, which every row is compared with, runs without one too.
        return [str(BIN / "flask"), "--app", app, "serve", "--host", HOST, "--port", str(port),
                "--workers", str(WORKERS), "--no-access-log"]  # fmt: skip
    return next(child.argv for child in supervisor.commands(app, HOST, port, WORKERS) if child.name == "server")


def compile_service() -> None:
    """The service's modules compiled to bytecode once, as `make run` and an installed package have
    them: where PYTHONDONTWRITEBYTECODE is set (as here, and in many container images), every process
    would otherwise compile them anew as it starts (about 0.1 s of a one-off export)."""
    subprocess.run(
        [str(BIN / "python"), "-m", "compileall", "-q", str(REPO / "feeds"), str(REPO / "app.py")],
        check=True, timeout=300,
    )  # fmt: skip


def service_env(content_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of every process that reads the corpus: the server, the naive app, the CLI."""
    return {
        **os.environ,
        "FEEDS_CONTENT_DIR": str(content_dir),
        "FEEDS_CACHE_DIR": str(cache_dir),
        "FEEDS_BASE_URL": BASE_URL,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A process group we started; `stop` ends the whole group."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.perf_counter)

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def workers(self) -> list[int]:
        """The processes that answer requests: the master's children, or the master if it has none."""
        return _children(self.process.pid) or [self.process.pid]

    def peak_rss_bytes(self) -> list[int]:
        """The VmHWM (peak resident set) of each worker, largest first."""
        return sorted((_vm_hwm(pid) for pid in self.workers()), reverse=True)

    def cpu_seconds(self) -> float:
        """CPU time used so far by the master and all its descendants."""
        pending, ticks = [self.process.pid], 0
        while pending:
            pid = pending.pop()
            pending += _children(pid)
            try:  # utime and stime, the 14th and 15th fields, counted after the ")" that ends the name
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout: float, interval: float = 0.5, share: float = 0.1) -> float | None:
        """Seconds until the server used under `share` of a core for two intervals in a row; None if never."""
        started = time.perf_counter()
        quiet, before = 0, self.cpu_seconds()
        while time.perf_counter() - started < timeout:
            time.sleep(interval)
            now = self.cpu_seconds()
            quiet, before = (quiet + 1 if now - before < share * interval else 0), now
            if quiet == 2:
                return time.perf_counter() - started - 2 * interval
        return None

    def wait_ready(self, path: str, timeout: float) -> float:
        """Seconds from start until `path` answered 200; raises if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
                connection.request("GET", path)
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer {path} within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Workers left behind by a master that exited first belong to the same group.
        _signal_group(self.process.pid, signal.SIGKILL)
        if self in _running:
            _running.remove(self)


_running: list[Server] = []


def start(name: str, port: int, command: list[str], env: dict[str, str], log: Path) -> Server:
    """Starts `command`, which listens on `port`, in a new process group from the repository, output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, port, process, log, started)
    _running.append(server)
    return server


def start_service(content_dir: Path, cache_dir: Path, log: Path, server: str = GRANIAN) -> Server:
    port = free_port()
    return start("service", port, server_command(port, server=server), service_env(content_dir, cache_dir), log)


def start_naive(content_dir: Path, cache_dir: Path, log: Path) -> Server:
    port = free_port()
    command = server_command(port, "bench.naive_app")
    return start("naive feedgen", port, command, service_env(content_dir, cache_dir), log)


def start_nginx(docroot: Path, work: Path) -> Server:
    """nginx on a free loopback port serving `docroot` as static files."""
    port = free_port()
    # Workers run as "nobody" when the master is root: let them read the document root.
    for folder in (docroot, *docroot.parents):
        if folder == Path("/tmp") or folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o755)
    return start_nginx_with(
        "nginx",
        port,
        work,
        f"""
    types {{ application/rss+xml xml; }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/rss+xml;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    gzip off;
    gzip_static on;
    server {{
        listen {HOST}:{port};
        root {docroot};
    }}""",
    )


def start_nginx_with(name: str, port: int, work: Path, http: str, user: str = "") -> Server:
    """nginx with its own prefix, config, pid file, temp folders and error log under `work`, and `http`
    inside its http block; `user` is an optional `user` directive."""
    work.mkdir(parents=True, exist_ok=True)
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / temp).mkdir(exist_ok=True)
    config = work / "nginx.conf"
    config.write_text(f"""
daemon off;
{user}
master_process on;
worker_processes {WORKERS};
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
{http}
}}
""")
    command = [nginx_binary(), "-c", str(config), "-p", f"{work}/", "-e", f"{work}/error.log"]
    server = start(name, port, command, dict(os.environ), work / "stdout.log")
    server.log = work / "error.log"
    return server


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def run(command: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs a command to its end in its own process group, which is killed whole on timeout or error."""
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise
        _signal_group(process.pid, signal.SIGKILL)  # anything it left behind, e.g. pool workers
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def stop_all() -> None:
    """Stops every server still running; for `finally` blocks."""
    for server in list(_running):
        server.stop()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _children(pid: int) -> list[int]:
    """Child processes of every thread of `pid`."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
