"""A real nginx in front of a tiny app, with twostep on its own sub-domain, for end-to-end tests.

Layout (all on one loopback port of nginx, told apart by host name; Chromium
maps ``*.example.test`` to 127.0.0.1):

* ``login.example.test`` → twostep (``twostep serve`` on its own port)
* ``app.example.test``  → nginx ``auth_request`` to twostep's ``/auth/request``,
  then the echo app, which shows the ``Remote-*`` headers it received.

The nginx and Caddy configurations are the ones from docs/forward-auth.md
with the names and ports filled in (plain http; the catch-all without
TLS).  Caddy protects the same app host on its own port, calling
``/auth/forward``.  A rule also names ``other.example.test``, which no
proxy serves: a host a client might put in ``Host`` to pick other rules.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOMAIN = "example.test"
LOGIN_HOST = f"login.{DOMAIN}"
APP_HOST = f"app.{DOMAIN}"
#: Named by a rule but served by no proxy here: a host a client may forge.
OTHER_HOST = f"other.{DOMAIN}"
ECHOED = ("Remote-User", "Remote-Name", "Remote-Email", "Remote-Groups")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 128; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    # For WebSocket applications: "Connection: upgrade" only when the client asks for one.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    # An application protected by twostep.  Its block comes first, so that
    # without the catch-all below nginx would hand it every unknown name.
    server {{
        listen 127.0.0.1:{port};
        server_name {app_host};

        location = /internal/twostep {{
            internal;
            proxy_pass http://127.0.0.1:{twostep_port}/auth/request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host {login_host};
            proxy_set_header X-Original-URL $scheme://{app_host}:{port}$request_uri;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}

        location / {{
            auth_request /internal/twostep;
            auth_request_set $twostep_user $upstream_http_remote_user;
            auth_request_set $twostep_name $upstream_http_remote_name;
            auth_request_set $twostep_email $upstream_http_remote_email;
            auth_request_set $twostep_groups $upstream_http_remote_groups;
            auth_request_set $twostep_location $upstream_http_location;
            error_page 401 =302 $twostep_location;

            proxy_pass http://127.0.0.1:{app_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header Remote-User $twostep_user;
            proxy_set_header Remote-Name $twostep_name;
            proxy_set_header Remote-Email $twostep_email;
            proxy_set_header Remote-Groups $twostep_groups;
        }}
    }}

    # twostep on its own sub-domain.
    server {{
        listen 127.0.0.1:{port};
        server_name {login_host};
        location / {{
            proxy_pass http://127.0.0.1:{twostep_port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}

    # Any name that no block carries: refused (the documented catch-all).
    server {{
        listen 127.0.0.1:{port} default_server;
        server_name _;
        return 444;
    }}
}}
"""


CADDYFILE = """
{{
    admin off
    auto_https off
}}

http://{app_host}:{port} {{
    bind 127.0.0.1
    request_header -*_*
    forward_auth 127.0.0.1:{twostep_port} {{
        uri /auth/forward
        header_up Host {login_host}
        copy_headers Remote-User Remote-Name Remote-Email Remote-Groups
    }}
    reverse_proxy 127.0.0.1:{app_port}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.args!r} did not start: {log.read_text() if log.exists() else ''}")


class _Echo(BaseHTTPRequestHandler):
    """The protected application: a page showing who nginx says the visitor is."""

    def do_GET(self) -> None:
        seen = {name: self.headers.get(name) for name in ECHOED}
        # Header bytes arrive as latin-1 code points; twostep sends UTF-8.
        seen = {k: v.encode("latin-1").decode("utf-8") if v else v for k, v in seen.items()}
        # Look-alikes of the identity headers (Remote_User) that an application server would
        # read as Remote-User: the proxy must not let a client's through.
        underscored = sorted(name for name in self.headers if "_" in name)
        if underscored:
            seen["underscored"] = underscored
        if self.headers.get("Upgrade"):
            # What a WebSocket application needs to switch protocols.
            seen.update({name: self.headers.get(name) for name in ("Upgrade", "Connection")})
        body = json.dumps({"path": self.path, **seen})
        page = f'<!doctype html><html lang="en"><title>app</title><pre id="identity">{body}</pre></html>'
        data = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def echo_app() -> Iterator[int]:
    """Run the echo app on a free loopback port; yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)  # a quick stop at teardown
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def system_binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(path) for path in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if path.exists()), None
    )
    if found is None:
        raise RuntimeError(f"{name} is needed: run scripts/ensure-system-deps")
    return found


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def nginx(directory: Path, port: int, twostep_port: int, app_port: int) -> Iterator[Path]:
    """Run nginx with the documented configuration; yield the directory holding its logs."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=directory,
            # Workers started by root would otherwise switch to "nobody", who
            # cannot write the test's temporary directory.
            user="user root;" if os.geteuid() == 0 else "",
            port=port,
            twostep_port=twostep_port,
            app_port=app_port,
            login_host=LOGIN_HOST,
            app_host=APP_HOST,
        )
    )
    log = directory / "stderr.log"
    process = subprocess.Popen(
        [system_binary("nginx"), "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    try:
        wait_for_port(port, process, log)
        yield directory
    finally:
        stop(process)


@contextmanager
def caddy(directory: Path, port: int, twostep_port: int, app_port: int) -> Iterator[int]:
    """Run Caddy with the documented forward_auth configuration on ``port``; yield the port."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "Caddyfile"
    conf.write_text(
        CADDYFILE.format(
            port=port, twostep_port=twostep_port, app_port=app_port, login_host=LOGIN_HOST, app_host=APP_HOST
        )
    )
    # Caddy keeps state under $HOME / XDG directories: keep it in the test's directory.
    env = {**os.environ, "HOME": str(directory), "XDG_CONFIG_HOME": str(directory), "XDG_DATA_HOME": str(directory)}
    log = directory / "caddy.log"
    process = subprocess.Popen(
        [system_binary("caddy"), "run", "--config", str(conf), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    try:
        wait_for_port(port, process, log)
        yield port
    finally:
        stop(process)
