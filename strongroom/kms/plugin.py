"""``v2.KeyManagementService`` over a Unix socket, backed by one Strongroom transit key.

The contract kube-apiserver relies on (k8s.io/kms ``apis/v2/api.proto`` and the KMS provider docs):

* ``Status`` is polled (about once a minute when healthy, faster when not). It answers ``version: "v2"``, ``healthz:
  "ok"`` and ``key_id`` = ``strongroom:<mount>:<key>:v<latest version>`` only after Strongroom has just answered a
  read of the key with the plugin's token; sealed, unreachable or refusing gives a healthz other than "ok" (the reason)
  and the last key ID seen.
* A new ``key_id`` makes kube-apiserver generate a new DEK seed and call ``Encrypt``; objects whose stored key ID
  differs are reported stale, so a storage migration re-encrypts them: rotating the transit key is all it takes.
* ``Encrypt`` returns the transit ciphertext (``vault:v<N>:…``, well under the 1 KiB limit for a 32-byte seed) and the
  key ID of the version that actually encrypted it, so Status and Encrypt agree. ``Decrypt`` accepts any version the
  transit key still allows (``min_decryption_version``); a key ID or ciphertext that names another key is refused.
  The plugin never creates the key (transit's encrypt would, for a token allowed to): a missing key is an error.
* Fail closed: every failure is a gRPC error. Nothing is cached, so a sealed Strongroom stops Decrypt at once.

Plaintexts and tokens never reach logs or error messages; errors carry Strongroom's own (value-free) messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TypeVar

import grpc

from strongroom.kms.proto import api_pb2, api_pb2_grpc
from strongroom.kms.transit import KeyIdError, TransitKey, ciphertext_version
from strongroom.secretstore.errors import (
    ConfigurationError,
    PermissionDenied,
    SecretNotFound,
    SecretStoreError,
    Unavailable,
)

log = logging.getLogger("strongroom.kms")

API_VERSION = "v2"
HEALTHY = "ok"
# kube-apiserver rejects larger values (envelope/kmsv2: key ID and encrypted DEK source at most 1 KiB)
MAX_KEY_ID = 1024
MAX_CIPHERTEXT = 1024
# kube-apiserver sends a 32-byte DEK seed; anything much larger cannot fit the ciphertext limit once encrypted
MAX_PLAINTEXT = 512
# annotation telling a reader which transit key holds the DEK (not secret: kube-apiserver stores it in clear)
KEY_ANNOTATION = "transit.strongroom.io"

T = TypeVar("T")


class KmsService(api_pb2_grpc.KeyManagementServiceServicer):
    def __init__(self, transit: TransitKey) -> None:
        self.transit = transit
        self._last_key_id = ""

    def Status(self, request: api_pb2.StatusRequest, context: grpc.ServicerContext) -> api_pb2.StatusResponse:  # noqa: N802
        key = self.transit.key
        try:
            key_id = key.key_id(self.transit.latest_version())
        except (SecretStoreError, OSError) as exc:
            reason = f"transit key {key.mount}/{key.name} does not exist" if isinstance(exc, SecretNotFound) else exc
            log.warning("kms status: unhealthy: %s", reason)
            return api_pb2.StatusResponse(version=API_VERSION, healthz=f"strongroom: {reason}",
                                          key_id=self._last_key_id)
        self._last_key_id = key_id
        return api_pb2.StatusResponse(version=API_VERSION, healthz=HEALTHY, key_id=key_id)

    def Encrypt(self, request: api_pb2.EncryptRequest, context: grpc.ServicerContext) -> api_pb2.EncryptResponse:  # noqa: N802
        if not request.plaintext:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "plaintext is empty")
        if len(request.plaintext) > MAX_PLAINTEXT:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"plaintext is longer than {MAX_PLAINTEXT} bytes")
        ciphertext, version = _call(context, "encrypt", request.uid, lambda: self.transit.encrypt(request.plaintext))
        key_id = self.transit.key.key_id(version)
        if len(ciphertext) > MAX_CIPHERTEXT:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION,
                   f"ciphertext of {len(ciphertext)} bytes exceeds {MAX_CIPHERTEXT}: use an AES or ChaCha20 key")
        log.debug("kms encrypt uid=%s key_id=%s", request.uid, key_id)
        return api_pb2.EncryptResponse(
            ciphertext=ciphertext.encode(),
            key_id=key_id,
            annotations={KEY_ANNOTATION: f"{self.transit.key.mount}/{self.transit.key.name}".encode()},
        )

    def Decrypt(self, request: api_pb2.DecryptRequest, context: grpc.ServicerContext) -> api_pb2.DecryptResponse:  # noqa: N802
        try:
            if len(request.ciphertext) > MAX_CIPHERTEXT:
                raise KeyIdError(f"ciphertext is longer than {MAX_CIPHERTEXT} bytes")
            ciphertext = request.ciphertext.decode("ascii")
            version = ciphertext_version(ciphertext)
            if version != self.transit.key.version_of(request.key_id):
                raise KeyIdError("the key ID and the ciphertext name different key versions")
        except (KeyIdError, UnicodeDecodeError) as exc:
            reason = str(exc) if isinstance(exc, KeyIdError) else "ciphertext is not a transit ciphertext"
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, reason)
        plaintext = _call(context, "decrypt", request.uid, lambda: self.transit.decrypt(ciphertext))
        log.debug("kms decrypt uid=%s key_id=%s", request.uid, request.key_id[:MAX_KEY_ID])
        return api_pb2.DecryptResponse(plaintext=plaintext)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    context.abort(code, message)  # raises: the handler stops here


def _call(context: grpc.ServicerContext, what: str, uid: str, fn: Callable[[], T]) -> T:
    """Run one transit call; map every failure to a gRPC error (fail closed: no retry beyond the client's own)."""
    try:
        return fn()
    except (Unavailable, OSError) as exc:
        code, message = grpc.StatusCode.UNAVAILABLE, str(exc)
    except (PermissionDenied, ConfigurationError) as exc:
        code, message = grpc.StatusCode.PERMISSION_DENIED, str(exc)
    except SecretNotFound as exc:
        code, message = grpc.StatusCode.FAILED_PRECONDITION, f"transit key not found ({exc.path})"
    except KeyIdError as exc:
        code, message = grpc.StatusCode.INTERNAL, str(exc)
    except SecretStoreError as exc:
        code, message = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    log.warning("kms %s uid=%s failed: %s", what, uid, message)
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises


def socket_path(listen: str) -> str:
    """``unix:///abs/path`` (as kube-apiserver's ``endpoint``) or ``unix:/abs/path`` → the filesystem path."""
    path = listen.removeprefix("unix://") if listen.startswith("unix://") else listen.removeprefix("unix:")
    if path != listen and path.startswith("/") and not path.startswith("//"):
        return path
    raise ValueError(f"--listen must be unix:///absolute/path/to.sock, not {listen!r}")


@contextlib.contextmanager
def _owner_only_umask() -> Iterator[None]:
    # whoever can connect can decrypt every DEK: the socket is created owner-only (kube-apiserver runs as the same user)
    old = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(old)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket left by a plugin that died, but never take over one that still answers."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise OSError(f"{path} is in use by another process")


class PluginServer:
    """The gRPC server plus the thread that keeps the plugin's Strongroom token from lapsing between calls."""

    def __init__(self, transit: TransitKey, listen: str, *, renew_every: float = 30.0, workers: int = 8) -> None:
        self.path = socket_path(listen)
        self.transit = transit
        self._renew_every = renew_every
        self._stopped = threading.Event()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kms"))
        api_pb2_grpc.add_KeyManagementServiceServicer_to_server(KmsService(transit), self._server)
        self._renewer = threading.Thread(target=self._renew_loop, name="kms-token", daemon=True)

    def start(self) -> None:
        if not os.path.isdir(os.path.dirname(self.path)):
            raise OSError(f"cannot listen on {self.path}: {os.path.dirname(self.path)} is not a directory")
        _clear_stale_socket(self.path)
        with _owner_only_umask():
            try:
                bound = self._server.add_insecure_port(f"unix:{self.path}")
            except RuntimeError:  # grpc's way of saying bind() failed
                bound = 0
            if bound == 0:
                raise OSError(f"cannot listen on {self.path}")
            self._server.start()
        self._renewer.start()
        log.info("kms plugin listening on unix://%s for transit key %s/%s",
                 self.path, self.transit.key.mount, self.transit.key.name)

    def _renew_loop(self) -> None:
        while not self._stopped.wait(self._renew_every):
            try:
                self.transit.keep_token_fresh()
            except (SecretStoreError, OSError) as exc:
                log.warning("kms plugin: cannot renew its Strongroom token: %s", exc)

    def wait(self) -> None:
        self._server.wait_for_termination()

    def stop(self, grace: float = 5.0) -> None:
        self._stopped.set()
        self._server.stop(grace).wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.transit.close()
