"""``strongroom secret``: add a service's secret without being able to clobber one, and look at what exists.

Exit status: 0 success, 1 the secret version already exists, 2 usage error, 3 any other failure (refused, unreachable).
Values are read from a hidden prompt, a file or stdin — never from an argument — and travel encrypted to the server's
transport key, so nothing between this CLI and the server's write handler sees them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import click

from strongroom import transport_crypto
from strongroom.cli import environments as envs
from strongroom.cli.environments import Environment
from strongroom.cli.output import Output
from strongroom.cli.service_names import ServiceRef, resolve
from strongroom.secretstore.engine import check_name

EXIT_EXISTS = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
_MAX_VALUE = 1024 * 1024


class Abort(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Ctx:
    out: Output
    envs: dict[str, Environment]  # the field's name hides the module inside the class body
    env: Environment
    addr: str | None
    token: str | None
    interactive: bool


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _svc(service: str, namespace: str | None) -> ServiceRef:
    try:
        return resolve(service, namespace)
    except ValueError as exc:
        raise Abort(str(exc), EXIT_USAGE) from None


def _valid_name(name: str) -> str:
    try:
        return check_name(name)
    except ValueError as exc:
        raise Abort(str(exc), EXIT_USAGE) from None


def _valid_version(version: str) -> str:
    if "/" in version:
        raise Abort(f"invalid version {version!r}: a version is one path segment (e.g. {_today()})", EXIT_USAGE)
    try:
        return check_name(version, "version")
    except ValueError as exc:
        raise Abort(str(exc), EXIT_USAGE) from None


def _data_path(svc: ServiceRef, name: str, version: str) -> str:
    return f"secret/data/k8s/{svc.namespace}/{svc.service_account}/{name}/{version}"


def _meta_path(svc: ServiceRef, name: str = "") -> str:
    tail = f"/{name}" if name else ""
    return f"secret/metadata/k8s/{svc.namespace}/{svc.service_account}{tail}"


@contextmanager
def _session(c: Ctx, env: envs.Environment, announce: bool = True) -> Iterator[envs.Session]:
    if announce:
        c.out.step(f"Authenticating against {env.name}")
    s = envs.Session(env)
    try:
        try:
            s.login()
        except envs.ApiError as exc:
            raise Abort(f"login to {env.name} failed: {exc}", EXIT_FAILED) from None
        yield s
    finally:
        s.close()


def _versions(s: envs.Session, svc: ServiceRef, name: str) -> list[str]:
    try:
        keys = s.list(_meta_path(svc, name) + "/")
    except envs.ApiError as exc:
        raise Abort(f"cannot list versions of {name}: {exc}", EXIT_FAILED) from None
    return sorted(k for k in keys if not k.endswith("/"))


def _confirm(c: Ctx, emoji: str, text: str, yes: bool, default: bool = True) -> bool:
    if yes:
        return True
    if not c.interactive:
        raise Abort(f"{text} — pass --yes to confirm when not running interactively", EXIT_USAGE)
    return click.confirm(c.out.question(emoji, text), default=default, err=True)


def _read_value(c: Ctx, from_file: str | None, yes: bool) -> bytes:
    if from_file == "-":
        data = sys.stdin.buffer.read(_MAX_VALUE + 1)
    elif from_file:
        try:
            with open(from_file, "rb") as f:
                data = f.read(_MAX_VALUE + 1)
        except OSError as exc:
            raise Abort(f"cannot read {from_file}: {exc.strerror}", EXIT_USAGE) from None
    else:
        if not c.interactive:
            raise Abort("no value: use --from-file PATH (or - for stdin) when not running interactively", EXIT_USAGE)
        if not _confirm(c, "👉", "Confirm when ready to paste secret", yes):
            raise Abort("cancelled", EXIT_USAGE)
        # getpass reads from the terminal with echo off: the value never shows on screen or in shell history
        data = getpass.getpass(
            c.out.question("🔒", "Secret value (hidden): ") if c.out.fancy else "Secret value: "
        ).encode()
    if len(data) > _MAX_VALUE:
        raise Abort(f"the value is larger than {_MAX_VALUE} bytes", EXIT_USAGE)
    if not data:
        raise Abort("the value is empty", EXIT_USAGE)
    return data


def _prompt_name(c: Ctx, name: str | None) -> str:
    if name is not None:
        return _valid_name(name)
    if not c.interactive:
        raise Abort("missing --name", EXIT_USAGE)
    while True:
        value = click.prompt(
            c.out.question("", "Please enter a descriptive name, eg 'aws/secret-access-key'"), err=True
        )
        try:
            return _valid_name(value.strip())
        except Abort as exc:
            c.out.error(str(exc))


def _prompt_version(c: Ctx, version: str | None) -> str:
    if version is not None:
        return _valid_version(version)
    if not c.interactive:
        raise Abort("missing --version", EXIT_USAGE)
    while True:
        value = click.prompt(c.out.question("", "Version identifier"), default=_today(), err=True)
        try:
            return _valid_version(value.strip())
        except Abort as exc:
            c.out.error(str(exc))


def _staging_check(c: Ctx, svc: ServiceRef, name: str, version: str, yes: bool) -> None:
    """Writing to prod: warn when staging lacks the same name and version, and ask to go on."""
    staging = c.envs.get(envs.STAGING)
    if staging is None:
        c.out.warn(f"no {envs.STAGING} environment configured: cannot check that {name}/{version} exists in staging")
        return
    if c.env.login == "token" and c.env.token:
        # the same person's token; if staging does not accept it, the check below says so
        staging = replace(staging, login="token", token=c.env.token)
    try:
        with _session(c, staging, announce=False) as s:
            present = version in _versions(s, svc, name)
    except (Abort, envs.UsageError) as exc:
        c.out.warn(f"could not check {envs.STAGING}: {exc}")
        present = False
    if present:
        c.out.info("✅", f"{name}/{version} exists in {envs.STAGING}")
        return
    c.out.warn(f"{name}/{version} does not exist in {envs.STAGING}: test the secret in staging first")
    if not _confirm(c, "🚧", f"Write to {c.env.name} anyway?", yes, default=False):
        raise Abort("cancelled", EXIT_USAGE)


def _exists(s: envs.Session, svc: ServiceRef, name: str, version: str) -> bool:
    return version in _versions(s, svc, name)


def _refuse_existing(c: Ctx, where: str) -> Abort:
    return Abort(
        f"{where} already exists in {c.env.name}; secrets are immutable — create a new version instead",
        EXIT_EXISTS,
    )


def _create(c: Ctx, service: str, namespace: str | None, name: str | None, version: str | None,
            from_file: str | None, yes: bool, trim_newline: bool | None) -> None:  # fmt: skip
    svc = _svc(service, namespace)
    name = None if name is None else _valid_name(name)
    version = None if version is None else _valid_version(version)
    if from_file == "-" and not yes:
        raise Abort("reading the value from stdin needs --yes (prompts cannot share stdin)", EXIT_USAGE)
    with _session(c, c.env) as s:
        name = _prompt_name(c, name)
        version = _prompt_version(c, version)
        where = f"{svc.secret_root}/{name}/{version}"
        c.out.info("🔑", f"Your secret will be at path {where} under the key 'data'")
        existing = _versions(s, svc, name)
        c.out.info("🔍", f"Existing versions for {name} in {c.env.name}: [{', '.join(existing)}]")
        if version in existing:
            raise _refuse_existing(c, where)
        if c.env.is_production:
            _staging_check(c, svc, name, version, yes)
        raw = _read_value(c, from_file, yes)
        if raw.endswith(b"\n"):
            trim = trim_newline
            if trim is None:
                trim = (
                    False if yes else _confirm(c, "↔️ ", "Do you want to trim the trailing newline in your file?", yes)
                )
            if trim:
                raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Abort("the value is not UTF-8 text; base64-encode binary values first", EXIT_USAGE) from None
        if not value:
            raise Abort("the value is empty after trimming", EXIT_USAGE)
        try:
            key = s.call("GET", "sys/transport/key")["data"]
        except envs.ApiError as exc:
            msg = f"cannot fetch {c.env.name}'s transport key, refusing to send the value: {exc}"
            raise Abort(msg, EXIT_FAILED) from None
        envelope = _seal(c, key, value, _data_path(svc, name, version))
        del value, raw
        if not _confirm(c, "🆕", f"Write {where} to environment {c.env.name}?", yes):
            raise Abort("cancelled", EXIT_USAGE)
        try:
            s.call("POST", _data_path(svc, name, version), {"transport": envelope, "options": {"cas": 0}})
        except envs.ApiError as exc:
            if exc.status == 400 and any("check-and-set" in e for e in exc.errors):
                raise _refuse_existing(c, where) from None
            # a create-only policy refuses a write to an existing version as an update: say which it was
            if exc.status == 403 and _exists(s, svc, name, version):
                raise _refuse_existing(c, where) from None
            raise Abort(f"writing {where} failed: {exc}", EXIT_FAILED) from None
        c.out.success(f"Secret created at {where} in {c.env.name}")


def _seal(c: Ctx, key: dict[str, Any], value: str, destination: str) -> str:
    """Encrypt to the server's transport key, after checking the key is the one the server published to us."""
    try:
        public = base64.b64decode(key["key"], validate=True)
        version = int(key["version"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Abort(f"{c.env.name} published a malformed transport key", EXIT_FAILED) from None
    fingerprint = transport_crypto.fingerprint(public)
    if key.get("fingerprint") != fingerprint:
        raise Abort(f"{c.env.name}'s transport key does not match its fingerprint; refusing to send", EXIT_FAILED)
    pinned = c.env.transport_fingerprints
    if pinned and fingerprint not in pinned:
        raise Abort(
            f"{c.env.name}'s transport key {fingerprint} is not one of the fingerprints pinned in the config; "
            "refusing to send the value",
            EXIT_FAILED,
        )
    c.out.info("🔐", f"Encrypting to {c.env.name}'s transport key {fingerprint} (version {version})")
    try:
        # bound to its destination: the server refuses it anywhere else
        return transport_crypto.seal_json(key["key"], version, {"data": value}, context=destination)
    except transport_crypto.EnvelopeError as exc:
        raise Abort(str(exc), EXIT_FAILED) from None


def _walk(s: envs.Session, base: str, prefix: str, depth: int = 0) -> Iterator[tuple[str, list[str]]]:
    """(name, versions) for every name under ``base``: a name is a folder whose leaf children are its versions."""
    if depth > 16:
        return
    keys = s.list(f"{base}/{prefix}" if prefix else f"{base}/")
    leaves = sorted(k for k in keys if not k.endswith("/"))
    if leaves and prefix:
        yield prefix.rstrip("/"), leaves
    for folder in sorted(k for k in keys if k.endswith("/")):
        yield from _walk(s, base, prefix + folder, depth + 1)


def _run(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Abort as exc:
        args[0].out.error(str(exc))
        sys.exit(exc.code)
    except envs.UsageError as exc:
        args[0].out.error(exc.message)
        sys.exit(EXIT_USAGE)
    except envs.ApiError as exc:
        args[0].out.error(str(exc))
        sys.exit(EXIT_FAILED)
    except click.Abort:
        sys.exit(EXIT_USAGE)


def _ctx(env_name: str, config: str | None, addr: str | None, token: str | None, plain: bool) -> Ctx:
    out = Output(plain=plain)
    try:
        all_envs = envs.load(envs.config_path(config))
        env = envs.select(all_envs, env_name, addr, token)
    except envs.UsageError as exc:
        out.error(exc.message)
        sys.exit(EXIT_USAGE)
    return Ctx(out, all_envs, env, addr, token, interactive=sys.stdin.isatty())


def _common(f: Any) -> Any:
    for deco in reversed(
        [
            click.option("-e", "--env", "env_name", default=envs.STAGING, show_default=True, help="Environment."),
            click.option("--config", type=click.Path(dir_okay=False), help="Config file (else $STRONGROOM_CONFIG)."),
            click.option("--addr", help="Server or proxy address (else $STRONGROOM_ADDR, else the environment's)."),
            click.option(
                "--token",
                help="A Strongroom token (else $STRONGROOM_TOKEN, else the environment's login). Prefer the variable: "
                "arguments are visible to other local users.",
            ),
            click.option("--plain", is_flag=True, help="No colour or emoji."),
            click.option("--namespace", "-n", default=None, help="Kubernetes namespace (default: default)."),
        ]
    ):
        f = deco(f)
    return f


def register(cli: click.Group) -> None:
    @cli.group("secret")
    def secret() -> None:
        """Add and inspect services' secrets (secret/k8s/<namespace>/<service-account>/<name>/<version>)."""

    @secret.command("create")
    @click.argument("service")
    @_common
    @click.option("--name", help="Descriptive name, e.g. aws/secret-access-key.")
    @click.option("--version", "version", help="Version identifier (default: today, YYYY-MM-DD).")
    @click.option("--from-file", "from_file", help="Read the value from this file ('-' for stdin).")
    @click.option("--yes", "-y", is_flag=True, help="Answer yes to every confirmation (warnings are still printed).")
    @click.option("--trim-newline/--keep-newline", default=None, help="Trim one trailing newline from the value.")
    def create(service: str, env_name: str, config: str | None, addr: str | None, token: str | None, plain: bool,
               namespace: str | None, name: str | None, version: str | None, from_file: str | None, yes: bool,
               trim_newline: bool | None) -> None:  # fmt: skip
        """Create a new secret version for SERVICE (e.g. service.emoji); never overwrites an existing one."""
        c = _ctx(env_name, config, addr, token, plain)
        _run(_create, c, service, namespace, name, version, from_file, yes, trim_newline)

    @secret.command("list")
    @click.argument("service")
    @_common
    def list_(service: str, env_name: str, config: str | None, addr: str | None, token: str | None, plain: bool,
              namespace: str | None) -> None:  # fmt: skip
        """Names and versions of SERVICE's secrets (never values)."""
        c = _ctx(env_name, config, addr, token, plain)

        def go(c: Ctx) -> None:
            svc = _svc(service, namespace)
            with _session(c, c.env, announce=c.out.fancy) as s:
                rows = [(n, ", ".join(v)) for n, v in _walk(s, _meta_path(svc), "")]
            if not rows:
                c.out.info("🔍", f"No secrets for {service} under {svc.secret_root} in {c.env.name}")
                return
            c.out.table(rows, ("name", "versions"))

        _run(go, c)

    @secret.command("versions")
    @click.argument("service")
    @click.argument("name")
    @_common
    def versions(service: str, name: str, env_name: str, config: str | None, addr: str | None, token: str | None,
                 plain: bool, namespace: str | None) -> None:  # fmt: skip
        """The versions of one secret of SERVICE, with when each was created."""
        c = _ctx(env_name, config, addr, token, plain)

        def go(c: Ctx) -> None:
            svc = _svc(service, namespace)
            checked = _valid_name(name)
            with _session(c, c.env, announce=c.out.fancy) as s:
                rows = []
                for v in _versions(s, svc, checked):
                    meta = (s.call("GET", _meta_path(svc, f"{checked}/{v}")) or {}).get("data") or {}
                    rows.append((v, meta.get("created_time", ""), _creator(meta)))
            if not rows:
                c.out.info("🔍", f"No versions of {checked} in {c.env.name}")
                return
            c.out.table(rows, ("version", "created", "created by"))

        _run(go, c)

    @secret.command("show")
    @click.argument("service")
    @click.argument("name")
    @click.argument("version")
    @_common
    @click.option("--reveal", is_flag=True, help="Print the value (only when policy allows reading it).")
    def show(service: str, name: str, version: str, env_name: str, config: str | None, addr: str | None,
             token: str | None, plain: bool, namespace: str | None, reveal: bool) -> None:  # fmt: skip
        """Metadata of one secret version; the value only with --reveal."""
        c = _ctx(env_name, config, addr, token, plain)

        def go(c: Ctx) -> None:
            svc = _svc(service, namespace)
            n, v = _valid_name(name), _valid_version(version)
            where = f"{svc.secret_root}/{n}/{v}"
            with _session(c, c.env, announce=c.out.fancy) as s:
                try:
                    meta = (s.call("GET", _meta_path(svc, f"{n}/{v}")) or {}).get("data") or {}
                except envs.ApiError as exc:
                    if exc.status == 404:
                        raise Abort(f"{where} does not exist in {c.env.name}", EXIT_FAILED) from None
                    raise
                c.out.info("🔑", f"{where} (key 'data') in {c.env.name}")
                c.out.info("🕒", f"created {meta.get('created_time', '?')}")
                if not reveal:
                    c.out.info("🙈", "value hidden; pass --reveal to print it")
                    return
                try:
                    body = s.call("GET", _data_path(svc, n, v))
                except envs.ApiError as exc:
                    if exc.status == 403:
                        raise Abort(f"your policies do not allow reading the value of {where}", EXIT_FAILED) from None
                    raise
                value = ((body or {}).get("data") or {}).get("data", {}).get("data")
                if value is None:
                    raise Abort(f"{where} has no 'data' key", EXIT_FAILED)
                c.out.result(value if isinstance(value, str) else _json(value))

        _run(go, c)


def _creator(meta: dict[str, Any]) -> str:
    """Who created a version: the server's record of the writer when it keeps one, else custom metadata."""
    current = (meta.get("versions") or {}).get(str(meta.get("current_version"))) or {}
    return str(current.get("created_by") or (meta.get("custom_metadata") or {}).get("created_by") or "")


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
