"""``strongroom config plan | apply | export DIR``: the server's configuration kept as HCL files in a repository.

The work is in :mod:`strongroom.config_as_code`; this module only parses flags and maps outcomes to exit codes
(plan: 0 no changes, 2 changes, 1 error — usable as a CI drift check).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from strongroom.cli.api_client import ApiClient, ApiError, api_client_options
from strongroom.config_as_code import apply as apply_mod
from strongroom.config_as_code import export as export_mod
from strongroom.config_as_code import plan as plan_mod
from strongroom.config_as_code.hcl import ConfigError
from strongroom.config_as_code.kinds import Live


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _guard(fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except (ConfigError, apply_mod.ApplyRefused) as exc:
        _fail(str(exc))
    except ApiError as exc:
        _fail(f"server answered {exc.status}: {exc}" if exc.status else str(exc))
    else:
        sys.exit(code)


def _plan(api: ApiClient, directory: str, resend: tuple[str, ...]) -> tuple[plan_mod.Plan, Live, dict[str, Any]]:
    desired = plan_mod.load_desired(directory)
    live = Live(api)
    current = plan_mod.read_live(live)
    auth_types = {p: str(e.get("type")) for p, e in live.auths.items()}
    auth_types.update({key[0]: str(f.get("type")) for (k, key), f in desired.items() if k == "auth_method"})
    return plan_mod.compute(desired, current, resend), live, auth_types


@click.group("config")
def config_group() -> None:
    """Configuration as code: plan, apply and export the server's configuration as HCL files."""


_RESEND = click.option("--resend-secrets", "resend", multiple=True, metavar="KIND/LABEL[/LABEL]",
                       help="Send the env()/file() values of matching objects again (globs, e.g. "
                            "auth_user/userpass/*): how a password the server never returns is rolled.")


@config_group.command("plan")
@click.argument("directory", type=click.Path(file_okay=False))
@_RESEND
@api_client_options
def plan_cmd(api: ApiClient, directory: str, resend: tuple[str, ...]) -> None:
    """Show what apply would change. Exit 0: no changes; 2: changes; 1: error."""

    def go() -> int:
        plan, _, _ = _plan(api, directory, resend)
        click.echo(plan_mod.render(plan))
        return 2 if plan.changes else 0

    _guard(go)


@config_group.command("apply")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--allow-delete", is_flag=True, help="Delete objects that the files no longer declare.")
@click.option("--allow-destroy", is_flag=True,
              help="Allow disabling audit devices and write-once mounts, and deleting or replacing transit keys.")
@click.option("--require-mpa", "require_mpa", metavar="KIND", default=None,
              help="Run only with a token fetched through the MPA broker for KIND.")
@click.option("--plan-hash", default=None, help="Apply only if the plan still has this hash (the reviewed one).")
@_RESEND
@api_client_options
def apply_cmd(api: ApiClient, directory: str, allow_delete: bool, allow_destroy: bool, require_mpa: str | None,
              plan_hash: str | None, resend: tuple[str, ...]) -> None:
    """Make the server match the files, in dependency order."""

    def go() -> int:
        if require_mpa:
            apply_mod.verify_mpa(require_mpa, api.request("GET", "auth/token/lookup-self").get("data") or {})
        plan, live, auth_types = _plan(api, directory, resend)
        click.echo(plan_mod.render(plan))
        if plan_hash and plan_hash != plan.hash:
            raise apply_mod.ApplyRefused(f"the plan changed since it was reviewed (hash {plan.hash}, expected "
                                         f"{plan_hash}); nothing was changed")
        if not plan.changes:
            return 0
        apply_mod.check_flags(plan, allow_delete, allow_destroy)
        child = apply_mod.apply_token(api, plan.hash)
        try:
            count = apply_mod.run(child, Live(child, live.mounts, live.auths, live.group_names), plan, auth_types,
                                  click.echo)
        finally:
            try:
                child.request("POST", "auth/token/revoke-self")
            except ApiError:
                pass  # it expires on its own within minutes
        click.echo(f"Applied {count} change(s) (plan hash {plan.hash}).")
        return 0

    _guard(go)


@config_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite .hcl files already in DIRECTORY.")
@api_client_options
def export_cmd(api: ApiClient, directory: str, force: bool) -> None:
    """Write the live configuration as files (secrets as env() references, never their values)."""

    def go() -> int:
        current = plan_mod.read_live(Live(api))
        for name in export_mod.write(directory, current, force):
            click.echo(f"wrote {directory.rstrip('/')}/{name}")
        return 0

    _guard(go)


def register(cli: click.Group) -> None:
    cli.add_command(config_group)
