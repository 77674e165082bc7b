"""A live workload certificate for mutual TLS: ``secretstore.certificate()``.

    cert = certificate()                      # pki/issue/workload: this pod's SPIFFE ID, no configuration
    cert.wait(timeout=30)                     # block start-up until the first certificate is held
    server_ctx = cert.server_context()        # requires and verifies client certificates from the same CA
    client_ctx = cert.client_context()        # presents this certificate, verifies the server's
    peer_spiffe_id(tls_socket)                # the peer's identity, e.g. spiffe://cluster.local/ns/default/sa/s-ledger

The pod's ServiceAccount login is the only credential (bootstrap lets ``kubernetes-reader`` issue on the ``workload``
role, which names exactly the caller's own ServiceAccount). A background thread issues a new certificate and key at
two thirds of the current one's lifetime (counted from when it was received, jittered by ±5 % of the lifetime so a
fleet does not renew in step) and reloads every ``SSLContext`` built here, so new handshakes use it; connections
already open keep theirs. Failures back off exponentially with jitter (:func:`strongroom.backoff.delay`) and are
retried forever, never sleeping past the current certificate's expiry; ``ready()`` is True only while an unexpired
certificate is held. The key exists only in memory and in a private (0700) temporary folder that ``ssl`` loads it
from, removed by :meth:`Certificate.close`.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import ssl
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from strongroom.secretstore import renewal
from strongroom.secretstore.errors import Unavailable
from strongroom.secretstore.renewal import Retry as _Retry
from strongroom.secretstore.renewal import backoff_delay as backoff_delay

log = logging.getLogger(__name__)
_jitter = random.SystemRandom()

RENEW_AT = 2 / 3
JITTER = 0.05


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: str  # PEM leaf
    private_key: str  # PEM
    ca_chain: tuple[str, ...]  # PEM issuers, nearest first
    serial_number: str
    not_after: float  # time.time() seconds
    received_at: float
    uris: tuple[str, ...] = ()

    @property
    def spiffe_id(self) -> str:
        return next((u for u in self.uris if u.startswith("spiffe://")), "")

    @property
    def trust_anchor(self) -> str:
        """The top of the chain: what a peer must be issued under to be trusted."""
        return self.ca_chain[-1] if self.ca_chain else self.certificate

    def __repr__(self) -> str:  # never the key
        return f"IssuedCertificate(serial_number={self.serial_number!r}, spiffe_id={self.spiffe_id!r})"


def renew_delay(lifetime: float, rng: Callable[[float, float], float] = _jitter.uniform) -> float:
    """Seconds from receipt to renewal: two thirds of the lifetime, jittered by ±5 % of it."""
    return renewal.renew_delay(lifetime, RENEW_AT, JITTER, rng)


def peer_spiffe_id(sock: ssl.SSLSocket | ssl.SSLObject) -> str:
    """The ``spiffe://`` URI SAN of the peer's verified certificate ("" when it has none)."""
    cert = sock.getpeercert() or {}
    for pair in cert.get("subjectAltName", ()):
        kind, value = pair[0], pair[1]
        if kind == "URI" and isinstance(value, str) and value.startswith("spiffe://"):
            return value
    return ""


def check_peer(sock: ssl.SSLSocket | ssl.SSLObject, trust_domain: str, allowed: Callable[[str], bool] | None = None
               ) -> str:
    """The peer's SPIFFE ID after checking it is in ``trust_domain`` (and ``allowed``); raises ``ssl.SSLError``."""
    spiffe_id = peer_spiffe_id(sock)
    if not spiffe_id.startswith(f"spiffe://{trust_domain}/") or (allowed is not None and not allowed(spiffe_id)):
        raise ssl.SSLError(f"peer identity {spiffe_id or '(none)'} is not allowed")
    return spiffe_id


class Certificate(renewal.Renewer[IssuedCertificate]):
    _what = "certificate"
    _log = log

    def __init__(
        self,
        role: str = "workload",
        *,
        client: Any = None,
        addr: str | None = None,
        token_provider: Callable[[], str] | None = None,
        mount: str = "pki",
        common_name: str = "",
        alt_names: tuple[str, ...] = (),
        uri_sans: tuple[str, ...] = (),
        ttl: str | int | None = None,
        on_change: Callable[[IssuedCertificate], None] | None = None,
        ca_cert: str | None = None,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._connect(client, addr, token_provider, ca_cert)
        renewal.check_names(role, mount)
        self.role = role
        self._request: dict[str, Any] = {"format": "pem", "private_key_format": "pkcs8"}
        if common_name:
            self._request["common_name"] = common_name
        if alt_names:
            self._request["alt_names"] = ",".join(alt_names)
        if uri_sans:
            self._request["uri_sans"] = ",".join(uri_sans)
        if ttl is not None:
            self._request["ttl"] = ttl
        self._files: tuple[str, str, str] | None = None  # chain file, key file, CA file
        self._dir = tempfile.mkdtemp(prefix="strongroom-cert-")
        os.chmod(self._dir, 0o700)
        self._generation = 0
        self._contexts: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._start(
            path=f"{mount.strip('/')}/issue/{role}",
            name=f"role {role}",
            thread_name=f"cert-{role}",
            on_change=on_change,
            backoff_range=(backoff_initial, backoff_max),
            stats={"issued": 0},
            http=http,
        )

    # --- what the application uses -----------------------------------------------------------------------------

    def server_context(self, *, require_client_cert: bool = True) -> ssl.SSLContext:
        """A TLS server context presenting this certificate; by default it demands a client certificate issued
        under the same trust anchor (mutual TLS)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
        return self._track(ctx)

    def client_context(self, *, check_hostname: bool = False) -> ssl.SSLContext:
        """A TLS client context presenting this certificate and verifying the server's chain against the same
        trust anchor. Workload certificates name a SPIFFE ID, not a host: check it with :func:`check_peer`."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        return self._track(ctx)

    def close(self) -> None:
        self._halt()
        self._http.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    # --- contexts ------------------------------------------------------------------------------------------------

    def _track(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        self.wait(timeout=30)  # a context is only useful with a certificate in it
        with self._lock:
            if self._files is None:
                raise Unavailable(self._path, "no certificate yet")
            self._load(ctx, self._files)
            self._contexts.add(ctx)
        return ctx

    @staticmethod
    def _load(ctx: ssl.SSLContext, files: tuple[str, str, str]) -> None:
        chain, key, ca = files
        ctx.load_cert_chain(chain, key)
        ctx.load_verify_locations(cafile=ca)

    # --- what the renewal loop asks of a certificate -----------------------------------------------------------

    def _expiry(self, value: IssuedCertificate) -> float:
        return value.not_after

    def _step(self, current: IssuedCertificate | None) -> float:
        issued = self._issue()
        return issued.received_at + renew_delay(issued.not_after - issued.received_at)

    def _issue(self) -> IssuedCertificate:
        body = self._call("POST", self._path, self._request)
        data = body.get("data") or {}
        pem, key = str(data.get("certificate") or ""), str(data.get("private_key") or "")
        chain = tuple(str(c) for c in data.get("ca_chain") or [data.get("issuing_ca") or ""] if c)
        if not pem or not key or not chain:
            raise _Retry("the server returned an incomplete certificate")
        from cryptography import x509

        parsed = x509.load_pem_x509_certificate(pem.encode())
        try:
            san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        except x509.ExtensionNotFound:
            uris = ()
        issued = IssuedCertificate(
            certificate=pem, private_key=key, ca_chain=chain, serial_number=str(data.get("serial_number", "")),
            not_after=parsed.not_valid_after_utc.timestamp(), received_at=time.time(),
            uris=uris,
        )
        self._install_certificate(issued)
        return issued

    def _install_certificate(self, issued: IssuedCertificate) -> None:
        self._generation += 1
        base = os.path.join(self._dir, str(self._generation))
        # the chain sent to peers: the leaf and the issuers below the trust anchor
        intermediates = [c for c in issued.ca_chain if c != issued.trust_anchor]
        files = (base + "-chain.pem", base + "-key.pem", base + "-ca.pem")
        _write(files[0], "\n".join([issued.certificate, *intermediates]) + "\n")
        _write(files[1], issued.private_key + "\n")
        _write(files[2], issued.trust_anchor + "\n")
        with self._lock:
            old = self._files
            self._current, self._files = issued, files
            for ctx in list(self._contexts):
                try:
                    self._load(ctx, files)
                except (ssl.SSLError, OSError) as exc:
                    log.error("reloading a TLS context with the new certificate failed: %s", type(exc).__name__)
        if old is not None:
            for path in old:
                _remove(path)
        self.stats["issued"] += 1
        self._have.set()
        self._notify(issued)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def certificate(role: str = "workload", **kwargs: Any) -> Certificate:
    """Start a live certificate for this workload (see the module documentation)."""
    return Certificate(role, **kwargs)
