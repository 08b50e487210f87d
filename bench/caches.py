"""Shared caches in front of the service on loopback, from the shipped configurations in deploy/.

Varnish runs deploy/varnish/default.vcl and nginx deploy/nginx/proxy-cache.conf, each changed only
in where it listens, where the origin is and where files go. Tests and `python -m bench.lastmile`
start them; `servers.stop_all` stops them with everything else.
"""

# ruff: noqa: S603 - starts the caches under test
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from . import servers
from .servers import HOST, Server, free_port

VCL = servers.REPO / "deploy" / "varnish" / "default.vcl"
NGINX_CACHE = servers.REPO / "deploy" / "nginx" / "proxy-cache.conf"
ORIGIN_IN_CONFIGS = ("127.0.0.1", "8000")


def varnishd_binary() -> str | None:
    return shutil.which("varnishd") or next((p for p in ("/usr/sbin/varnishd",) if Path(p).exists()), None)


def varnishstat_binary() -> str | None:
    return shutil.which("varnishstat") or next((p for p in ("/usr/bin/varnishstat",) if Path(p).exists()), None)


def start_varnish(origin_port: int, work: Path, port: int | None = None, memory_mb: int = 64) -> Server:
    """varnishd on a free loopback port, in the foreground, with the shipped VCL aimed at `origin_port`."""
    binary = varnishd_binary()
    if binary is None:
        raise FileNotFoundError("varnishd is not installed: apt-get install varnish varnish-modules")
    work.mkdir(parents=True, exist_ok=True)
    vcl = work / "default.vcl"
    text = VCL.read_text()
    backend = f'.host = "{ORIGIN_IN_CONFIGS[0]}";\n    .port = "{ORIGIN_IN_CONFIGS[1]}";'
    if backend not in text:
        raise RuntimeError("the shipped VCL's backend moved; update bench/caches.py")
    vcl.write_text(text.replace(backend, f'.host = "{HOST}";\n    .port = "{origin_port}";'))
    port = port or free_port()
    command = [
        binary, "-F", "-j", "none", "-n", str(work / "varnish"), "-a", f"{HOST}:{port}", "-f", str(vcl),
        "-s", f"malloc,{memory_mb}m", "-T", f"{HOST}:{free_port()}",
    ]  # fmt: skip
    return servers.start("varnish", port, command, dict(os.environ), work / "varnishd.log")


def varnish_counters(work: Path) -> dict[str, int]:
    """The counters (MAIN.backend_req, MAIN.cache_hit, ...) of the Varnish started in `work`, by name."""
    binary = varnishstat_binary()
    if binary is None:
        raise FileNotFoundError("varnishstat is not installed")
    done = subprocess.run([binary, "-n", str(work / "varnish"), "-1", "-j"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"varnishstat failed: {done.stderr}")
    data = json.loads(done.stdout)
    counters = data.get("counters", data)
    return {
        name: int(value["value"]) for name, value in counters.items() if isinstance(value, dict) and "value" in value
    }


def start_nginx_cache(origin_port: int, work: Path, port: int | None = None) -> Server:
    """nginx on a free loopback port with the shipped proxy_cache configuration aimed at `origin_port`."""
    port = port or free_port()
    (work / "cache").mkdir(parents=True, exist_ok=True)
    text = NGINX_CACHE.read_text()
    for old, new in (
        ("server 127.0.0.1:8000;", f"server {HOST}:{origin_port};"),
        ("listen 80;", f"listen {HOST}:{port};"),
        ("/var/cache/nginx/feeds", str(work / "cache")),
    ):
        if old not in text:
            raise RuntimeError(f"the shipped nginx configuration no longer has {old!r}; update bench/caches.py")
        text = text.replace(old, new)
    (work / "proxy-cache.conf").write_text(text)
    # Workers of a master started by root run as "nobody", who may not reach a private work folder.
    user = "user root;" if os.geteuid() == 0 else ""
    http = f"""    keepalive_requests 100000;
    include {work}/proxy-cache.conf;"""
    return servers.start_nginx_with("nginx cache", port, work, http, user)
