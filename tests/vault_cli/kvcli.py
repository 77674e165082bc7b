"""The HTTP requests the Vault/OpenBao CLI's ``kv`` subcommands send, replayed through httpx.

A faithful port of the request-building logic of openbao ``command/kv_helpers.go`` (``kvPreflightVersionRequest``,
``addPrefixToKVPath``, ``kvReadRequest``) and of ``kv_put.go``, ``kv_get.go``, ``kv_list.go``, ``kv_delete.go``,
``kv_undelete.go``, ``kv_destroy.go``, ``kv_patch.go`` (``-method=patch`` with its 403/405 read-then-write fallback, and
``-method=rw``), ``kv_rollback.go`` and ``kv_metadata_{get,put,delete}.go``: the same methods, paths, query parameters
and JSON bodies, so these tests show what ``vault kv …`` would see. Every request is recorded in ``sent``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

import httpx


class CLIError(Exception):
    """What the CLI would print as an error and exit non-zero for."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def sanitize_path(path: str) -> str:
    path = path.strip()
    path = path.removeprefix("/")
    return path.removesuffix("/")


def go_join(*parts: str) -> str:
    """Go's path.Join: join the non-empty parts with "/" and clean the result."""
    joined = "/".join(p for p in parts if p)
    return posixpath.normpath(joined) if joined else ""


def add_prefix_to_kv_path(path: str, mount_path: str, api_prefix: str, skip_if_exists: bool) -> str:
    if path == mount_path or path == mount_path.rstrip("/"):
        return go_join(mount_path, api_prefix)
    suffix = path.removeprefix(mount_path)
    while suffix == path:
        parts = mount_path.split("/", 1)
        if len(parts) <= 1 or parts[1] == "":
            break
        mount_path = parts[1].rstrip("/")
        suffix = suffix.removeprefix(mount_path)
    if skip_if_exists and (suffix.startswith(api_prefix) or suffix.startswith("/" + api_prefix)):
        return go_join(mount_path, suffix)
    return go_join(mount_path, api_prefix, suffix)


@dataclass
class KV:
    """``vault kv <subcommand>`` against one server with one token."""

    http: httpx.Client
    sent: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    # --- transport (api.Client) -------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> httpx.Response:
        # api.Request.toRetryableHTTP: LIST becomes GET with list=true
        if method == "LIST":
            method, params = "GET", {**(params or {}), "list": "true"}
        self.sent.append((method, path))
        return self.http.request(method, "/v1/" + path, json=body, params=params, headers=headers)

    def _secret(self, resp: httpx.Response) -> dict[str, Any] | None:
        """api.Client.RawRequest + ParseSecret: an error status is an error, an empty body is no secret."""
        if resp.status_code >= 400:
            raise CLIError(f"Code: {resp.status_code}. Errors: {resp.json().get('errors') if resp.content else []}",
                           resp.status_code)
        return resp.json() if resp.content else None

    def read_request(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """kvReadRequest: a 404 with data or warnings is a secret (a deleted version's metadata); otherwise none."""
        resp = self._request("GET", path, params=params)
        if resp.status_code == 404:
            if not resp.content:
                return None
            secret = resp.json()
            if secret.get("warnings") or secret.get("data"):
                return secret
            return None
        return self._secret(resp)

    def write(self, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
        return self._secret(self._request("PUT", path, data))

    # --- kv_helpers.go ----------------------------------------------------------------------------------------------

    def preflight(self, path: str) -> tuple[str, int]:
        resp = self._request("GET", "sys/internal/ui/mounts/" + path)
        if resp.status_code == 404:
            return "", 1  # an old server: the CLI assumes version 1
        secret = self._secret(resp)
        if secret is None:
            raise CLIError("nil response from pre-flight request")
        data = secret["data"]
        options = data.get("options") or {}
        version = options.get("version")
        return data.get("path", ""), 2 if version == "2" else 1

    def _resolve(self, arg: str, mount: str | None) -> tuple[str, str, bool]:
        """(mountPath, partialPath, v2) exactly as each kv command computes them."""
        partial = sanitize_path(arg)
        if mount:
            mount_path, version = self.preflight(sanitize_path(mount))
            if version == 2:
                partial = go_join(mount_path, partial)
        else:
            mount_path, version = self.preflight(partial)
        return mount_path, partial, version == 2

    @staticmethod
    def _v1_path(mount_path: str, partial: str, mount: str | None) -> str:
        return go_join(mount_path, partial) if mount else partial

    # --- commands ---------------------------------------------------------------------------------------------------

    def put(self, arg: str, data: dict[str, Any], *, mount: str | None = None, cas: int = -1) -> dict[str, Any] | None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if v2:
            body: dict[str, Any] = {"data": data, "options": {}}
            if cas > -1:
                body["options"]["cas"] = cas
            return self.write(add_prefix_to_kv_path(partial, mount_path, "data", False), body)
        return self.write(self._v1_path(mount_path, partial, mount), data)

    def get(self, arg: str, *, mount: str | None = None, version: int = 0) -> dict[str, Any] | None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if v2:
            params = {"version": str(version)} if version > 0 else None
            return self.read_request(add_prefix_to_kv_path(partial, mount_path, "data", False), params)
        return self.read_request(self._v1_path(mount_path, partial, mount))

    def list(self, arg: str, *, mount: str | None = None) -> list[str]:
        mount_path, partial, v2 = self._resolve(arg, mount)
        path = add_prefix_to_kv_path(partial, mount_path, "metadata", True) if v2 else (
            self._v1_path(mount_path, partial, mount))
        resp = self._request("LIST", path)
        if resp.status_code == 404:
            return []
        secret = self._secret(resp)
        return list(secret["data"]["keys"]) if secret else []

    def delete(self, arg: str, *, mount: str | None = None, versions: list[str] | None = None) -> None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if v2 and versions:
            self.write(add_prefix_to_kv_path(partial, mount_path, "delete", False), {"versions": versions})
            return
        path = add_prefix_to_kv_path(partial, mount_path, "data", False) if v2 else (
            self._v1_path(mount_path, partial, mount))
        self._secret(self._request("DELETE", path))

    def _versions_only(self, command: str, arg: str, versions: list[str], mount: str | None) -> None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if not v2:
            raise CLIError(f"{command} is not supported against KV version 1")
        self.write(add_prefix_to_kv_path(partial, mount_path, command, False), {"versions": versions})

    def undelete(self, arg: str, versions: list[str], *, mount: str | None = None) -> None:
        self._versions_only("undelete", arg, versions, mount)

    def destroy(self, arg: str, versions: list[str], *, mount: str | None = None) -> None:
        self._versions_only("destroy", arg, versions, mount)

    def patch(self, arg: str, data: dict[str, Any], *, mount: str | None = None, method: str = "",
              cas: int = 0) -> dict[str, Any] | None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if not v2:
            raise CLIError("K/V engine mount must be version 2 for patch support")
        path = add_prefix_to_kv_path(partial, mount_path, "data", False)
        if method == "rw":
            return self._read_then_write(path, data)
        body: dict[str, Any] = {"data": data, "options": {}}
        if cas > 0:
            body["options"]["cas"] = cas
        resp = self._request("PATCH", path, body, headers={"Content-Type": "application/merge-patch+json"})
        if resp.status_code in (403, 405) and method == "":
            if resp.status_code == 403:
                self.warnings.append(f"add the \"patch\" capability for {path}")
            return self._read_then_write(path, data)
        return self._secret(resp)

    def _read_then_write(self, path: str, new_data: dict[str, Any]) -> dict[str, Any] | None:
        secret = self.read_request(path)
        if secret is None or not secret.get("data"):
            raise CLIError(f"No value found at {path}")
        meta, data = secret["data"].get("metadata"), secret["data"].get("data")
        if not meta:
            raise CLIError(f"No metadata found at {path}; patch only works on existing data")
        if data is None:
            raise CLIError(f"No data found at {path}; patch only works on existing data")
        data.update(new_data)
        return self.write(path, {"data": data, "options": {"cas": meta["version"]}})

    def rollback(self, arg: str, version: int, *, mount: str | None = None) -> dict[str, Any] | None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if not v2:
            raise CLIError("K/V engine mount must be version 2 for rollback support")
        path = add_prefix_to_kv_path(partial, mount_path, "data", False)
        current = self.read_request(path)
        if current is None or not current.get("data") or not current["data"].get("metadata"):
            raise CLIError(f"No value found at {path}")
        cas = current["data"]["metadata"]["version"]
        target = self.read_request(path, {"version": str(version)})
        if target is None or not target.get("data") or not target["data"].get("metadata"):
            raise CLIError(f"No value found at {path}")
        meta = target["data"]["metadata"]
        if meta.get("deletion_time"):
            raise CLIError("Cannot roll back to a version that has been deleted")
        if meta.get("destroyed"):
            raise CLIError("Cannot roll back to a version that has been destroyed")
        if target["data"].get("data") is None:
            raise CLIError(f"No data found at {path}; rollback only works on existing data")
        return self.write(path, {"data": target["data"]["data"], "options": {"cas": cas}})

    def metadata_get(self, arg: str, *, mount: str | None = None) -> dict[str, Any] | None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if not v2:
            raise CLIError("Metadata not supported on KV Version 1")
        return self.read_request(add_prefix_to_kv_path(partial, mount_path, "metadata", False))

    def metadata_put(self, arg: str, *, mount: str | None = None, max_versions: int = -1,
                     cas_required: bool | None = None, delete_version_after: str | None = None,
                     custom_metadata: dict[str, str] | None = None) -> dict[str, Any] | None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if not v2:
            raise CLIError("Metadata not supported on KV Version 1")
        data: dict[str, Any] = {}
        if max_versions >= 0:
            data["max_versions"] = max_versions
        if cas_required is not None:
            data["cas_required"] = cas_required
        if delete_version_after is not None:
            data["delete_version_after"] = delete_version_after  # Go's Duration.String(), e.g. "1h0m0s"
        if custom_metadata:
            data["custom_metadata"] = custom_metadata
        return self.write(add_prefix_to_kv_path(partial, mount_path, "metadata", False), data)

    def metadata_delete(self, arg: str, *, mount: str | None = None) -> None:
        mount_path, partial, v2 = self._resolve(arg, mount)
        if not v2:
            raise CLIError("Metadata not supported on KV Version 1")
        self._secret(self._request("DELETE", add_prefix_to_kv_path(partial, mount_path, "metadata", False)))
