"""The core: seal state, the stores that exist while unsealed, and the mount table.

Unsealed, the core holds the barrier's keyring in memory and one store per concern, each with its own encrypted
storage view. Sealing drops all of it. Requests go through :mod:`strongroom.core.pipeline`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from dataclasses import asdict, replace
from typing import Any

import orjson

from strongroom import crypto
from strongroom.core import request_txn
from strongroom.core import seal as seal_mod
from strongroom.core.barrier import Barrier
from strongroom.core.logical import (
    InvalidRequest,
    LogicalError,
    Operation,
    Request,
    Response,
    Sealed,
    Secret,
    UnsupportedPath,
)
from strongroom.core.metrics import Metrics
from strongroom.core.mounts import (
    SINGLETON_AUTH,
    SINGLETON_ENGINES,
    MountEntry,
    Route,
    Router,
    backend_class,
    holds_write_once_data,
    new_mount,
    refuse_write_once,
)
from strongroom.core.request_txn import TxnLock
from strongroom.core.seal import KeyCollector, ShamirSeal, validate_shares
from strongroom.core.tokens import SERVICE_PREFIX, TOKEN_LENGTH, TokenStore
from strongroom.framework.backend import Backend, BackendContext
from strongroom.ops import storage_format
from strongroom.ops.auto import AutoSnapshots
from strongroom.storage.base import Storage

log = logging.getLogger("strongroom.core")

MOUNTS_PATH = "core/mounts"
# PGP-encrypted copies of the last rekey's shares (Vault's core/unseal-keys-backup), kept behind the barrier
REKEY_BACKUP_PATH = "core/unseal-keys-backup"
AUTH_PATH = "core/auth"
VERSION = "1.0.0+strongroom"


class Core:
    def __init__(
        self, storage: Storage, *, storage_type: str = "sqlite", dev: bool = False, ha: Any = None, claim: Any = None
    ) -> None:
        self.storage = storage
        self.storage_type = storage_type
        self.dev = dev
        self.metrics = Metrics(storage_type, core=self)  # telemetry (sys/metrics); lives as long as the core
        self.barrier = Barrier(self.metrics.meter_storage(storage), self.metrics)
        self.seal_impl = ShamirSeal(storage)
        self.router = Router()
        self.active = True  # False on an HA standby: it must never serve as active
        # HA: an object with ``async run(on_active, on_standby)`` (holds the lock, calls back) and ``async release()``
        self.ha = ha
        self._ha_task: asyncio.Task[None] | None = None
        # without HA: the node's lifelong claim on shared storage (``PostgresStorageClaim``, ``is_held``), else None
        self.claim = claim
        self._root_key = b""
        self.started = time.time()
        self.unseal_progress: KeyCollector | None = None
        self.generate_root: dict[str, Any] | None = None
        self.rekey: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._table_lock = TxnLock()  # the mount tables: one writer at a time, until its request commits
        self._unsubscribe: list[Any] = []  # the caches' change log subscriptions, while services run
        # a node's worker: told of every unseal (with the root key) and seal made through this process, to pass on
        # to the node's other workers (strongroom/scaleout/)
        self.seal_listener: Any = None
        self.background_elected = True  # False on a node's workers that do not run background work
        self.cluster_id = ""
        self.cluster_name = ""
        # the stores below exist only while unsealed
        self.tokens: TokenStore = None  # type: ignore[assignment]
        self.policies: Any = None
        self.identity: Any = None
        self.expiration: Any = None
        self.audit: Any = None
        self.transport: Any = None
        self.auto_snapshots: AutoSnapshots | None = None  # scheduled snapshots, on the active node only
        self.services: dict[str, Any] = {}
        from strongroom.core.pipeline import Pipeline

        self.pipeline = Pipeline(self)

    @property
    def serving(self) -> bool:
        """Active, and (with HA) the lock confirmed recently: a node that cannot confirm it leads stops at once."""
        return (
            self.active
            and (self.ha is None or self.ha.is_active)
            and (self.claim is None or self.claim.is_held)
        )

    @property
    def sealed(self) -> bool:
        return self.barrier.sealed

    async def initialized(self) -> bool:
        return await self.seal_impl.config() is not None

    # --- init / unseal / seal -----------------------------------------------------------------------------------

    async def initialize(
        self, shares: int, threshold: int, root_token_id: str = "", pgp_keys: Any = None, root_token_pgp_key: Any = None
    ) -> dict[str, Any]:
        shares, threshold = validate_shares(shares, threshold)
        # PGP keys are checked, and the root token encrypted, before anything is stored: a bad key changes nothing
        share_keys = await seal_mod.parse_pgp_keys(
            pgp_keys, shares, name="pgp_keys", context="invalid seal configuration",
            count_error="invalid seal configuration: count mismatch between number of provided PGP keys and number of "
            "shares",
        )
        token_key = await seal_mod.parse_pgp_key(root_token_pgp_key, name="root_token_pgp_key")
        encrypted_root = b""
        if token_key is not None:
            root_token_id = root_token_id or SERVICE_PREFIX + crypto.random_base62(TOKEN_LENGTH)
            encrypted_root = (await seal_mod.pgp_encrypt([token_key], [root_token_id.encode()]))[0]
        async with self._lock:
            if await self.initialized():
                raise InvalidRequest("Vault is already initialized")
            root_key = crypto.new_key()
            wrap = seal_mod.pgp_share_wrapper(share_keys) if share_keys else None
            keys = await self.seal_impl.initialize(shares, threshold, root_key, wrap)
            await self.barrier.initialize(root_key)
            await storage_format.record(self.barrier)
            await self._post_unseal(root_key, initializing=True)
            token, _ = await self.tokens.create(
                policies=["root"], parent=None, display_name="root", path="auth/token/root", token_id=root_token_id
            )
            await self._pre_seal()
        return {
            "keys": [k.hex() for k in keys],
            "keys_base64": [base64.b64encode(k).decode() for k in keys],
            "root_token": base64.b64encode(encrypted_root).decode() if encrypted_root else token,
        }

    async def submit_unseal_key(self, key: bytes, reset: bool = False) -> None:
        async with self._lock:
            cfg = await self.seal_impl.config()
            if cfg is None:
                raise InvalidRequest("Vault is not initialized")
            if reset:
                self.unseal_progress = None
                return
            if not self.sealed:
                return
            if self.unseal_progress is None:
                self.unseal_progress = KeyCollector(cfg.secret_threshold, nonce=crypto.new_uuid())
            if not self.unseal_progress.add(key):
                return
            parts = list(self.unseal_progress.parts)
            self.unseal_progress = None
            root_key = await self.seal_impl.recover_root_key(parts)
            await self._post_unseal(root_key)
            if self.seal_listener is not None:
                self.seal_listener(root_key)
            if self.audit is not None:
                try:
                    await self._record("unseal", {"shares_used": len(parts)})
                except Exception as exc:  # the server is unsealed either way; a refused request would be audited
                    log.error("audit: could not record the unseal: %s", type(exc).__name__)

    async def seal(self, *, node_wide: bool = False) -> None:
        """``node_wide``: an operator's seal (sys/seal), passed on to the node's other workers; a worker stopping
        alone (shutdown) seals only itself."""
        async with self._lock:
            if not self.sealed:
                await self._pre_seal()
                if node_wide and self.seal_listener is not None:
                    self.seal_listener(None)

    async def apply_node_seal_state(self, root_key: bytes | None) -> None:
        """Follow another worker of this node: unseal with the root key it recovered, or seal (``None``)."""
        async with self._lock:
            if root_key is None:
                if not self.sealed:
                    await self._pre_seal()
            elif self.sealed:
                await self._post_unseal(root_key)

    def node_root_key(self) -> bytes | None:
        """For a newly started worker of this node: the root key while unsealed."""
        return None if self.sealed or not self._root_key else self._root_key

    async def _post_unseal(self, root_key: bytes, *, initializing: bool = False) -> None:
        await self.barrier.unseal(root_key)
        try:
            await storage_format.check_supported(self.barrier)  # data of a newer binary: read nothing else of it
        except Exception:
            self.barrier.seal()
            raise
        self._root_key = root_key
        cfg = await self.seal_impl.config()
        if cfg is not None:
            self.cluster_id, self.cluster_name = cfg.cluster_id, cfg.cluster_name
        if self.ha is None and self.claim is not None and not self.claim.is_held and not initializing:
            # its storage claim lapsed: the claim's watch brings it up (``_became_active``) once it holds it again
            self.active = False
        elif self.ha is None or initializing:
            self.active = True
            await self._start_services()
        else:
            # an HA node serves only once it holds the lock; until then it is an unsealed standby
            self.active = False
            self._ha_task = asyncio.create_task(self.ha.run(self._became_active, self._became_standby))

    async def _became_active(self) -> None:
        async with self._lock:
            if self.sealed or self.active:
                return
            # another node may have changed the keyring and everything else while this one stood by: reload all
            await self.barrier.unseal(self._root_key)
            await self._start_services()
            self.active = True
            log.info("this node is now the active node")

    async def _became_standby(self) -> None:
        # Fail closed: stop serving first, then tear down; nothing cached from the active period survives.
        self.active = False
        async with self._lock:
            if self.tokens is not None:
                await self._stop_services()
            log.warning("this node lost the HA lock and is now a standby")

    async def _start_services(self) -> None:
        from strongroom.audit import AuditBroker
        from strongroom.core.expiration import ExpirationManager
        from strongroom.core.identity import IdentityStore
        from strongroom.core.policy_store import PolicyStore
        from strongroom.core.transport import TransportKeys

        await storage_format.upgrade(self)  # the active node brings an older store forward before anything reads it
        view = self.barrier.view
        self.tokens = TokenStore(view("sys/token/"))
        self.policies = PolicyStore(view("sys/policy/"))
        self.identity = IdentityStore(view("sys/identity/"))
        self.policies.identity_resolver = self.identity.template_context
        self.expiration = ExpirationManager(
            view("sys/expire/"),
            revoke_fn=self._revoke_lease,
            renew_fn=self._renew_lease,
            token_expired_fn=self._token_expired,
        )
        self.expiration.elected = self.background_elected
        # the audit table and the transport keys guard requests: their writes never wait for a request's commit
        self.audit = AuditBroker(view("sys/audit/", direct=True), metrics=self.metrics)
        self.transport = TransportKeys(view("sys/transport/", direct=True))
        self.tokens.on_revoke = self._token_revoked
        self.tokens.on_expiry_changed = self.expiration.register_token
        self.services = {"core": self, "identity": self.identity, "transport": self.transport}
        for store in (self.tokens, self.policies, self.identity, self.audit, self.transport):
            await store.load()
        await self._load_mounts()
        self._subscribe_caches()
        await self.expiration.load()
        self.auto_snapshots = AutoSnapshots(self)
        await self.auto_snapshots.start()
        self._unsubscribe.append(
            self.barrier.subscribe(self.auto_snapshots.view.prefix, self.auto_snapshots.stored_change)
        )

    async def _pre_seal(self) -> None:
        if self._ha_task is not None:
            self._ha_task.cancel()
            self._ha_task = None
            if self.ha is not None:
                await self.ha.release()
        await self._stop_services()
        self.barrier.seal()
        self._root_key = b""
        self.generate_root = None
        self.rekey = None

    def _subscribe_caches(self) -> None:
        """Every cache above the barrier learns of changes from the storage's change log (``Barrier.sync``), whoever
        made them: another worker of this node, another node, or this process."""
        tokens, policies, identity, audit = self.tokens, self.policies, self.identity, self.audit

        def token_changed(key: str | None) -> None:
            if key is None:
                tokens._cache.clear()
            elif key.startswith("sys/token/id/"):
                tokens._cache.pop(key[len("sys/token/id/") :], None)

        subscribe = self.barrier.subscribe
        self._unsubscribe = [
            subscribe("sys/token/", token_changed),
            subscribe("sys/policy/", lambda key: policies.invalidate()),
            subscribe("sys/identity/", lambda key: identity._forget(None)),
            subscribe(MOUNTS_PATH, lambda key: self._reconcile_mounts(False)),
            subscribe(AUTH_PATH, lambda key: self._reconcile_mounts(True)),
            subscribe("sys/expire/", self.expiration.stored_change),
            subscribe("sys/audit/table", lambda key: audit.reconcile()),
        ]

    async def _reconcile_mounts(self, is_auth: bool) -> None:
        """Make the router match the stored mount table (changed by another process, or by this one's commit)."""
        # a request of this process that changed the table holds the lock until its own commit hooks have routed it
        async with self._table_lock:
            await self._reconcile_table(is_auth)

    async def _reconcile_table(self, is_auth: bool) -> None:
        raw = await self.barrier.get(AUTH_PATH if is_auth else MOUNTS_PATH)
        stored = {e.route_path: e for e in (MountEntry(**d) for d in (orjson.loads(raw) if raw else []))}
        for entry in self.router.entries(is_auth):
            if stored.get(entry.route_path) != entry:
                route = self.router.remove(entry.route_path)
                if route is not None:
                    with contextlib.suppress(Exception):
                        await route.backend.cleanup()
        for path, entry in stored.items():
            if self.router.get(path) is None:
                try:
                    await self._start_backend(entry)
                except Exception as exc:
                    log.error("mount %s (%s) failed to start: %s", path, entry.type, type(exc).__name__)

    async def _stop_services(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self.auto_snapshots is not None:
            await self.auto_snapshots.stop()
            self.auto_snapshots = None
        if self.expiration is not None:
            await self.expiration.stop()
        for route_path in [e.route_path for e in self.router.entries(False) + self.router.entries(True)]:
            route = self.router.remove(route_path)
            if route is not None:
                try:
                    await route.backend.cleanup()
                except Exception:  # a backend failing to clean up must not keep the core unsealed
                    log.exception("cleanup of %s failed", route_path)
        for store in (self.audit, self.transport, self.identity, self.policies, self.tokens):
            if store is not None:
                await store.stop()
        self.tokens = self.policies = self.identity = self.expiration = self.audit = self.transport = None  # type: ignore[assignment]
        self.services = {}
        self.router.clear()

    # --- mounts -------------------------------------------------------------------------------------------------

    async def _load_mounts(self) -> None:
        for table_path, is_auth, singletons in (
            (MOUNTS_PATH, False, SINGLETON_ENGINES),
            (AUTH_PATH, True, SINGLETON_AUTH),
        ):
            raw = await self.barrier.get(table_path)
            entries = [MountEntry(**e) for e in (__import__("orjson").loads(raw) if raw else [])]
            present = {e.path for e in entries}
            changed = False
            for path, mtype in singletons.items():
                if path not in present:
                    entries.append(new_mount(path, mtype, is_auth=is_auth, description=_DEFAULT_DESCRIPTIONS[mtype]))
                    changed = True
            for entry in entries:
                try:
                    await self._start_backend(entry)
                except Exception as exc:
                    # one broken mount must not keep every other secret sealed; it stays unreachable and logged
                    log.error("mount %s (%s) failed to start: %s", entry.route_path, entry.type, type(exc).__name__)
            if changed:
                await self._persist_table(is_auth)

    async def _start_backend(self, entry: MountEntry, *, route: bool = True) -> Backend:
        cls = backend_class(entry.type, entry.is_auth)
        ctx = BackendContext(
            storage=self.barrier.view(entry.storage_prefix),
            mount_path=entry.route_path,
            mount_type=entry.type,
            mount_accessor=entry.accessor,
            options=dict(entry.options),
            services=self.services,
        )
        backend = cls(ctx)
        await backend.initialize()
        if route:
            self.router.add(entry, backend)
        return backend

    async def _persist_table(self, is_auth: bool, entries: list[MountEntry] | None = None) -> None:
        import orjson

        entries = self.router.entries(is_auth) if entries is None else entries
        await self.barrier.put(AUTH_PATH if is_auth else MOUNTS_PATH, orjson.dumps([asdict(e) for e in entries]))

    async def mount(self, entry: MountEntry) -> Route:
        """Mount a backend; it is routed once the request commits, so the caller gets its route to use meanwhile."""
        if self.router.conflicts(entry.route_path):
            kind = "auth" if entry.is_auth else "mount"
            raise InvalidRequest(f"path is already in use at {entry.route_path}" if kind else "")
        backend_class(entry.type, entry.is_auth)  # unknown type: 400 before anything is stored
        # held until the request commits: two concurrent mounts must not each store a table without the other
        async with self._table_lock:
            if self.router.conflicts(entry.route_path):
                raise InvalidRequest(f"path is already in use at {entry.route_path}")
            backend = await self._start_backend(entry, route=False)
            await self._persist_table(entry.is_auth, [*self.router.entries(entry.is_auth), entry])
        # routed only once the new table is committed; a discarded mount's backend is shut down again
        request_txn.after_commit(lambda: self.router.add(entry, backend))
        txn = request_txn.current()
        if txn is not None:
            txn.on_discard(backend.cleanup)
        return Route(entry, backend)

    async def unmount(self, route_path: str) -> bool:
        route = self.router.get(route_path)
        if route is None:
            return False
        entry = route.entry
        singles = SINGLETON_AUTH if entry.is_auth else SINGLETON_ENGINES
        if entry.path in singles:
            raise InvalidRequest(f"cannot unmount {entry.route_path!r}")
        if await holds_write_once_data(route):
            raise refuse_write_once(route, "disable")
        await self.expiration.revoke_prefix(entry.route_path, sync=True)
        async with self._table_lock:
            await self._persist_table(entry.is_auth, [e for e in self.router.entries(entry.is_auth) if e is not entry])
            await self.barrier.view(entry.storage_prefix).delete_prefix()
        # the mount keeps serving until the request commits; a discarded unmount leaves it as it was
        request_txn.after_commit(lambda: self.router.remove(route_path))
        await request_txn.after_commit_await(route.backend.cleanup)
        return True

    async def update_mount(self, entry: MountEntry) -> None:
        async with self._table_lock:
            await self._persist_table(entry.is_auth)

    async def remount(self, src: str, dst: str) -> None:
        """Move a mount from route path ``src`` to ``dst`` (sys/remount). Its data stays where it is (storage is keyed
        by the mount's uuid), its accessor too, so tokens from a moved auth method keep renewing; its leases are
        renamed to the new path so they stay renewable and revocable. Like a mount, the move takes effect in memory
        only once the request commits."""
        route = self.router.get(src)
        if route is None:
            raise InvalidRequest(f'no matching mount at "{src}"')
        entry = route.entry
        if entry.path in (SINGLETON_AUTH if entry.is_auth else SINGLETON_ENGINES):
            raise InvalidRequest(f'cannot remount "{src}"')
        if await holds_write_once_data(route):
            raise refuse_write_once(route, "move")
        moved = replace(entry, path=dst[len("auth/") :] if entry.is_auth else dst, config=dict(entry.config),
                        options=dict(entry.options))
        async with self._table_lock:
            if self.router.get(dst) is not None or self.router.conflicts(dst):
                raise InvalidRequest(f'path already in use at "{dst}"')
            backend = await self._start_backend(moved, route=False)
            others = [e for e in self.router.entries(entry.is_auth) if e is not entry]
            await self._persist_table(entry.is_auth, [*others, moved])
        await self.expiration.rename_prefix(src, dst)

        def switch() -> None:
            self.router.remove(src)
            self.router.add(moved, backend)

        request_txn.after_commit(switch)
        await request_txn.after_commit_await(route.backend.cleanup)
        txn = request_txn.current()
        if txn is not None:
            txn.on_discard(backend.cleanup)

    # --- leases: how the expiration manager reaches a lease's backend -------------------------------------------

    def _lease_backend(self, lease: Any) -> tuple[Backend, MountEntry]:
        route = self.router.get(lease.mount_path)
        if route is None:
            raise LookupError(f"no mount at {lease.mount_path} for lease")
        return route.backend, route.entry

    def _lease_request(self, op: Operation, lease: Any, backend: Backend, entry: MountEntry) -> Request:
        return secret_request(op, backend, entry, lease.to_secret(), lease.path)

    async def _revoke_lease(self, lease: Any) -> None:
        # A lease whose backend is gone cannot be proven revoked: raising keeps it listed as irrevocable and retried
        # until an operator decides with revoke-force, instead of silently forgetting a live credential.
        try:
            backend, entry = self._lease_backend(lease)
        except LookupError:
            raise UnsupportedPath(f"no backend at {lease.mount_path} to revoke the lease") from None
        stype = backend.secret_types.get(lease.secret["lease_type"])
        if stype is None:
            raise UnsupportedPath(f"the backend at {lease.mount_path} cannot revoke leases of this type")
        await stype.revoke(self._lease_request(Operation.REVOKE, lease, backend, entry))

    async def _renew_lease(self, lease: Any, increment: int) -> Response | None:
        backend, entry = self._lease_backend(lease)
        stype = backend.secret_types.get(lease.secret["lease_type"])
        if stype is None or stype.renew is None:
            raise InvalidRequest("lease is not renewable")
        req = self._lease_request(Operation.RENEW, lease, backend, entry)
        req.data = {"increment": increment}
        return await stype.renew(req)

    async def _token_revoked(self, token_hash: str) -> None:
        await self.expiration.revoke_by_token(token_hash)
        route = self.router.get("cubbyhole/")
        if route is not None:
            await route.backend.revoke_for_token(token_hash)  # type: ignore[attr-defined]

    async def _token_expired(self, token_hash: str) -> None:
        if self.tokens is not None:
            await self.tokens.revoke_tree(token_hash)

    async def _record(self, kind: str, details: dict[str, Any]) -> None:
        """Put a key ceremony (unseal, generate-root, rekey) in the audit trail; they bypass the request pipeline."""
        if self.audit is None:
            return
        try:
            await self.audit.log_event("core", {"type": kind, **details})
        except Exception:
            raise LogicalError(f"the {kind} could not be recorded in the audit log, so it was refused") from None

    # --- generate-root ------------------------------------------------------------------------------------------

    def generate_root_status(self) -> dict[str, Any]:
        st = self.generate_root
        threshold = self.unseal_threshold_cache
        return {
            "started": st is not None,
            "nonce": st["nonce"] if st else "",
            "progress": st["collector"].progress if st else 0,
            "required": threshold,
            "complete": bool(st and st.get("encoded")),
            "encoded_token": (st or {}).get("encoded", ""),
            "encoded_root_token": (st or {}).get("encoded", ""),
            "pgp_fingerprint": (st or {}).get("pgp_fingerprint", ""),
            "otp_length": TOKEN_LENGTH + 4,
        }

    unseal_threshold_cache = 0

    async def refresh_threshold(self) -> None:
        cfg = await self.seal_impl.config()
        self.unseal_threshold_cache = cfg.secret_threshold if cfg else 0

    async def generate_root_start(self, otp: str, pgp_key: Any = None) -> dict[str, Any]:
        if self.sealed:
            raise Sealed()
        if self.generate_root is not None:
            raise InvalidRequest("root generation already in progress")
        # as in Vault: an OTP, when given, wins; else a PGP key; else the server makes an OTP
        key = None if otp else await seal_mod.parse_pgp_key(pgp_key, name="pgp_key")
        generated = ""
        if not otp and key is None:
            otp = generated = crypto.random_base62(TOKEN_LENGTH + 4)
        if key is None and len(otp) != TOKEN_LENGTH + 4:
            raise InvalidRequest(f"OTP string is wrong length: must be {TOKEN_LENGTH + 4} characters")
        await self.refresh_threshold()
        if self.generate_root is not None:  # another start won while the key was being checked
            raise InvalidRequest("root generation already in progress")
        self.generate_root = {
            "nonce": crypto.new_uuid(),
            "otp": otp,
            "pgp_key": key,
            "pgp_fingerprint": key.fingerprint if key is not None else "",
            "collector": KeyCollector(self.unseal_threshold_cache),
        }
        status = self.generate_root_status()
        if generated:
            status["otp"] = generated
        return status

    async def generate_root_update(self, key: bytes, nonce: str) -> dict[str, Any]:
        st = self.generate_root
        if st is None:
            raise InvalidRequest("no root generation in progress")
        if not crypto.constant_time_eq(nonce or "", st["nonce"]):
            raise InvalidRequest("incorrect nonce supplied")
        if st.get("encoded"):
            return self.generate_root_status()
        if st["collector"].add(key):
            parts = list(st["collector"].parts)
            try:
                await self.seal_impl.recover_root_key(parts)
            except InvalidRequest:
                st["collector"].reset()
                raise
            token_id, encrypted = "", b""
            if st.get("pgp_key") is not None:
                # encrypted before the token exists: a failure here leaves no root token nobody can read
                token_id = SERVICE_PREFIX + crypto.random_base62(TOKEN_LENGTH)
                try:
                    encrypted = (await seal_mod.pgp_encrypt([st["pgp_key"]], [token_id.encode()]))[0]
                except InvalidRequest:
                    st["collector"].reset()
                    raise
            # fail closed: a root token nobody could see being made is worse than none
            await self._record("generate-root", {"shares_used": len(parts)})
            token, _ = await self.tokens.create(
                policies=["root"], parent=None, display_name="root", path="auth/token/root", token_id=token_id
            )
            if encrypted:
                st["encoded"] = base64.b64encode(encrypted).decode()
            else:
                encoded = crypto.xor_bytes(st["otp"].encode(), token.encode())
                st["encoded"] = base64.b64encode(encoded).decode().rstrip("=")
            status = self.generate_root_status()
            self.generate_root = None
            return status
        return self.generate_root_status()

    def generate_root_cancel(self) -> None:
        self.generate_root = None

    # --- rekey --------------------------------------------------------------------------------------------------

    async def rekey_status(self) -> dict[str, Any]:
        st = self.rekey
        await self.refresh_threshold()
        return {
            "started": st is not None,
            "nonce": st["nonce"] if st else "",
            "t": st["threshold"] if st else 0,
            "n": st["shares"] if st else 0,
            "progress": st["collector"].progress if st else 0,
            "required": self.unseal_threshold_cache,
            "pgp_fingerprints": [k.fingerprint for k in st["pgp_keys"]] if st and st["pgp_keys"] else None,
            "backup": bool(st and st["backup"]),
            "verification_required": False,
        }

    async def rekey_start(
        self, shares: Any, threshold: Any, pgp_keys: Any = None, backup: Any = False
    ) -> dict[str, Any]:
        if self.sealed:
            raise Sealed()
        shares, threshold = validate_shares(shares, threshold)
        if not isinstance(backup, bool):
            raise InvalidRequest("'backup' must be a boolean")
        if self.rekey is not None:
            raise InvalidRequest("rekey already in progress")
        if backup and not pgp_keys:
            raise InvalidRequest("cannot request a backup of the new keys without providing PGP keys for encryption")
        keys = await seal_mod.parse_pgp_keys(
            pgp_keys, shares, name="pgp_keys", context="invalid rekey seal configuration",
            count_error="incorrect number of PGP keys for rekey",
        )
        await self.refresh_threshold()
        if self.rekey is not None:  # another start won while the keys were being checked
            raise InvalidRequest("rekey already in progress")
        self.rekey = {
            "nonce": crypto.new_uuid(),
            "shares": shares,
            "threshold": threshold,
            "pgp_keys": keys,
            "backup": backup,
            "collector": KeyCollector(self.unseal_threshold_cache),
        }
        return await self.rekey_status()

    async def rekey_update(self, key: bytes, nonce: str) -> dict[str, Any]:
        st = self.rekey
        if st is None:
            raise InvalidRequest("no rekey in progress")
        if not crypto.constant_time_eq(nonce or "", st["nonce"]):
            raise InvalidRequest("incorrect nonce supplied")
        if not st["collector"].add(key):
            return await self.rekey_status()
        parts = list(st["collector"].parts)
        try:
            root_key = await self.seal_impl.recover_root_key(parts)
        except InvalidRequest:
            st["collector"].reset()
            raise
        await self._record("rekey", {"secret_shares": st["shares"], "secret_threshold": st["threshold"]})
        wrap = self._rekey_wrapper(st) if st["pgp_keys"] else None
        try:
            keys = await self.seal_impl.rekey(root_key, st["shares"], st["threshold"], wrap)
        except InvalidRequest:
            st["collector"].reset()
            raise
        self.rekey = None
        return {
            "complete": True,
            "nonce": st["nonce"],
            "keys": [k.hex() for k in keys],
            "keys_base64": [base64.b64encode(k).decode() for k in keys],
            "pgp_fingerprints": [k.fingerprint for k in st["pgp_keys"]] if st["pgp_keys"] else None,
            "backup": st["backup"],
            "verification_required": False,
            "verification_nonce": "",
        }

    def _rekey_wrapper(self, st: dict[str, Any]) -> seal_mod.ShareWrapper:
        """PGP-encrypt the new shares and, with ``backup``, keep the encrypted copies (as Vault: before the rekey)."""
        encrypt = seal_mod.pgp_share_wrapper(st["pgp_keys"])

        async def wrap(shares: list[bytes]) -> list[bytes]:
            encrypted = await encrypt(shares)
            if st["backup"]:
                backup: dict[str, list[str]] = {}
                for key, message in zip(st["pgp_keys"], encrypted, strict=True):
                    backup.setdefault(key.fingerprint, []).append(message.hex())
                await self.barrier.put(REKEY_BACKUP_PATH, orjson.dumps({"nonce": st["nonce"], "keys": backup}))
            return encrypted

        return wrap

    async def rekey_backup(self) -> dict[str, Any] | None:
        raw = await self.barrier.get(REKEY_BACKUP_PATH)
        return None if raw is None else orjson.loads(raw)

    async def rekey_backup_delete(self) -> None:
        await self.barrier.delete(REKEY_BACKUP_PATH)

    def rekey_cancel(self) -> None:
        self.rekey = None


def secret_request(op: Operation, backend: Backend, entry: MountEntry, secret: Secret, full_path: str) -> Request:
    """The request a backend's SecretType callbacks (renew, revoke) receive for one of its credentials."""
    return Request(
        operation=op,
        path=full_path[len(entry.route_path) :],
        storage=backend.ctx.storage,
        mount_point=entry.route_path,
        mount_accessor=entry.accessor,
        mount_type=entry.type,
        secret=secret,
        full_path=full_path,
    )


_DEFAULT_DESCRIPTIONS = {
    "system": "system endpoints used for control, policy and debugging",
    "cubbyhole": "per-token private secret storage",
    "identity": "identity store",
    "token": "token based credentials",
}
