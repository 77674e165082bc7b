"""The inspection UI's question-answering pages: access explorer, secret history, search and operations.

Each page is fetched with the signed-in person's child token (like the rest of the UI), so it shows only what their
policies allow; the explorer, history and lease pages need ``read``/``update`` on ``sys/internal/access/*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strongroom.ui.html import Markup, esc

if TYPE_CHECKING:
    from strongroom.proxy import asgi
    from strongroom.proxy.app import StaffSession

# navigation entries for these pages; the second element is the access key (Alt+key, or Alt+Shift+key in Firefox)
NAV = (("Who can / what can", "/ui/access", "a"), ("Search", "/ui/search", "s"), ("Operations", "/ui/ops", "o"))


class PageError(Exception):
    def __init__(self, status: int, title: str, body: Markup) -> None:
        self.status, self.title, self.body = status, title, body


def denied(what: str, status: int, detail: str = "") -> PageError:
    if status == 403:
        return PageError(403, "Not allowed", Markup(
            f'<p class="error">Your policies do not allow {esc(what)}.</p>'
            + (f'<p class="muted">{esc(detail)}</p>' if detail else "")))
    if status == 404:
        return PageError(404, "Not found", Markup(f'<p class="error">{esc(detail or what + " does not exist")}.</p>'))
    if status == 400:
        return PageError(400, "Bad request", Markup(f'<p class="error">{esc(detail or "That request is not valid")}'
                                                    "</p>"))
    return PageError(502, "Server error", Markup(f'<p class="error">The server could not answer ({status}).</p>'))


def _errors(body: Any) -> str:
    errs = (body or {}).get("errors") if isinstance(body, dict) else None
    return "; ".join(str(e) for e in errs) if errs else ""


async def fetch(s: StaffSession, method: str, path: str, what: str, json: Any = None, empty_ok: bool = False) -> Any:
    status, body = await s.call(method, path, json)
    if status == 404 and empty_ok:
        return {}
    if status != 200:
        raise denied(what, status, _errors(body))
    return (body or {}).get("data") or {}


async def dispatch(s: StaffSession, req: asgi.Req, head: str, rest: list[str]) -> tuple[str, Markup] | None:
    """The page for ``/ui/<head>/<rest…>``, or None when it is not one of these pages."""
    from strongroom.ui.pages import access, history, ops, search

    if head == "access" and not rest:
        return await access.page(s, req.params())
    if head == "history" and rest:
        return await history.page(s, rest, req)
    if head == "search" and not rest:
        return await search.page(s, req.params())
    if head == "ops":
        return await ops.page(s, rest, req)
    return None
