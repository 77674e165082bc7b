"""The Kubernetes manifests in ``deploy/kubernetes``: every object validates against Kubernetes' own schemas, and the
configuration files they carry are accepted by the programs that read them.

The validator is ``kubeconform`` (built here from the Go module proxy with ``go install``; ``scripts/install`` warms
the module cache). Its default schema source is GitHub, which these machines cannot reach, so the schemas come from
the ``kubernetes-validate`` PyPI package (JSON schemas generated from Kubernetes' OpenAPI documents, one folder per
Kubernetes release). Those files point at their shared definitions with an absolute ``/api/_definitions.json``
reference; the only change made here is to spell that reference as the file's real location.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import STRONGROOM

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KUBECONFORM = "github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0"
# the oldest and the newest Kubernetes release the manifests are checked against
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")


def _documents() -> Iterator[tuple[Path, dict]]:
    for f in sorted(MANIFESTS.rglob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                yield f, doc


def _object(kind: str, name: str) -> dict:
    for _, doc in _documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in {MANIFESTS}")


@pytest.fixture(scope="module")
def kubeconform(tmp_path_factory: pytest.TempPathFactory) -> str:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert os.path.exists(go), "Go must be installed to build kubeconform"
    gobin = tmp_path_factory.mktemp("gobin")
    env = {**os.environ, "GOBIN": str(gobin), "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
    r = subprocess.run([go, "install", KUBECONFORM], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"go install {KUBECONFORM} failed:\n{r.stderr[-4000:]}"
    return str(gobin / "kubeconform")


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import kubernetes_validate

    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    out = tmp_path_factory.mktemp("schemas")
    for version in KUBERNETES_VERSIONS:
        folder = f"v{version}-local-strict"
        assert (source / folder).is_dir(), f"kubernetes-validate has no schemas for Kubernetes {version}"
        (out / folder).mkdir()
        for f in (source / folder).glob("*.json"):
            definitions = (out / folder / "_definitions.json").as_uri()
            text = f.read_text().replace('"/api/_definitions.json#', f'"{definitions}#')
            (out / folder / f.name).write_text(text)
    return out


def _validate(kubeconform: str, schemas: Path, version: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    template = "{{ .NormalizedKubernetesVersion }}-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json"
    location = str(schemas / template)
    argv = [kubeconform, "-strict", "-summary", "-kubernetes-version", version, "-schema-location", location]
    return subprocess.run([*argv, *map(str, paths)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schemas(kubeconform: str, schemas: Path, version: str) -> None:
    objects = list(_documents())
    r = _validate(kubeconform, schemas, version, MANIFESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    # nothing skipped or missing: every object was checked against a schema
    assert f"{len(objects)} resources found" in r.stdout and f"Valid: {len(objects)}," in r.stdout, r.stdout
    kinds = {doc["kind"] for _, doc in objects}
    assert {"StatefulSet", "PodDisruptionBudget", "DaemonSet", "ServiceAccount", "ConfigMap", "Service"} <= kinds


def test_the_validator_rejects_what_kubernetes_would(kubeconform: str, schemas: Path, tmp_path: Path) -> None:
    server = (MANIFESTS / "server.yaml").read_text()
    broken = {
        "typo.yaml": server.replace("readinessProbe:", "readinesProbe:"),
        "type.yaml": server.replace("replicas: 2", 'replicas: "two"'),
        "pdb.yaml": server.replace("maxUnavailable: 1", "maxUnavailable: 1\n  maxUnavailble: 2"),
    }
    for name, text in broken.items():
        assert text != server, name
        (tmp_path / name).write_text(text)
        r = _validate(kubeconform, schemas, KUBERNETES_VERSIONS[-1], tmp_path / name)
        assert r.returncode == 1 and "Invalid: 1" in r.stdout, (name, r.stdout)


def test_ha_pair_with_standby_aware_readiness_and_a_disruption_budget() -> None:
    sts = _object("StatefulSet", "strongroom")
    assert sts["spec"]["replicas"] == 2
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/sys/health?standbyok=true"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert "sealedcode=204" in container["livenessProbe"]["httpGet"]["path"]
    pdb = _object("PodDisruptionBudget", "strongroom")
    assert pdb["spec"]["selector"] == sts["spec"]["selector"] and pdb["spec"]["maxUnavailable"] == 1
    hcl = _object("ConfigMap", "strongroom-config")["data"]["server.hcl"]
    assert 'storage "postgresql"' in hcl and 'ha_enabled     = "true"' in hcl and "password" not in hcl.lower()
    # every file the configuration names is on a volume the pod mounts
    mounts = tuple(f"{m['mountPath']}/" for m in container["volumeMounts"])
    for path in re.findall(r"(/etc/[\w./-]+)", hcl):
        assert path.startswith(mounts), path


def _tls_pair(directory: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strongroom.strongroom.svc")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / "tls.key").write_bytes(pem)


def _run_container_command(tmp_path: Path, config_text: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The server container's own command line, with the pod's mount points moved under ``tmp_path``."""
    sts = _object("StatefulSet", "strongroom")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-ec")
    root = tmp_path / "pod"
    (root / "etc/strongroom/config").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    moved = config_text.replace('"/etc/strongroom/', f'"{root}/etc/strongroom/')
    (root / "etc/strongroom/config/server.hcl").write_text(moved)
    script = script.replace(" /tmp/", f" {root}/tmp/").replace(" /etc/strongroom/", f" {root}/etc/strongroom/")
    script = script.replace("exec strongroom ", f"exec {STRONGROOM} ") + " " + " ".join(extra)
    env = {**os.environ, "POD_NAME": "strongroom-1"}
    return subprocess.run(["/bin/sh", "-ec", script], env=env, capture_output=True, text=True, timeout=60)


def test_the_server_configuration_passes_check(tmp_path: Path) -> None:
    hcl = _object("ConfigMap", "strongroom-config")["data"]["server.hcl"]
    _tls_pair(tmp_path / "pod/etc/strongroom/tls")
    r = _run_container_command(tmp_path, hcl, "--check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "Configuration OK: storage postgresql, listener 0.0.0.0:8200 (TLS)"
    # each pod advertises its own name for standby forwarding
    rendered = (tmp_path / "pod/tmp/server.hcl").read_text()
    assert 'api_addr  = "https://strongroom-1.strongroom-internal.strongroom.svc:8200"' in rendered


def test_check_refuses_a_broken_configuration(tmp_path: Path) -> None:
    hcl = _object("ConfigMap", "strongroom-config")["data"]["server.hcl"]
    # no certificate where the listener expects it: refused before anything starts
    r = _run_container_command(tmp_path, hcl, "--check")
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "TLS file not found" in r.stderr, r.stderr
    # a key that is not the certificate's
    _tls_pair(tmp_path / "pod/etc/strongroom/tls")
    other = tmp_path / "other"
    _tls_pair(other)
    (tmp_path / "pod/etc/strongroom/tls/tls.key").write_bytes((other / "tls.key").read_bytes())
    r = _run_container_command(tmp_path, hcl, "--check")
    assert r.returncode == 1 and "are not a certificate and its private key" in r.stderr, r.stderr
    _tls_pair(tmp_path / "pod/etc/strongroom/tls")
    r = _run_container_command(tmp_path, hcl.replace("log_level", "log_levle"), "--check")
    assert r.returncode == 1 and "unknown stanza(s): log_levle" in r.stderr, r.stderr
    # a misspelt libpq parameter; the message never repeats the URL, which may hold a password
    secret_url = hcl.replace("strongroom@postgres", "strongroom:s3cr3t-pw@postgres").replace("passfile", "passfle")
    r = _run_container_command(tmp_path, secret_url, "--check")
    assert r.returncode == 1 and "not a valid PostgreSQL URL" in r.stderr and "s3cr3t-pw" not in r.stderr, r.stderr
    r = subprocess.run([STRONGROOM, "server", "--dev", "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--check validates a --config FILE" in r.stderr


def test_the_broker_configuration_loads(tmp_path: Path) -> None:
    from strongroom.broker.config import load_config

    sts = _object("StatefulSet", "strongroom-mpa")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["strongroom", "broker", "--config"]
    config = tmp_path / "broker.toml"
    config.write_text(_object("ConfigMap", "strongroom-mpa-config")["data"]["broker.toml"])
    cfg = load_config(config)
    assert cfg.production and cfg.idp.person_claim == "employee_id" and cfg.storage.startswith("postgresql://")
    # every file the configuration names is on a volume the pod mounts
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    assert container["command"][3].startswith(tuple(mounts))
    for path in (cfg.seed.file, cfg.seed.token_file, cfg.audit_log):
        assert path.startswith(tuple(f"{m}/" for m in mounts)), path
    assert "passfile=/etc/strongroom-mpa/postgres/pgpass" in cfg.storage and "/etc/strongroom-mpa/postgres" in mounts


def test_the_kms_plugin_command_line_is_accepted() -> None:
    ds = _object("DaemonSet", "strongroom-kms-plugin")
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["strongroom", "kms-plugin"]
    socket = command[command.index("--listen") + 1]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kms-socket")
    assert socket == f"unix://{mount['mountPath']}/strongroom.sock"
    host = next(v for v in ds["spec"]["template"]["spec"]["volumes"] if v["name"] == "kms-socket")
    assert host["hostPath"]["path"] == mount["mountPath"]
    # the same arguments, asking only for the policy they need: the command line parses and names the bootstrap key
    r = subprocess.run([STRONGROOM, *command[1:], "--print-policy"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert 'path "transit/encrypt/kubernetes-kms"' in r.stdout


def test_the_example_service_account_passes_the_annotation_lint() -> None:
    r = subprocess.run([STRONGROOM, "lint", "manifests", str(MANIFESTS / "examples")], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    sa = _object("ServiceAccount", "s-emoji")
    assert sa["metadata"]["annotations"]["strongroom.io/keyspace"] == "emoji"
    assert re.fullmatch(r"[a-z0-9-]+", sa["metadata"]["annotations"]["strongroom.io/cluster"])
    assert sys.executable  # the lint ran with this interpreter's strongroom
