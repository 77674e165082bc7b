"""The access explorer: who can do what on a path, and what an identity can do, from the pipeline's own ACL code.

Every answer is computed by compiling the principal's policies with :func:`strongroom.core.acl.compile_acl` and asking
the compiled ACL, exactly as the pipeline does for a request; nothing here re-implements matching. What this module
adds is *enumeration*: the principals that can hold policies (token roles, auth roles and users, identity groups,
entities with policies of their own) and, for templated policies, the identities a template binds on a given path.

A templated stanza (``secret/data/k8s/{{…service_account_namespace}}/{{…service_account_name}}/*``) is inverted against
the asked path: the values its directives must take for the stanza to cover the path are read off the path, a
hypothetical identity with exactly those values is built, and the real compiler renders and evaluates the policies for
it. So ``kubernetes-reader`` on ``secret/data/k8s/default/s-emoji/x`` answers "ServiceAccount s-emoji in namespace
default", never "everyone".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom.auth.token_fields import TokenParams
from strongroom.core.acl import ACL, AliasInfo, GroupInfo, IdentityContext, Permissions, compile_acl, glob_match
from strongroom.core.policy import Policy, template_directives

if TYPE_CHECKING:
    from strongroom.core.core import Core

# how many records of one kind are looked at per question: enough for a large estate, bounded for one request
MAX_SCAN = 20000
_DIRECTIVE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_HYPOTHETICAL = "<entity-id>"  # an entity that would exist after login; shown as is in rendered paths


@dataclass(slots=True)
class Principal:
    """Something that can hold policies: a token role, an auth role or user, an identity group or entity."""

    kind: str  # token_role | auth_role | auth_user | group | entity
    name: str
    mount: str = ""  # auth mount path ("kubernetes/") for auth roles and users
    mount_type: str = ""
    accessor: str = ""
    policies: tuple[str, ...] = ()
    bounds: dict[str, list[str]] = field(default_factory=dict)  # e.g. bound_service_account_names
    ident: IdentityContext | None = None

    def label(self) -> str:
        if self.kind == "token_role":
            return f"token role {self.name}"
        if self.kind in ("auth_role", "auth_user"):
            what = "user" if self.kind == "auth_user" else "role"
            return f"{self.mount_type} {what} {self.name} (auth/{self.mount})"
        return f"identity {self.kind} {self.name}"


@dataclass(slots=True)
class Grant:
    principal: Principal
    capabilities: list[str]
    identity: str = ""  # who, when a template decided it ("ServiceAccount s-emoji in namespace default")
    bindings: dict[str, str] = field(default_factory=dict)
    rule: dict[str, Any] | None = None  # the one rule that decides the path (pattern, constraints)

    def to_api(self) -> dict[str, Any]:
        p = self.principal
        out: dict[str, Any] = {"kind": p.kind, "name": p.name, "label": p.label(), "policies": list(p.policies),
                               "capabilities": self.capabilities}
        if p.mount:
            out["mount"] = f"auth/{p.mount}"
            out["mount_type"] = p.mount_type
        if p.bounds:
            out["bounds"] = p.bounds
        if self.identity:
            out["identity"] = self.identity
            out["bindings"] = self.bindings
        if self.rule:
            out["rule"] = self.rule
        return out


# --- policies -------------------------------------------------------------------------------------------------------


async def load_policies(core: Core, names: Iterable[str] | None = None) -> dict[str, Policy]:
    wanted = list(names) if names is not None else await core.policies.list_names()
    out: dict[str, Policy] = {}
    for name in wanted:
        policy = await core.policies.get(name)
        if policy is not None:
            out[policy.name] = policy
    return out


def capabilities(policies: Iterable[Policy], path: str, ident: IdentityContext | None = None) -> list[str]:
    """What ``sys/capabilities`` would answer for a token holding ``policies`` (and, if given, that identity)."""
    return compile_acl(list(policies), ident).capabilities(path.lstrip("/"))


def decide(policies: Iterable[Policy], path: str, ident: IdentityContext | None = None,
           ) -> tuple[list[str], dict[str, Any] | None]:  # fmt: skip
    """Capabilities as ``sys/capabilities`` reports them, and the rule that decided them (with its parameter
    constraints, which ``sys/capabilities`` does not show but every request is held to)."""
    acl = compile_acl(list(policies), ident)
    path = path.lstrip("/")
    hit = None if acl.root else acl.match(path, is_list=True)
    return acl.capabilities(path), (_rule_api(*hit) if hit is not None else None)


def _policies_of(names: Iterable[str], known: Mapping[str, Policy]) -> list[Policy]:
    return [known[n] for n in sorted({n.strip().lower() for n in names}) if n in known]


def _granted(caps: list[str]) -> bool:
    return caps != ["deny"]


# --- principals -----------------------------------------------------------------------------------------------------


def _with_default(params: TokenParams) -> tuple[str, ...]:
    names = [p.lower() for p in params.token_policies]
    if not params.token_no_default_policy and "default" not in names and "root" not in names:
        names.append("default")
    return tuple(names)


async def principals(core: Core) -> list[Principal]:
    """Every token role, auth role and user, identity group, and entity with policies of its own."""
    out: list[Principal] = []
    for entry in core.router.entries(is_auth=True):
        route = core.router.get(entry.route_path)
        if route is None:
            continue
        storage = route.backend.ctx.storage
        mount = entry.path
        if entry.type == "token":
            for name in (await storage.list_all("roles/"))[:MAX_SCAN]:
                role = await storage.get_json(f"roles/{name}") or {}
                names = [p.lower() for p in role.get("allowed_policies") or []]
                if not role.get("token_no_default_policy") and "default" not in names:
                    names.append("default")
                out.append(Principal("token_role", name, policies=tuple(names)))
            continue
        prefix = "user/" if entry.type == "userpass" else "role/"
        if entry.type not in ("kubernetes", "jwt", "oidc", "approle", "userpass"):
            continue
        for name in (await storage.list_all(prefix))[:MAX_SCAN]:
            if name.endswith("/"):
                continue
            rec = await storage.get_json(f"{prefix}{name}") or {}
            bounds = {k: list(v) for k, v in rec.items()
                      if k.startswith("bound_") and isinstance(v, list) and v}  # fmt: skip
            out.append(Principal("auth_user" if entry.type == "userpass" else "auth_role", name, mount, entry.type,
                                 entry.accessor, _with_default(TokenParams.from_dict(rec.get("token"))), bounds))
    for gid in (await core.identity.list_ids("group"))[:MAX_SCAN]:
        group = await core.identity.group(gid.rstrip("/"))
        if group is not None and group.get("policies"):
            policies = await _group_policies(core, group)
            out.append(Principal("group", group["name"], policies=tuple(policies),
                                 ident=IdentityContext(entity_id=_HYPOTHETICAL, groups=[_group_info(group)])))
    for eid in (await core.identity.list_ids("entity"))[:MAX_SCAN]:
        entity = await core.identity.entity(eid.rstrip("/"))
        if entity is not None and entity.get("policies") and not entity.get("disabled"):
            out.append(await _entity_principal(core, entity))
    return out


def _group_info(group: Mapping[str, Any]) -> GroupInfo:
    return GroupInfo(id=group["id"], name=group["name"], metadata=dict(group.get("metadata") or {}))


async def _group_policies(core: Core, group: Mapping[str, Any]) -> list[str]:
    # a member of a group is a member of its parents too, and gets their policies (as identity_policies does)
    seen: dict[str, Mapping[str, Any]] = {}
    queue = [group]
    while queue:
        g = queue.pop()
        if g["id"] in seen:
            continue
        seen[g["id"]] = g
        for parent in g.get("parent_group_ids") or []:
            rec = await core.identity.group(parent)
            if rec is not None:
                queue.append(rec)
    return sorted({p.lower() for g in seen.values() for p in g.get("policies") or []} - {"root", ""})


async def _entity_principal(core: Core, entity: Mapping[str, Any]) -> Principal:
    policies = await core.identity.identity_policies(entity["id"])
    ident = await core.identity.template_context(entity["id"])
    return Principal("entity", entity["name"], policies=tuple(policies), ident=ident)


# --- template inversion ---------------------------------------------------------------------------------------------


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A regex over request paths for a (possibly templated) policy pattern; each directive is a named group."""
    out: list[str] = []
    pos = 0
    index = 0
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    for m in _DIRECTIVE.finditer(body):
        out.append(_literal(body[pos : m.start()], body, pos))
        out.append(f"(?P<d{index}>[^/*+]+)")
        index += 1
        pos = m.end()
    out.append(_literal(body[pos:], body, pos))
    return re.compile("".join(out) + (".*" if glob else ""), re.DOTALL)


def _literal(text: str, whole: str, offset: int) -> str:
    out = []
    for i, ch in enumerate(text):
        at = offset + i
        if ch == "+" and (at == 0 or whole[at - 1] == "/") and (at + 1 == len(whole) or whole[at + 1] == "/"):
            out.append("[^/]+")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def invert(pattern: str, path: str) -> dict[str, str] | None:
    """The directive values under which ``pattern`` covers ``path`` (directive -> value), or None if it cannot."""
    directives = template_directives(pattern)
    if not directives:
        return None
    rx = pattern_regex(pattern)
    for candidate in (path, path.rstrip("/")):
        m = rx.fullmatch(candidate)
        if m is not None:
            return {d: m.group(f"d{i}") for i, d in enumerate(_ordered_directives(pattern))}
    return None


def _ordered_directives(pattern: str) -> list[str]:
    body = pattern[:-1] if pattern.endswith("*") else pattern
    return [m.group(1).strip() for m in _DIRECTIVE.finditer(body)]


def identity_from_bindings(bindings: Mapping[str, str], accessor: str) -> IdentityContext | None:
    """A hypothetical identity carrying exactly these template values, or None when they contradict each other or
    refer to another mount than ``accessor`` (a role on one mount cannot produce another mount's alias)."""
    entity: dict[str, str] = {}
    alias: dict[str, str] = {}
    meta: dict[str, str] = {}
    ent_meta: dict[str, str] = {}
    groups: list[GroupInfo] = []

    def put(d: dict[str, str], key: str, value: str) -> bool:
        if d.get(key, value) != value:
            return False
        d[key] = value
        return True

    for directive, value in bindings.items():
        ok = True
        if directive in ("identity.entity.id", "identity.entity.name"):
            ok = put(entity, directive.rsplit(".", 1)[1], value)
        elif directive.startswith("identity.entity.metadata."):
            ok = put(ent_meta, directive[len("identity.entity.metadata."):], value)
        elif directive.startswith("identity.entity.aliases."):
            acc, _, rest = directive[len("identity.entity.aliases."):].partition(".")
            if acc != accessor:
                return None
            if rest in ("name", "id"):
                ok = put(alias, rest, value)
            elif rest.startswith("metadata."):
                ok = put(meta, rest[len("metadata."):], value)
            else:
                return None
        elif directive.startswith("identity.groups.names.") and directive.endswith(".name"):
            groups.append(GroupInfo(id=value, name=directive[len("identity.groups.names."):-len(".name")]))
        else:
            return None  # time templates and group ids/metadata are not bound by a path alone
        if not ok:
            return None
    aliases = {accessor: AliasInfo(id=alias.get("id", _HYPOTHETICAL), name=alias.get("name", ""), metadata=meta)}
    return IdentityContext(entity_id=entity.get("id", _HYPOTHETICAL), entity_name=entity.get("name", ""),
                           entity_metadata=ent_meta, aliases=aliases if accessor else {}, groups=groups)


def describe(p: Principal, ident: IdentityContext) -> str:
    alias = ident.aliases.get(p.accessor) if p.accessor else None
    meta = dict(alias.metadata) if alias else {}
    if p.mount_type == "kubernetes" and "service_account_name" in meta and "service_account_namespace" in meta:
        return f"ServiceAccount {meta['service_account_name']} in namespace {meta['service_account_namespace']}"
    parts = []
    if alias and alias.name:
        parts.append(f"alias name {alias.name}")
    parts += [f"{k}={v}" for k, v in sorted(meta.items())]
    if ident.entity_name:
        parts.append(f"entity name {ident.entity_name}")
    if ident.entity_id != _HYPOTHETICAL:
        parts.append(f"entity id {ident.entity_id}")
    parts += [f"{k}={v}" for k, v in sorted(ident.entity_metadata.items())]
    parts += [f"group {g.name}" for g in ident.groups]
    return ", ".join(parts) or "any identity"


def _bounds_admit(p: Principal, ident: IdentityContext) -> bool:
    """Whether the role's bound ServiceAccount names and namespaces admit the hypothetical identity."""
    if p.mount_type != "kubernetes":
        return True
    alias = ident.aliases.get(p.accessor)
    meta = alias.metadata if alias else {}
    for key, bound in (("service_account_name", "bound_service_account_names"),
                       ("service_account_namespace", "bound_service_account_namespaces")):  # fmt: skip
        value = meta.get(key)
        allowed = p.bounds.get(bound) or []
        if value is not None and allowed and not any(a == "*" or glob_match(a, value) for a in allowed):
            return False
    return True


# --- who can --------------------------------------------------------------------------------------------------------


async def who_can(core: Core, path: str) -> dict[str, Any]:
    """Every policy granting something on ``path`` by itself, and every principal with its exact capabilities."""
    path = path.lstrip("/")
    known = await load_policies(core)
    by_policy = []
    for name, policy in sorted(known.items()):
        caps = capabilities([policy], path)
        templated = [r.pattern for r in policy.paths if r.templated and invert(r.pattern, path) is not None]
        if _granted(caps) or templated:
            entry: dict[str, Any] = {"policy": name, "capabilities": caps}
            if templated:
                entry["templated_patterns"] = templated
            by_policy.append(entry)
    grants: list[Grant] = []
    for p in await principals(core):
        grants.extend(_grants_for(p, path, known))
    return {"path": path, "policies": by_policy, "principals": [g.to_api() for g in grants],
            "scan_limit": MAX_SCAN}


def _grants_for(p: Principal, path: str, known: Mapping[str, Policy]) -> list[Grant]:
    policies = _policies_of(p.policies, known)
    if not policies:
        return []
    out: list[Grant] = []
    caps, rule = decide(policies, path, p.ident)
    if _granted(caps):
        out.append(Grant(p, caps, rule=rule))
    if p.kind not in ("auth_role", "auth_user"):
        return out
    # a templated stanza of these policies may cover the path for some identities that log in through this role
    seen: set[tuple[tuple[str, str], ...]] = set()
    for policy in policies:
        for stanza in policy.paths:
            if not stanza.templated:
                continue
            bindings = invert(stanza.pattern, path)
            if bindings is None:
                continue
            key = tuple(sorted(bindings.items()))
            if key in seen:
                continue
            seen.add(key)
            ident = identity_from_bindings(bindings, p.accessor)
            if ident is None or not _bounds_admit(p, ident):
                continue
            templ_caps, templ_rule = decide(policies, path, ident)
            if _granted(templ_caps) and templ_caps != caps:
                out.append(Grant(p, templ_caps, describe(p, ident), dict(bindings), templ_rule))
    return out


# --- what can -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Subject:
    """An identity asked about, with the policies it holds along each way it gets a token."""

    kind: str
    name: str
    routes: list[tuple[str, tuple[str, ...], IdentityContext | None]]  # (how, policies, identity)


async def subject(core: Core, kind: str, name: str) -> Subject | None:
    """Resolve ``kind`` (entity, group, service_account ``ns/name``, user, token_role, auth_role ``mount/role``)."""
    if kind == "entity":
        rec = await core.identity.entity_by_name(name) or await core.identity.entity(name)
        if rec is None:
            return None
        p = await _entity_principal(core, rec)
        return Subject(kind, rec["name"], [(f"entity {rec['name']}", p.policies, p.ident)])
    if kind == "group":
        rec = await core.identity.group_by_name(name) or await core.identity.group(name)
        if rec is None:
            return None
        ident = IdentityContext(entity_id=_HYPOTHETICAL, groups=[_group_info(rec)])
        return Subject(kind, rec["name"], [(f"member of group {rec['name']}", tuple(await _group_policies(core, rec)),
                                            ident)])
    if kind == "service_account":
        return await _service_account(core, name)
    if kind == "user":
        return await _user(core, name)
    if kind == "policies":
        # a token holding exactly these policies (the staff proxy's child tokens, a hand-made token)
        names = tuple(sorted({n.strip().lower() for n in name.split(",") if n.strip()}))
        return Subject(kind, ",".join(names), [(f"a token with policies {', '.join(names)}", names, None)]) \
            if names else None
    if kind in ("token_role", "auth_role"):
        for p in await principals(core):
            label = p.name if kind == "token_role" else f"{p.mount.rstrip('/')}/{p.name}"
            if p.kind in (kind, "auth_user" if kind == "auth_role" else kind) and label == name.strip("/"):
                return Subject(kind, name, [(p.label(), p.policies, p.ident)])
        return None
    return None


async def _service_account(core: Core, name: str) -> Subject | None:
    ns, _, sa = name.partition("/")
    if not ns or not sa or "/" in sa:
        return None
    routes: list[tuple[str, tuple[str, ...], IdentityContext | None]] = []
    for p in await principals(core):
        if p.kind != "auth_role" or p.mount_type != "kubernetes":
            continue
        meta = {"service_account_name": sa, "service_account_namespace": ns}
        ident = IdentityContext(entity_id=_HYPOTHETICAL, entity_name="",
                                aliases={p.accessor: AliasInfo(id=_HYPOTHETICAL, name=f"{ns}/{sa}", metadata=meta)})
        if not _bounds_admit(p, ident):
            continue
        extra: tuple[str, ...] = ()
        # a ServiceAccount that already logged in has an entity, which may carry policies and groups of its own
        for alias_name in (f"{ns}/{sa}",):
            rec = await core.identity.entity_by_alias(p.accessor, alias_name)
            if rec is not None:
                extra = tuple(await core.identity.identity_policies(rec["id"]))
                real = await core.identity.template_context(rec["id"])
                if real is not None:
                    ident = real
        held = tuple(sorted(set(p.policies) | set(extra)))
        routes.append((f"{describe(p, ident)}, logging in with {p.label()}", held, ident))
    return Subject("service_account", f"{ns}/{sa}", routes) if routes else None


async def _user(core: Core, name: str) -> Subject | None:
    routes: list[tuple[str, tuple[str, ...], IdentityContext | None]] = []
    for entry in core.router.entries(is_auth=True):
        if entry.type not in ("jwt", "oidc", "userpass"):
            continue
        rec = await core.identity.entity_by_alias(entry.accessor, name)
        identity_policies: tuple[str, ...] = ()
        ident: IdentityContext | None = None
        if rec is not None:
            identity_policies = tuple(await core.identity.identity_policies(rec["id"]))
            ident = await core.identity.template_context(rec["id"])
        route = core.router.get(entry.route_path)
        if entry.type == "userpass" and route is not None:
            user = await route.backend.ctx.storage.get_json(f"user/{name.lower()}")
            if user is not None:
                if ident is None:
                    ident = IdentityContext(entity_id=_HYPOTHETICAL, aliases={
                        entry.accessor: AliasInfo(id=_HYPOTHETICAL, name=name)})
                policies = _with_default(TokenParams.from_dict(user.get("token")))
                routes.append((f"userpass user {name} (auth/{entry.path})",
                               tuple(sorted(set(policies) | set(identity_policies))), ident))
                continue
        if rec is not None:
            routes.append((f"entity {rec['name']} (alias {name} on auth/{entry.path})", identity_policies, ident))
    return Subject("user", name, routes) if routes else None


def rules_of(acl: ACL) -> list[tuple[str, Permissions]]:
    """Every rule of a compiled ACL as (pattern, permissions); an overlay's rule shadows the base's same pattern."""
    seen: dict[str, Permissions] = {}
    for layer in acl.layers:
        for table, suffix in ((layer.exact, ""), (layer.prefix, "*"), (layer.segment, "")):
            for key, perms in table.items():
                seen.setdefault(key + suffix, perms)
    return sorted(seen.items())


def _rule_api(pattern: str, perms: Permissions) -> dict[str, Any]:
    out: dict[str, Any] = {"path": pattern, "capabilities": sorted(perms.caps),
                           "policies": sorted({p for ps in perms.granting.values() for p in ps})}
    if perms.allowed is not None:
        out["allowed_parameters"] = perms.allowed
    if perms.denied is not None:
        out["denied_parameters"] = perms.denied
    if perms.required:
        out["required_parameters"] = list(perms.required)
    return out


async def what_can(core: Core, kind: str, name: str, paths: Iterable[str] = ()) -> dict[str, Any] | None:
    """For each way ``name`` gets a token: its policies, every rule they give it (the tree) and, for ``paths``,
    the exact capabilities the pipeline would grant."""
    subj = await subject(core, kind, name)
    if subj is None:
        return None
    wanted = [p.lstrip("/") for p in paths]
    routes = []
    for how, names, ident in subj.routes:
        known = await load_policies(core, names)
        acl = compile_acl(_policies_of(names, known), ident)
        route: dict[str, Any] = {"via": how, "policies": sorted(names)}
        if acl.root:
            route["root"] = True
        route["rules"] = [_rule_api(pattern, perms) for pattern, perms in rules_of(acl)]
        if wanted:
            route["capabilities"] = {p: acl.capabilities(p) for p in wanted}
        routes.append(route)
    return {"kind": subj.kind, "name": subj.name, "routes": routes}


def tree(rules: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rules nested by path segment: ``{"secret": {"data": {"*": {"_rule": {...}}}}}``."""
    root: dict[str, Any] = {}
    for rule in rules:
        node = root
        for seg in str(rule["path"]).split("/"):
            node = node.setdefault(seg, {})
        node["_rule"] = dict(rule)
    return root
