"""WebAuthn step-up for staff in the proxy: a security key (or platform authenticator) proves presence before a
sensitive action, on top of the IdP session.

Design (decided here, documented in the README):

- **Registration is bound to the IdP-authenticated person** (the session's user id is the WebAuthn user handle).
  A person's first key is enrolled with the IdP session alone (trust on first use, to be done at onboarding); every
  further key needs a current step-up, so a stolen IdP token cannot add its own key to someone who already has one.
- **Credentials** live in a proxy-side SQLite file (``[step_up] credentials_db``; in memory when unset, for one
  replica): credential id, public key, signature counter, owner. Only public material: nothing secret is stored.
- **Challenges** are random, single use, kept in memory for :data:`CHALLENGE_TTL` seconds and bound to the session.
- **The step-up** is a cookie ``strongroom_step_up`` = ``<expiry>.<HMAC(key, session-hash, expiry)>``: bound to the
  IdP session that performed the assertion (another session, or a new sign-in, does not carry it), valid for
  ``[step_up] ttl`` (short), stateless so every replica sharing the CSRF key accepts it.
- **Where it is required** (``[step_up]``): ``reveal = true`` for revealing a secret value in the UI, ``paths`` —
  globs over API paths (``secret/data/k8s/*/prod/*``) that the proxy refuses to forward without a step-up.
- **The MPA broker** (approve, break-glass) is a separate service that authenticates people by their IdP token. A
  stepped-up session may ask ``POST /webauthn/proof`` for a *step-up proof*: ``v1.<expiry>.<HMAC>`` over the IdP
  issuer and subject, the hash of the very IdP token of the session, and the expiry, under a key the proxy and the
  broker share (``proof_key_file`` on both). The broker recomputes it from the bearer token it was given
  (:func:`check_proof`), so a proof is worthless with any other token, to anyone else, and after ``ttl``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from strongroom import crypto

if TYPE_CHECKING:
    from strongroom.proxy import asgi
    from strongroom.proxy.app import ProxyApp, StaffSession

STEP_UP_COOKIE = "strongroom_step_up"
PROOF_HEADER = "x-strongroom-step-up"
CHALLENGE_TTL = 120
# a broker refuses a proof that claims to last longer than this, whatever the proxy was configured with
PROOF_MAX_TTL = 3600


@dataclass(frozen=True)
class StepUpConfig:
    rp_id: str
    origin: str
    rp_name: str = "Strongroom"
    ttl: int = 300
    reveal: bool = True
    paths: tuple[str, ...] = field(default_factory=tuple)
    credentials_db: str | None = None
    proof_key_file: str | None = None


def parse_config(doc: Any) -> StepUpConfig | None:
    """``[step_up]`` of the proxy configuration, or None when step-up is not configured."""
    if doc is None:
        return None
    from strongroom.framework.durations import parse_duration
    from strongroom.proxy.config import ConfigError

    if not isinstance(doc, dict) or not doc.get("rp_id") or not doc.get("origin"):
        raise ConfigError("[step_up] needs rp_id and origin")
    try:
        ttl = parse_duration(doc.get("ttl", "5m"))
    except ValueError:
        raise ConfigError("[step_up] ttl is not a duration") from None
    paths = doc.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ConfigError("[step_up] paths must be a list of strings")
    return StepUpConfig(
        rp_id=str(doc["rp_id"]),
        origin=str(doc["origin"]).rstrip("/"),
        rp_name=str(doc.get("rp_name", "Strongroom")),
        ttl=max(30, min(ttl, 3600)),
        reveal=bool(doc.get("reveal", True)),
        paths=tuple(p.lstrip("/") for p in paths),
        credentials_db=doc.get("credentials_db"),
        proof_key_file=doc.get("proof_key_file"),
    )


def session_hash(credential: str) -> str:
    """What a step-up is bound to: the session's IdP credential (cookie or bearer), hashed."""
    return hashlib.sha256(b"strongroom-session\x00" + credential.encode()).hexdigest()


def read_proof_key(path: str) -> bytes:
    """The key shared by the proxy (which signs step-up proofs) and the broker (which checks them)."""
    from pathlib import Path

    key = Path(path).read_bytes().strip()
    if len(key) < 32:
        raise ValueError("a step-up proof key must hold at least 32 bytes")
    return key


def _proof_mac(key: bytes, issuer: str, subject: str, session: str, expiry: int) -> str:
    message = "\x00".join(("strongroom-step-up-proof", issuer, subject, session, str(expiry)))
    return crypto.hmac_sha256_hex(key, message.encode())


def make_proof(key: bytes, issuer: str, subject: str, session: str, ttl: int) -> tuple[str, int]:
    expiry = int(time.time()) + ttl
    return f"v1.{expiry}.{_proof_mac(key, issuer, subject, session, expiry)}", expiry


def check_proof(key: bytes, proof: str | None, issuer: str, subject: str, bearer_token: str) -> bool:
    """Whether ``proof`` is a live step-up proof for this IdP account and this very IdP token."""
    parts = (proof or "").split(".")
    if len(parts) != 3 or parts[0] != "v1" or not parts[1].isdigit():
        return False
    expiry = int(parts[1])
    if not time.time() < expiry <= time.time() + PROOF_MAX_TTL:
        return False
    expected = _proof_mac(key, issuer, subject, session_hash(bearer_token), expiry)
    return crypto.constant_time_eq(parts[2], expected)


class StepUpRefused(Exception):
    pass


class StepUp:
    def __init__(self, cfg: StepUpConfig, key: bytes) -> None:
        self.cfg = cfg
        self._key = key
        self._lock = threading.Lock()
        self._db = sqlite3.connect(cfg.credentials_db or ":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS credentials (id BLOB PRIMARY KEY, user TEXT NOT NULL, public_key BLOB NOT NULL,"
            " sign_count INTEGER NOT NULL, created REAL NOT NULL)"
        )
        self.proof_key = read_proof_key(cfg.proof_key_file) if cfg.proof_key_file else None
        # (session hash, purpose) -> (challenge, expiry)
        self._challenges: dict[tuple[str, str], tuple[bytes, float]] = {}

    # --- where it is required --------------------------------------------------------------------------------------

    def required_for_path(self, api_path: str) -> bool:
        """Whether the API path matches a configured glob; ``//`` and ``.`` segments cannot dodge a pattern, and
        ``*`` may span segments (a pattern asks for more step-ups, never fewer)."""
        path = posixpath.normpath("/" + api_path.split("?", 1)[0]).lstrip("/")
        return any(
            fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path + "/", pattern) for pattern in self.cfg.paths
        )

    # --- the step-up proof -----------------------------------------------------------------------------------------

    def _mac(self, session: str, expiry: int) -> str:
        return crypto.hmac_sha256_hex(self._key, f"strongroom-step-up\x00{session}\x00{expiry}".encode())

    def proof(self, session: str) -> tuple[str, int]:
        expiry = int(time.time()) + self.cfg.ttl
        return f"{expiry}.{self._mac(session, expiry)}", expiry

    def valid(self, cookie: str | None, session: str) -> bool:
        if not cookie or "." not in cookie:
            return False
        expiry_text, _, mac = cookie.partition(".")
        if not expiry_text.isdigit() or int(expiry_text) <= time.time():
            return False
        return crypto.constant_time_eq(mac, self._mac(session, int(expiry_text)))

    # --- credentials -----------------------------------------------------------------------------------------------

    def credentials(self, user: str) -> list[tuple[bytes, bytes, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, public_key, sign_count FROM credentials WHERE user = ? ORDER BY created", (user,)
            ).fetchall()
        return [(bytes(r[0]), bytes(r[1]), int(r[2])) for r in rows]

    def _challenge(self, session: str, purpose: str) -> bytes:
        now = time.time()
        for k in [k for k, (_, exp) in self._challenges.items() if exp <= now]:
            del self._challenges[k]
        challenge = secrets.token_bytes(32)
        self._challenges[(session, purpose)] = (challenge, now + CHALLENGE_TTL)
        return challenge

    def _take_challenge(self, session: str, purpose: str) -> bytes:
        entry = self._challenges.pop((session, purpose), None)
        if entry is None or entry[1] <= time.time():
            raise StepUpRefused("no pending challenge for this session (start again)")
        return entry[0]

    def registration_options(self, user: str, session: str, stepped_up: bool) -> str:
        from webauthn import generate_registration_options, options_to_json
        from webauthn.helpers.structs import PublicKeyCredentialDescriptor

        existing = self.credentials(user)
        if existing and not stepped_up:
            raise StepUpRefused("a security key is already registered: verify with it before adding another")
        options = generate_registration_options(
            rp_id=self.cfg.rp_id,
            rp_name=self.cfg.rp_name,
            user_name=user,
            user_id=hashlib.sha256(user.encode()).digest()[:32],
            challenge=self._challenge(session, "register"),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid, _, _ in existing],
        )
        return options_to_json(options)

    def register(self, user: str, session: str, stepped_up: bool, credential: Any) -> None:
        from webauthn import verify_registration_response

        if self.credentials(user) and not stepped_up:
            raise StepUpRefused("a security key is already registered: verify with it before adding another")
        challenge = self._take_challenge(session, "register")
        try:
            verified = verify_registration_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.cfg.rp_id,
                expected_origin=self.cfg.origin,
            )  # fmt: skip
        except Exception as exc:  # the library's errors say what failed, never anything secret
            raise StepUpRefused(f"registration failed: {type(exc).__name__}") from None
        with self._lock:
            self._db.execute(
                "INSERT INTO credentials (id, user, public_key, sign_count, created) VALUES (?, ?, ?, ?, ?)",
                (verified.credential_id, user, verified.credential_public_key, verified.sign_count, time.time()),
            )

    def assertion_options(self, user: str, session: str) -> str:
        from webauthn import generate_authentication_options, options_to_json
        from webauthn.helpers.structs import PublicKeyCredentialDescriptor

        existing = self.credentials(user)
        if not existing:
            raise StepUpRefused("no security key is registered for you: register one first")
        options = generate_authentication_options(
            rp_id=self.cfg.rp_id,
            challenge=self._challenge(session, "assert"),
            allow_credentials=[PublicKeyCredentialDescriptor(id=cid) for cid, _, _ in existing],
        )
        return options_to_json(options)

    def assert_(self, user: str, session: str, credential: Any) -> None:
        from webauthn import base64url_to_bytes, verify_authentication_response

        challenge = self._take_challenge(session, "assert")
        raw_id = credential.get("rawId") if isinstance(credential, dict) else None
        try:
            cred_id = base64url_to_bytes(raw_id) if isinstance(raw_id, str) else b""
        except Exception:
            cred_id = b""
        match = [c for c in self.credentials(user) if c[0] == cred_id]
        if not match:
            raise StepUpRefused("unknown security key")
        _, public_key, sign_count = match[0]
        try:
            verified = verify_authentication_response(
                credential=credential, expected_challenge=challenge, expected_rp_id=self.cfg.rp_id,
                expected_origin=self.cfg.origin, credential_public_key=public_key,
                credential_current_sign_count=sign_count,
            )  # fmt: skip
        except Exception as exc:
            raise StepUpRefused(f"verification failed: {type(exc).__name__}") from None
        with self._lock:
            self._db.execute(
                "UPDATE credentials SET sign_count = ? WHERE id = ? AND user = ?",
                (verified.new_sign_count, cred_id, user),
            )


# --- HTTP: /webauthn/* JSON endpoints (cookie session + CSRF header), used by the UI step-up page ---


async def handle(app: ProxyApp, req: asgi.Req, send: asgi.Send) -> None:
    from strongroom.proxy import asgi as _asgi
    from strongroom.proxy.app import CSRF_HEADER
    from strongroom.proxy.idp import NotAuthenticated

    step_up = app.step_up
    if step_up is None:
        await _asgi.send_error(send, 404, "step-up is not configured")
        return
    if req.method != "POST":
        await _asgi.send_error(send, 405, "method not allowed")
        return
    try:
        session = await app.authenticate(req)
    except NotAuthenticated as exc:
        await _asgi.send_error(send, 401, str(exc))
        return
    if session.csrf is None or not session.csrf_ok(req.headers.get(CSRF_HEADER)):
        await _asgi.send_error(send, 403, "missing or invalid CSRF token (X-CSRF-Token) for a cookie session")
        return
    user, key = session.user.id, session.session_key
    try:
        body = orjson.loads(req.body) if req.body else {}
    except orjson.JSONDecodeError:
        await _asgi.send_error(send, 400, "the body must be JSON")
        return
    extra: list[tuple[str, str]] = []
    try:
        if req.path == "/webauthn/register/options":
            out = step_up.registration_options(user, key, session.stepped_up).encode()
        elif req.path == "/webauthn/register":
            step_up.register(user, key, session.stepped_up, body)
            out = b'{"registered": true}'
        elif req.path == "/webauthn/assert/options":
            out = step_up.assertion_options(user, key).encode()
        elif req.path == "/webauthn/assert":
            step_up.assert_(user, key, body)
            value, expiry = step_up.proof(key)
            extra.append(("set-cookie", _cookie(app, value, step_up.cfg.ttl)))
            out = orjson.dumps({"stepped_up": True, "expires": expiry})
        elif req.path == "/webauthn/proof":
            if step_up.proof_key is None:
                raise StepUpRefused("step-up proofs are not configured (proof_key_file)")
            if not session.stepped_up:
                raise StepUpRefused("verify with your security key first")
            claims = session.user.claims
            proof, expiry = make_proof(
                step_up.proof_key, str(claims.get("iss", "")), str(claims.get("sub", "")), key, step_up.cfg.ttl
            )
            out = orjson.dumps({"proof": proof, "expires": expiry, "header": PROOF_HEADER})
        else:
            await _asgi.send_error(send, 404, "not found")
            return
    except StepUpRefused as exc:
        await _asgi.send_error(send, 403, str(exc))
        return
    await _asgi.send(send, 200, out, "application/json", extra)


def _cookie(app: ProxyApp, value: str, max_age: int) -> str:
    secure = "; Secure" if app.cfg.cookie_secure else ""
    return f"{STEP_UP_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"


def stepped_up(app: ProxyApp, req: asgi.Req, session: StaffSession) -> bool:
    return app.step_up is not None and app.step_up.valid(req.cookie(STEP_UP_COOKIE), session.session_key)
