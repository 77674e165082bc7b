"""sys/metrics: the server's telemetry, as Vault's JSON (go-metrics' in-memory shape) or in Prometheus text format.

Through the pipeline it needs a token with ``read`` on ``sys/metrics`` and is audited like any request. A listener
with ``telemetry { unauthenticated_metrics_access = true }`` serves it before the pipeline instead, as Vault does:
no token, no audit entry, and also while sealed (so a scraper sees ``vault_core_unsealed 0``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.logical import LogicalError, Operation, Request, Response
from strongroom.core.metrics import format_from_headers
from strongroom.framework import FieldData, Path
from strongroom.framework.fields import Field, FieldType

if TYPE_CHECKING:
    from strongroom.core.core import Core


def paths(core: Core) -> list[Path]:
    async def read(req: Request, fd: FieldData) -> Response:
        body, content_type = core.metrics.render(fd.get("format") or format_from_headers(req.headers))
        return Response(raw_body=body, raw_content_type=content_type)

    return [
        Path(
            r"metrics",
            {Operation.READ: read},
            fields={
                "format": Field(
                    FieldType.STRING,
                    'The output format: "" (JSON, the default) or "prometheus". An Accept header of '
                    "application/openmetrics-text also asks for the Prometheus format.",
                    default="",
                )
            },
            summary="Telemetry metrics, as JSON or in Prometheus text format.",
        )
    ]


def serve_unauthenticated(core: Core, method: str, query: dict[str, str], headers: dict[str, str]) -> tuple[
    int, bytes, str
]:
    """``GET sys/metrics`` on a listener that allows it without a token (Vault's handleMetricsUnauthenticated)."""
    if method != "GET":
        raise LogicalError("unsupported operation", status=405)
    body, content_type = core.metrics.render(query.get("format") or format_from_headers(headers))
    return 200, body, content_type
