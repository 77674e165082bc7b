"""Running a server: storage, core and the HTTP listener, in dev mode or from a configuration file.

One storage, one server, one port. Before the core can be unsealed, the node claims its storage exclusively (SQLite:
``SQLiteStorage`` locks ``<db>.lock``; PostgreSQL: the advisory lock of ``core/ha.py``, HA or not) and refuses to start
if it cannot. The listening socket is bound here, in :func:`bind_listener` and nowhere else, without
``SO_REUSEPORT``: a second server on the same port fails with "address in use" instead of silently sharing the port.
"started" is printed only after this process answered an HTTP request on that socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.api.app import StrongroomApp
from strongroom.config import PROMETHEUS_DEFAULT_RETENTION, ConfigError, Listener, ServerConfig, Telemetry
from strongroom.core.core import Core
from strongroom.core.mounts import new_mount
from strongroom.core.system.bootstrap import bootstrap
from strongroom.storage.base import Storage

log = logging.getLogger("strongroom.server")


def open_storage(cfg: ServerConfig) -> Storage:
    if cfg.storage_type == "sqlite":
        from strongroom.storage.sqlite import SQLiteStorage

        return SQLiteStorage(cfg.storage["path"])
    if cfg.storage_type == "postgresql":
        from strongroom.storage.postgres import PostgresStorage  # type: ignore[import-not-found]

        return PostgresStorage(cfg.storage["connection_url"], table=cfg.storage.get("table", "strongroom_kv"))
    raise ConfigError(f"unknown storage type {cfg.storage_type!r}")


def check_config(cfg: ServerConfig) -> str:
    """What ``strongroom server --config FILE --check`` adds to parsing: the checks that need no network or storage
    (the PostgreSQL connection URL's syntax, each TLS certificate against its key), then a one-line summary. Raises
    ConfigError."""
    if cfg.storage_type == "postgresql":
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(cfg.storage["connection_url"])
        except Exception:  # noqa: BLE001 - psycopg's message may quote the URL, and so a password
            raise ConfigError('storage "postgresql": connection_url is not a valid PostgreSQL URL') from None
    for lst in cfg.listeners:
        if not lst.tls_disable:
            import ssl

            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(lst.tls_cert_file, lst.tls_key_file)
            except (ssl.SSLError, OSError):
                raise ConfigError(
                    f"listener {lst.address}: {lst.tls_cert_file} and {lst.tls_key_file} are not a certificate and "
                    "its private key (PEM)"
                ) from None
    listeners = ", ".join(f"{lst.address} ({'plain HTTP' if lst.tls_disable else 'TLS'})" for lst in cfg.listeners)
    return f"Configuration OK: storage {cfg.storage_type}, listener {listeners}"


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run the server on uvloop: Granian hands every request to Python through a thread-safe callback, and uvloop's
    C event loop makes that hand-off (and everything else on the loop) markedly cheaper than asyncio's default."""
    import uvloop

    uvloop.run(main)


@dataclass
class DevOptions:
    listen_address: str = "127.0.0.1:8200"
    root_token_id: str = ""
    storage_path: str = ""


async def setup_dev(core: Core, opts: DevOptions) -> dict[str, str]:
    result = await core.initialize(1, 1, root_token_id=opts.root_token_id)
    unseal_key = result["keys_base64"][0]
    from strongroom.core.seal import decode_key

    await core.submit_unseal_key(decode_key(unseal_key))
    await core.mount(
        new_mount("secret/", "kv", is_auth=False, description="key/value secret storage", options={"version": "2"})
    )
    await bootstrap(core)
    return {"root_token": result["root_token"], "unseal_key": unseal_key}


_BACKLOG = 2048


def bind_listener(listener: Listener) -> socket.socket:
    """The listening socket for ``listener``, bound by this process alone.

    ``SO_REUSEADDR`` (restart while old connections linger in TIME_WAIT) but never ``SO_REUSEPORT``, which would let a
    second server bind the same port and take half the connections. Granian serves on this socket (any workers get
    it by inheritance), it never binds one of its own."""
    host, port = listener.host_port
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"cannot listen on {listener.address}: {e.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(_BACKLOG)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {listener.address}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _granian_server(app: StrongroomApp, listener: Listener, sock: socket.socket) -> Any:
    from granian._granian import SocketHolder
    from granian.constants import Interfaces, SSLProtocols
    from granian.server.embed import Server

    class _BoundServer(Server):  # type: ignore[misc]
        # Granian would build its own socket (with SO_REUSEPORT on Linux); hand it the one bind_listener made. Its
        # holder closes the descriptor it gets when it is done, so it gets a duplicate of ours.
        def _init_shared_socket(self) -> None:
            fd = os.dup(sock.fileno())
            self._ssp = None
            self._shd = SocketHolder(fd, False, _BACKLOG)  # type: ignore[assignment,call-arg]
            self._sfd = fd  # type: ignore[assignment]

    host, port = sock.getsockname()[:2]
    tls: dict[str, Any] = {}
    if not listener.tls_disable:
        tls = {
            "ssl_cert": Path(listener.tls_cert_file),
            "ssl_key": Path(listener.tls_key_file),
            "ssl_protocol_min": SSLProtocols.tls12,
        }
    return _BoundServer(
        app,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        backlog=_BACKLOG,
        log_enabled=False,
        websockets=False,
        **tls,
    )


async def serve(core: Core, listener: Listener, *, on_ready: str = "") -> None:
    """Serve until SIGINT/SIGTERM, then seal and close storage. Granian (a Rust HTTP server) runs in this event loop;
    unlike llhttp-based servers it accepts Vault's ``LIST`` verb."""
    sock = bind_listener(listener)
    try:
        await _serve_on(core, listener, sock, on_ready)
    finally:
        sock.close()


async def _serve_on(
    core: Core,
    listener: Listener,
    sock: socket.socket,
    on_ready: str,
    *,
    announce: Callable[[], None] | None = None,
    worker: int | None = None,
) -> None:
    """``announce`` replaces printing ``on_ready``; ``worker``: this process is that worker of a node (in dev mode
    its answers say so in ``X-Strongroom-Worker``)."""
    app = StrongroomApp(
        core, max_body=listener.max_request_size, unauthenticated_metrics=listener.unauthenticated_metrics_access
    )
    if worker is not None and core.dev:
        app.extra_headers = [("x-strongroom-worker", str(worker))]
    server = _granian_server(app, listener, sock)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(server.serve())
    await _wait_serving(sock, not listener.tls_disable, task)
    if announce is not None:
        announce()
    elif on_ready:
        print(on_ready, flush=True)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    server.stop()
    try:
        await asyncio.wait_for(task, timeout=10)
    except (TimeoutError, asyncio.CancelledError):
        pass
    stopper.cancel()
    await core.seal()
    await core.storage.close()


async def _wait_serving(sock: socket.socket, tls: bool, task: asyncio.Task[None]) -> None:
    """Return once Granian answers HTTP on ``sock``. The socket is this process's alone, so an answer proves that
    this process serves (a bare TCP connect would not: the kernel accepts into the backlog before anyone serves)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
    context: ssl.SSLContext | None = None
    if tls:
        # talking to ourselves: the certificate is the operator's business, not this probe's
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while not task.done():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), 2)
            try:
                writer.write(b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                status = await asyncio.wait_for(reader.readline(), 2)
            finally:
                writer.close()
            if status.startswith(b"HTTP/"):
                return
        except (OSError, TimeoutError, ssl.SSLError):
            pass
        if loop.time() > deadline:
            raise ConfigError(f"the HTTP server did not start on {host}:{port}")
        await asyncio.sleep(0.02)
    task.result()


async def run_dev(opts: DevOptions) -> None:
    path = opts.storage_path or os.path.join(tempfile.mkdtemp(prefix="strongroom-dev-"), "strongroom.db")
    cfg = ServerConfig(
        storage_type="sqlite",
        storage={"path": path},
        listeners=[Listener(address=opts.listen_address, tls_disable=True)],
    )
    core = Core(open_storage(cfg), storage_type="sqlite", dev=True)
    # as Vault's dev mode: Prometheus output on, gauges without the host name
    core.metrics.configure(Telemetry(prometheus_retention_time=PROMETHEUS_DEFAULT_RETENTION, disable_hostname=True))
    if await core.initialized():
        raise ConfigError(f"dev storage {path} is already initialized; dev mode needs a fresh file")
    secrets_ = await setup_dev(core, opts)
    await serve(core, cfg.listeners[0], on_ready=dev_banner(cfg, secrets_, path))


def dev_config(opts: DevOptions) -> ServerConfig:
    path = opts.storage_path or os.path.join(tempfile.mkdtemp(prefix="strongroom-dev-"), "strongroom.db")
    return ServerConfig(
        storage_type="sqlite",
        storage={"path": path},
        listeners=[Listener(address=opts.listen_address, tls_disable=True)],
    )


def dev_banner(cfg: ServerConfig, secrets_: dict[str, str], path: str) -> str:
    host, port = cfg.listeners[0].host_port
    return (
        "WARNING! dev mode is enabled! In this mode, Strongroom runs entirely unsealed with a single unseal key.\n\n"
        f"    export VAULT_ADDR='http://{host}:{port}'\n\n"
        f"Unseal Key: {secrets_['unseal_key']}\n"
        f"Root Token: {secrets_['root_token']}\n"
        f"Storage:    {path}\n\n"
        "Development mode should NOT be used in production installations!\n"
        f"==> Strongroom server started on http://{host}:{port}"
    )


async def run_config(cfg: ServerConfig) -> None:
    import secrets
    import socket

    from strongroom.core.ha import claim_for_storage, lock_for_storage

    listener = cfg.listeners[0]
    scheme = "http" if listener.tls_disable else "https"
    host, port = listener.host_port
    node_id = f"{socket.gethostname()}-{secrets.token_hex(4)}"
    advertise = cfg.api_addr or f"{scheme}://{host}:{port}"
    lock = lock_for_storage(cfg.storage_type, cfg.storage, node_id, advertise)
    claim = claim_for_storage(cfg.storage_type, cfg.storage, node_id, advertise)
    storage = open_storage(cfg)  # SQLite claims its file here
    if claim is not None:
        await claim.take()
    core = Core(storage, storage_type=cfg.storage_type, ha=lock, claim=claim)
    core.metrics.configure(cfg.telemetry)
    watch = None if claim is None else asyncio.create_task(claim.watch(core._became_active, core._became_standby))
    try:
        state = "sealed" if await core.initialized() else "uninitialized"
        await serve(core, listener, on_ready=f"==> Strongroom server started on {scheme}://{host}:{port} ({state})")
    finally:
        if watch is not None and claim is not None:
            await claim.stop()
            await watch
