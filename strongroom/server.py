"""Running a server: storage, core and the HTTP listener, in dev mode or from a configuration file."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.api.app import StrongroomApp
from strongroom.config import ConfigError, Listener, ServerConfig
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


async def serve(core: Core, listener: Listener, *, on_ready: str = "") -> None:
    """Serve until SIGINT/SIGTERM, then seal and close storage. Granian (a Rust HTTP server) runs in this event loop;
    unlike llhttp-based servers it accepts Vault's ``LIST`` verb."""
    from granian.constants import Interfaces, SSLProtocols
    from granian.server.embed import Server

    host, port = listener.host_port
    app = StrongroomApp(core, max_body=listener.max_request_size)
    tls: dict[str, object] = {}
    if not listener.tls_disable:
        tls = {
            "ssl_cert": Path(listener.tls_cert_file),
            "ssl_key": Path(listener.tls_key_file),
            "ssl_protocol_min": SSLProtocols.tls12,
        }
    server = Server(
        app,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        backlog=2048,
        log_enabled=False,
        websockets=False,
        **tls,
    )  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(server.serve())
    await _wait_listening(host, port, task)
    if on_ready:
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


async def _wait_listening(host: str, port: int, task: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not task.done():
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise ConfigError(f"could not listen on {host}:{port}") from None
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
    if await core.initialized():
        raise ConfigError(f"dev storage {path} is already initialized; dev mode needs a fresh file")
    secrets_ = await setup_dev(core, opts)
    host, port = cfg.listeners[0].host_port
    banner = (
        "WARNING! dev mode is enabled! In this mode, Strongroom runs entirely unsealed with a single unseal key.\n\n"
        f"    export VAULT_ADDR='http://{host}:{port}'\n\n"
        f"Unseal Key: {secrets_['unseal_key']}\n"
        f"Root Token: {secrets_['root_token']}\n"
        f"Storage:    {path}\n\n"
        "Development mode should NOT be used in production installations!\n"
        f"==> Strongroom server started on http://{host}:{port}"
    )
    await serve(core, cfg.listeners[0], on_ready=banner)


async def run_config(cfg: ServerConfig) -> None:
    import secrets
    import socket

    from strongroom.core.ha import lock_for_storage

    listener = cfg.listeners[0]
    scheme = "http" if listener.tls_disable else "https"
    host, port = listener.host_port
    node_id = f"{socket.gethostname()}-{secrets.token_hex(4)}"
    lock = lock_for_storage(cfg.storage_type, cfg.storage, node_id, cfg.api_addr or f"{scheme}://{host}:{port}")
    core = Core(open_storage(cfg), storage_type=cfg.storage_type, ha=lock)
    state = "sealed" if await core.initialized() else "uninitialized"
    await serve(core, listener, on_ready=f"==> Strongroom server started on {scheme}://{host}:{port} ({state})")
