"""Where dynamic roles learn what a ServiceAccount declares: its ``<prefix>/keyspace`` and ``<prefix>/cluster``.

Two sources feed one in-memory map of ``namespace/name`` -> the ServiceAccount's annotations under the prefix:

- a **Kubernetes watcher** (lightkube): list every ServiceAccount in all namespaces, then watch from the list's
  resourceVersion; on any error (410 Gone included) it backs off and lists again;
- a **manifest directory** (GitOps): every ``*.yaml``/``*.yml``/``*.json`` file under it, re-read periodically.

The map is persisted behind the barrier at ``serviceaccount/<namespace>/<name>`` (write-through on watch events, a
full reconcile after every complete list), so a server that was just unsealed serves credentials before, or without,
reaching the Kubernetes API. A complete list that comes back empty never deletes the persisted copy: an empty cluster
is far less likely than a misconfigured or half-started one.

Lookup order: the live map when a source has synced and knows the ServiceAccount (authoritative: present without the
annotation means "not annotated"), else the persisted copy, else unknown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from strongroom import backoff
from strongroom.core.barrier import BarrierView
from strongroom.core.logical import Request
from strongroom.framework import Backend, BackendContext

log = logging.getLogger(__name__)

CONFIG_KEY = "serviceaccounts/config"
PERSIST_PREFIX = "serviceaccount/"
_WRITE_CHUNK = 500


@dataclass
class SourceConfig:
    kubernetes_host: str = ""
    kubernetes_ca_cert: str = ""
    token: str = ""  # bearer token with cluster-wide list/watch on serviceaccounts; never returned on read
    annotation_prefix: str = "strongroom.io"
    manifests_dir: str = ""
    manifests_refresh: int = 30
    watch_timeout: int = 300

    def public(self) -> dict[str, Any]:
        doc = asdict(self)
        doc.pop("token")
        doc["token_set"] = bool(self.token)
        return doc


@dataclass(frozen=True)
class Lookup:
    """What is known about one ServiceAccount; ``annotations`` holds only those under the prefix."""

    annotations: dict[str, str]
    source: str  # "kubernetes", "manifests" or "storage"


def key(namespace: str, name: str) -> str:
    return f"{namespace or 'default'}/{name}"


def prefixed(annotations: dict[str, str] | None, prefix: str) -> dict[str, str]:
    lead = prefix.rstrip("/") + "/"
    return {k: str(v) for k, v in (annotations or {}).items() if k.startswith(lead)}


class ServiceAccountCache:
    def __init__(self, storage: BarrierView) -> None:
        self._storage = storage
        self.config = SourceConfig()
        self._maps: dict[str, dict[str, dict[str, str]]] = {}  # source -> key -> prefixed annotations
        self._synced: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._persist_lock = asyncio.Lock()
        self.last_error = ""
        self.resource_version = ""

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def load_config(self) -> None:
        doc = await self._storage.get_json(CONFIG_KEY)
        await self.apply(SourceConfig(**doc) if doc else SourceConfig(), persist=False)

    async def apply(self, config: SourceConfig, persist: bool = True) -> None:
        """Install a new configuration: stop the old sources, start the configured ones."""
        await self.stop()
        if persist:
            await self._storage.put_json(CONFIG_KEY, asdict(config))
        self.config = config
        self._maps, self._synced, self.last_error = {}, set(), ""
        if config.kubernetes_host:
            self._tasks.append(asyncio.create_task(self._watch_forever(), name="serviceaccount-watch"))
        if config.manifests_dir:
            self._tasks.append(asyncio.create_task(self._manifests_forever(), name="serviceaccount-manifests"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def status(self) -> dict[str, Any]:
        return {
            "synced_sources": sorted(self._synced),
            "counts": {src: len(m) for src, m in self._maps.items()},
            "resource_version": self.resource_version,
            "last_error": self.last_error,
        }

    # --- lookup ------------------------------------------------------------------------------------------------

    async def lookup(self, namespace: str, name: str) -> Lookup | None:
        k = key(namespace, name)
        for source in ("kubernetes", "manifests"):
            if source in self._synced and k in self._maps.get(source, {}):
                return Lookup(dict(self._maps[source][k]), source)
        doc = await self._storage.get_json(PERSIST_PREFIX + k)
        if doc is not None:
            return Lookup(dict(doc.get("annotations") or {}), "storage")
        return None

    # --- persistence -------------------------------------------------------------------------------------------

    def _merged(self) -> dict[str, dict[str, str]]:
        merged: dict[str, dict[str, str]] = {}
        for source in ("manifests", "kubernetes"):  # the live cluster wins over the repository
            if source in self._synced:
                merged.update(self._maps.get(source, {}))
        return {k: v for k, v in merged.items() if v}

    async def reconcile(self) -> None:
        """Make the persisted copy equal the merged live map (annotated ServiceAccounts only)."""
        async with self._persist_lock:
            merged = self._merged()
            if not merged:
                log.warning("ServiceAccount sources report no annotated ServiceAccounts; keeping the persisted copy")
                return
            persisted: set[str] = set()
            for ns in await self._storage.list_all(PERSIST_PREFIX):
                if ns.endswith("/"):
                    persisted.update(ns + n for n in await self._storage.list_all(PERSIST_PREFIX + ns))
            writes: dict[str, Any] = {}
            for k, ann in merged.items():
                current = await self._storage.get_json(PERSIST_PREFIX + k) if k in persisted else None
                if current is None or current.get("annotations") != ann:
                    writes[PERSIST_PREFIX + k] = {"annotations": ann}
            for k in persisted - merged.keys():
                writes[PERSIST_PREFIX + k] = None
            items = list(writes.items())
            for i in range(0, len(items), _WRITE_CHUNK):
                await self._storage.transaction(dict(items[i : i + _WRITE_CHUNK]))

    async def _persist_one(self, k: str) -> None:
        ann = self._merged().get(k)
        async with self._persist_lock:
            if ann:
                await self._storage.put_json(PERSIST_PREFIX + k, {"annotations": ann})
            else:
                await self._storage.delete(PERSIST_PREFIX + k)

    # --- the Kubernetes watcher --------------------------------------------------------------------------------

    def _client(self) -> Any:
        import httpx2
        from lightkube import AsyncClient, KubeConfig

        cluster: dict[str, Any] = {"server": self.config.kubernetes_host}
        if self.config.kubernetes_ca_cert:
            cluster["certificate-authority-data"] = base64.b64encode(self.config.kubernetes_ca_cert.encode()).decode()
        user: dict[str, Any] = {"token": self.config.token} if self.config.token else {}
        kubeconfig = KubeConfig.from_dict(
            {
                "clusters": [{"name": "k8s", "cluster": cluster}],
                "users": [{"name": "strongroom", "user": user}],
                "contexts": [{"name": "k8s", "context": {"cluster": "k8s", "user": "strongroom"}}],
                "current-context": "k8s",
            }
        )
        timeout = httpx2.Timeout(10.0, read=self.config.watch_timeout + 30.0)
        return AsyncClient(config=kubeconfig, trust_env=False, timeout=timeout)

    async def _watch_forever(self) -> None:
        from lightkube.resources.core_v1 import ServiceAccount

        prefix = self.config.annotation_prefix
        failures = 0
        while True:
            client = self._client()
            try:
                listing = client.list(ServiceAccount, namespace="*")
                fresh: dict[str, dict[str, str]] = {}
                async for sa in listing:
                    md = sa.metadata
                    fresh[key(md.namespace or "", md.name or "")] = prefixed(md.annotations, prefix)
                self.resource_version = listing.resourceVersion
                self._maps["kubernetes"] = fresh
                self._synced.add("kubernetes")
                self.last_error = ""
                await self.reconcile()
                failures = 0
                async for event, sa in client.watch(
                    ServiceAccount,
                    namespace="*",
                    resource_version=self.resource_version,
                    server_timeout=self.config.watch_timeout,
                ):
                    md = sa.metadata
                    k = key(md.namespace or "", md.name or "")
                    if event == "DELETED":
                        self._maps["kubernetes"].pop(k, None)
                    elif event in ("ADDED", "MODIFIED"):
                        self._maps["kubernetes"][k] = prefixed(md.annotations, prefix)
                    else:
                        continue
                    if md.resourceVersion:
                        self.resource_version = md.resourceVersion
                    await self._persist_one(k)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # messages from the HTTP client name the URL, never the bearer token
                self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
                log.warning("ServiceAccount watch failed, retrying with backoff: %s", self.last_error)
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
            await asyncio.sleep(backoff.delay(failures, base=1.0, cap=60.0, jitter=(0.8, 1.2)))
            failures += 1

    # --- the manifest directory --------------------------------------------------------------------------------

    async def _manifests_forever(self) -> None:
        while True:
            try:
                found = await asyncio.to_thread(read_manifests, Path(self.config.manifests_dir))
                self._maps["manifests"] = {
                    key(sa["namespace"], sa["name"]): prefixed(sa["annotations"], self.config.annotation_prefix)
                    for sa in found
                }
                self._synced.add("manifests")
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"manifests: {type(exc).__name__}: {str(exc)[:300]}"
                log.warning("reading ServiceAccount manifests failed: %s", self.last_error)
            await asyncio.sleep(max(1, self.config.manifests_refresh))


def read_manifests(directory: Path) -> list[dict[str, Any]]:
    """Every ServiceAccount in the YAML/JSON files under ``directory`` (multi-document files and ``List`` kinds too)."""
    import yaml

    if not directory.is_dir():
        raise FileNotFoundError(f"manifest directory {directory} does not exist")
    out: list[dict[str, Any]] = []
    for root, _dirs, files in os.walk(directory):
        for fname in sorted(files):
            if not fname.endswith((".yaml", ".yml", ".json")):
                continue
            path = Path(root) / fname
            try:
                text = path.read_text()
                docs = [json.loads(text)] if fname.endswith(".json") else list(yaml.safe_load_all(text))
            except (OSError, ValueError, yaml.YAMLError) as exc:
                log.warning("skipping unreadable manifest %s: %s", path, type(exc).__name__)
                continue
            for doc in docs:
                out.extend(_service_accounts(doc, str(path)))
    return out


def _service_accounts(doc: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        return []
    if doc.get("kind") == "List" or (doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list)):
        return [sa for item in doc.get("items") or [] for sa in _service_accounts(item, path)]
    if doc.get("kind") != "ServiceAccount":
        return []
    md = doc.get("metadata") or {}
    if not isinstance(md, dict) or not md.get("name"):
        return []
    annotations = md.get("annotations") or {}
    labels = md.get("labels") or {}
    return [
        {
            "name": str(md["name"]),
            "namespace": str(md.get("namespace") or "default"),
            "annotations": {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
            "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            "file": path,
        }
    ]


class ServiceAccountBackend(Backend):
    """A secrets engine whose dynamic roles read ServiceAccount annotations (``database``, ``aws``): it owns the
    :class:`ServiceAccountCache` behind ``serviceaccounts/*`` and loads and stops it with the mount."""

    def __init__(self, ctx: BackendContext) -> None:
        super().__init__(ctx)
        self.service_accounts = ServiceAccountCache(ctx.storage)

    async def initialize(self) -> None:
        try:
            await self.service_accounts.load_config()
        except Exception:
            # a broken source config must not stop the mount: it can be fixed through the API
            log.exception("loading the ServiceAccount source configuration failed")

    async def cleanup(self) -> None:
        await self.service_accounts.stop()

    def storage(self, req: Request | None = None) -> BarrierView:
        return req.storage if req is not None and req.storage is not None else self.ctx.storage
