"""The pki secrets engine over HTTP: hvac's ``secrets.pki`` calls, chains checked by Debian's ``openssl verify``,
revocation seen by ``openssl crl`` and ``openssl ocsp`` against Strongroom's responder, roles' name rules."""

from __future__ import annotations

import base64
from pathlib import Path

import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import StrongroomServer

from .conftest import openssl, write


def _mount(client: hvac.Client, path: str) -> None:
    client.sys.enable_secrets_engine("pki", path=path)
    client.sys.tune_mount_configuration(path, max_lease_ttl="768h")


@pytest.fixture(scope="module")
def ca(pki_server: StrongroomServer) -> dict[str, str]:
    """Replace bootstrap's ``pki`` with one holding an EC root, URLs pointing at this server, and a role ``web``."""
    c = pki_server.client()
    c.sys.disable_secrets_engine("pki")  # bootstrap's workload CA (tests/pki/test_workload.py): start afresh here
    _mount(c, "pki")
    root = c.secrets.pki.generate_root("internal", "Strongroom Test Root",
                                       extra_params={"key_type": "ec", "ttl": "768h", "issuer_name": "root-a"})
    base = f"{pki_server.addr}/v1/pki"
    c.secrets.pki.set_urls({"issuing_certificates": [f"{base}/ca"], "crl_distribution_points": [f"{base}/crl"],
                            "ocsp_servers": [f"{base}/ocsp"]})
    c.secrets.pki.create_or_update_role("web", {"allowed_domains": ["example.com"], "allow_subdomains": True,
                                                "key_type": "ec", "ttl": "1h", "max_ttl": "24h"})
    return {"root": root["data"]["certificate"], "issuer_id": root["data"]["issuer_id"]}


def _errors(resp) -> list[str]:  # noqa: ANN001
    return resp.json().get("errors", [])


def _stored_serials(srv: StrongroomServer, mount: str = "pki") -> list[str]:
    with srv.http() as h:
        r = h.request("LIST", f"/v1/{mount}/certs")
        return r.json()["data"]["keys"] if r.status_code == 200 else []


def test_root_generation_keeps_internal_keys_and_hvac_reads_the_ca(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    assert "private_key" not in c.secrets.pki.read_issuer(ca["issuer_id"])["data"]
    assert c.secrets.pki.read_ca_certificate().strip() == ca["root"].strip()
    assert ca["root"].strip() in c.secrets.pki.read_ca_certificate_chain()
    issuers = c.secrets.pki.list_issuers()["data"]
    assert issuers["keys"] == [ca["issuer_id"]] and issuers["key_info"][ca["issuer_id"]]["is_default"] is True
    keys = c.list("pki/keys")["data"]["keys"]
    for key_id in keys:
        key = c.read(f"pki/key/{key_id}")["data"]
        assert key["key_type"] == "ec" and "private_key" not in key
    cert = x509.load_pem_x509_certificate(ca["root"].encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    with pki_server.http(token="") as anon:
        der = anon.get("/v1/pki/ca")
        assert der.status_code == 200 and der.headers["content-type"] == "application/pkix-cert"
        assert x509.load_der_x509_certificate(der.content) == cert


def test_exported_root_returns_its_key_once(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    _mount(c, "pki-exported")
    r = c.secrets.pki.generate_root("exported", "Exported Root", extra_params={"key_type": "rsa", "key_bits": 2048},
                                    mount_point="pki-exported")["data"]
    key = serialization.load_pem_private_key(r["private_key"].encode(), None)
    assert r["private_key_type"] == "rsa" and isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(r["certificate"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    issuer = c.secrets.pki.read_issuer(r["issuer_id"], mount_point="pki-exported")["data"]
    assert "private_key" not in issuer and "PRIVATE" not in str(issuer)

    # the exported bundle imports into another mount (config/ca), which can then issue under it
    _mount(c, "pki-imported")
    imported = c.secrets.pki.submit_ca_information(r["private_key"] + "\n" + r["certificate"],
                                                   mount_point="pki-imported")["data"]
    assert len(imported["imported_issuers"]) == 1 and len(imported["imported_keys"]) == 1
    c.secrets.pki.create_or_update_role("any", {"allow_any_name": True, "ttl": "1h", "key_type": "ec"},
                                        mount_point="pki-imported")
    leaf = c.secrets.pki.generate_certificate("any", "imported.test", mount_point="pki-imported")["data"]
    assert x509.load_pem_x509_certificate(leaf["certificate"].encode()).issuer == cert.subject
    with pki_server.http() as h:
        resp = h.post("/v1/pki-imported/config/ca", json={"pem_bundle": "-----BEGIN CERTIFICATE-----\nAA\n"})
        assert resp.status_code == 400
    # the root of one mount can cross-sign the other's self-issued CA
    crossed = c.secrets.pki.sign_self_issued(r["certificate"])["data"]["certificate"]
    assert x509.load_pem_x509_certificate(crossed.encode()).issuer.rfc4514_string() == "CN=Strongroom Test Root"
    # DELETE root removes every issuer and key
    c.secrets.pki.delete_root(mount_point="pki-imported")
    with pki_server.http() as h:
        assert h.request("LIST", "/v1/pki-imported/issuers").status_code == 404
        assert h.request("LIST", "/v1/pki-imported/keys").status_code == 404
        resp = h.post("/v1/pki-imported/issue/any", json={"common_name": "x.test"})
        assert resp.status_code == 400 and resp.json()["errors"] == ["no default issuer currently configured"]


def test_intermediate_chain_verifies_with_openssl(pki_server, ca, tmp_path: Path) -> None:  # noqa: ANN001
    c = pki_server.client()
    _mount(c, "pki-int")
    csr = c.secrets.pki.generate_intermediate("internal", "Strongroom Intermediate",
                                              extra_params={"key_type": "ec"}, mount_point="pki-int")["data"]["csr"]
    signed = c.secrets.pki.sign_intermediate(csr, "Strongroom Intermediate", extra_params={"ttl": "700h"})["data"]
    assert signed["issuing_ca"].strip() == ca["root"].strip()
    result = c.secrets.pki.set_signed_intermediate(signed["certificate"] + "\n" + ca["root"],
                                                   mount_point="pki-int")["data"]
    assert result["imported_issuers"], result
    c.secrets.pki.create_or_update_role("svc", {"allowed_domains": ["svc.internal"], "allow_subdomains": True,
                                                "key_type": "ec", "ttl": "2h"}, mount_point="pki-int")
    leaf = c.secrets.pki.generate_certificate("svc", "ledger.svc.internal", mount_point="pki-int")["data"]
    assert leaf["ca_chain"][0].strip() == signed["certificate"].strip()
    assert leaf["ca_chain"][-1].strip() == ca["root"].strip()

    root_file = write(tmp_path / "root.pem", ca["root"])
    int_file = write(tmp_path / "int.pem", signed["certificate"])
    leaf_file = write(tmp_path / "leaf.pem", leaf["certificate"])
    ok = openssl("verify", "-CAfile", root_file, "-untrusted", int_file, "-purpose", "sslserver", leaf_file)
    assert ok.returncode == 0 and f"{leaf_file}: OK" in ok.stdout, ok.stdout + ok.stderr
    # without the intermediate, or against another root, the leaf does not verify
    assert openssl("verify", "-CAfile", root_file, leaf_file).returncode != 0
    _mount(c, "pki-other")
    other = c.secrets.pki.generate_root("internal", "Other Root", extra_params={"key_type": "ec"},
                                        mount_point="pki-other")["data"]["certificate"]
    other_file = write(tmp_path / "other.pem", other)
    assert openssl("verify", "-CAfile", other_file, "-untrusted", int_file, leaf_file).returncode != 0

    # revoking the intermediate puts it on the root's CRL, and it issues no more
    int_serial = x509.load_pem_x509_certificate(signed["certificate"].encode()).serial_number
    int_id = result["imported_issuers"][0]
    assert c.secrets.pki.revoke_issuer(int_id, mount_point="pki-int")["data"]["revoked"] is True
    assert c.secrets.pki.read_issuer(int_id, mount_point="pki-int")["data"]["revoked"] is True
    with pki_server.http() as h:
        resp = h.post("/v1/pki-int/issue/svc", json={"common_name": "again.svc.internal"})
        assert resp.status_code == 400 and "revoked" in resp.json()["errors"][0]
    c.secrets.pki.revoke_certificate(signed["serial_number"])
    root_crl = x509.load_pem_x509_crl(c.secrets.pki.read_crl().encode())
    assert root_crl.get_revoked_certificate_by_serial_number(int_serial) is not None

    # the issued key matches the certificate, and the names are the ones asked for
    cert = x509.load_pem_x509_certificate(leaf["certificate"].encode())
    key = serialization.load_pem_private_key(leaf["private_key"].encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["ledger.svc.internal"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_role_name_rules(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    c.secrets.pki.create_or_update_role("rules", {
        "allowed_domains": ["example.com", "*.glob.test"], "allow_bare_domains": True, "allow_subdomains": True,
        "allow_glob_domains": True, "allow_localhost": True, "allow_ip_sans": False,
        "allowed_uri_sans": ["spiffe://example.com/*"], "key_type": "ec", "ttl": "1h", "max_ttl": "2h",
        "server_flag": True, "client_flag": False, "ext_key_usage": ["CodeSigning"]})
    for name in ("example.com", "a.b.example.com", "x.glob.test", "localhost"):
        r = c.secrets.pki.generate_certificate("rules", name)["data"]
        assert x509.load_pem_x509_certificate(r["certificate"].encode()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)[0].value == name
    r = c.secrets.pki.generate_certificate("rules", "ok.example.com",
                                           extra_params={"uri_sans": "spiffe://example.com/ns/a/sa/b", "ttl": "5h"})
    assert any("maxTTL" in w for w in r["warnings"])
    cert = x509.load_pem_x509_certificate(r["data"]["certificate"].encode())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 7199 <= lifetime.total_seconds() <= 7200 + 31
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CODE_SIGNING in eku and ExtendedKeyUsageOID.CLIENT_AUTH not in eku

    before = _stored_serials(pki_server)
    with pki_server.http() as h:
        cases = [
            ({"common_name": "evil.org"}, "common name evil.org not allowed by this role"),
            ({"common_name": "a.example.com", "alt_names": "b.evil.org"},
             "subject alternate name b.evil.org not allowed by this role"),
            ({"common_name": "a.example.com", "ip_sans": "10.0.0.1"}, "IP Subject Alternative Names are not allowed"),
            ({"common_name": "a.example.com", "uri_sans": "spiffe://evil.org/x"}, "not allowed by this role"),
            ({}, "the common_name field is required"),
            ({"common_name": "a.example.com", "serial_number": "42"}, "serial_number 42 not allowed by this role"),
            ({"common_name": "a.example.com", "ttl": "forever"}, "error converting input"),
        ]
        for body, message in cases:
            resp = h.post("/v1/pki/issue/rules", json=body)
            assert resp.status_code == 400 and message in _errors(resp)[0], (body, resp.text)
        resp = h.post("/v1/pki/issue/nope", json={"common_name": "a.example.com"})
        assert resp.status_code == 400 and _errors(resp) == ["unknown role: nope"]
        resp = h.post("/v1/pki/roles/bad", json={"key_type": "rsa", "key_bits": 1024})
        assert resp.status_code == 400 and "unsupported bit length" in _errors(resp)[0]
        resp = h.post("/v1/pki/roles/bad", json={"key_type": "dsa"})
        assert resp.status_code == 400
        assert h.get("/v1/pki/roles/bad").status_code == 404
    assert _stored_serials(pki_server) == before  # refused requests stored nothing


@pytest.mark.parametrize(("key_type", "bits", "cls"), [("rsa", 2048, rsa.RSAPrivateKey),
                                                       ("ec", 384, ec.EllipticCurvePrivateKey),
                                                       ("ed25519", 0, ed25519.Ed25519PrivateKey)])
def test_key_types(pki_server, ca, key_type: str, bits: int, cls: type) -> None:  # noqa: ANN001
    c = pki_server.client()
    c.secrets.pki.create_or_update_role(f"k-{key_type}", {"allowed_domains": ["example.com"],
                                                          "allow_subdomains": True, "key_type": key_type,
                                                          "key_bits": bits, "ttl": "1h"})
    r = c.secrets.pki.generate_certificate(f"k-{key_type}", "k.example.com")["data"]
    key = serialization.load_pem_private_key(r["private_key"].encode(), None)
    assert isinstance(key, cls) and r["private_key_type"] == key_type


def test_sign_and_sign_verbatim(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.example.com")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.example.com")]), critical=False)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    signed = c.secrets.pki.sign_certificate("web", csr, "api.example.com")["data"]
    cert = x509.load_pem_x509_certificate(signed["certificate"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert "private_key" not in signed
    verbatim = c.secrets.pki.sign_verbatim(csr, extra_params={"ttl": "1h"})["data"]
    assert x509.load_pem_x509_certificate(verbatim["certificate"].encode()).subject == cert.subject
    # a CSR naming a host the role does not allow is refused
    bad = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.evil.org")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    with pki_server.http() as h:
        resp = h.post("/v1/pki/sign/web", json={"csr": bad})
        assert resp.status_code == 400 and "api.evil.org not allowed" in _errors(resp)[0]
        resp = h.post("/v1/pki/sign/web", json={"csr": "not a csr"})
        assert resp.status_code == 400 and _errors(resp) == ["certificate request could not be parsed"]


def test_revocation_is_in_the_crl_and_ocsp_says_revoked(pki_server, ca, tmp_path: Path) -> None:  # noqa: ANN001
    c = pki_server.client()
    revoked = c.secrets.pki.generate_certificate("web", "gone.example.com")["data"]
    good = c.secrets.pki.generate_certificate("web", "stays.example.com")["data"]
    result = c.secrets.pki.revoke_certificate(revoked["serial_number"])["data"]
    assert result["state"] == "revoked" and result["revocation_time"] > 0
    # revoking again answers the same time
    assert c.secrets.pki.revoke_certificate(revoked["serial_number"])["data"]["revocation_time"] == \
        result["revocation_time"]
    assert c.secrets.pki.read_certificate(revoked["serial_number"])["data"]["revocation_time"] == \
        result["revocation_time"]
    assert revoked["serial_number"] in c.list("pki/certs/revoked")["data"]["keys"]

    crl_file = write(tmp_path / "crl.pem", c.secrets.pki.read_crl())
    text = openssl("crl", "-in", crl_file, "-noout", "-text")
    assert text.returncode == 0, text.stderr
    wanted = revoked["serial_number"].replace(":", "").upper().lstrip("0")
    assert wanted in text.stdout.replace(" ", "")
    assert good["serial_number"].replace(":", "").upper().lstrip("0") not in text.stdout.replace(" ", "")
    root_file = write(tmp_path / "root.pem", ca["root"])
    assert openssl("crl", "-in", crl_file, "-noout", "-CAfile", root_file).returncode == 0

    url = f"{pki_server.addr}/v1/pki/ocsp"
    for leaf, status in ((revoked, "revoked"), (good, "good")):
        leaf_file = write(tmp_path / f"{status}.pem", leaf["certificate"])
        out = openssl("ocsp", "-issuer", root_file, "-cert", leaf_file, "-url", url, "-CAfile", root_file,
                      "-timeout", "20")
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"{leaf_file}: {status}" in out.stdout and "Response verify OK" in out.stderr, out.stdout + out.stderr

    # the GET form, per RFC 6960 appendix A, answers the same
    root = x509.load_pem_x509_certificate(ca["root"].encode())
    leaf_cert = x509.load_pem_x509_certificate(revoked["certificate"].encode())
    req = ocsp.OCSPRequestBuilder().add_certificate(leaf_cert, root, hashes.SHA1()).build()
    encoded = base64.b64encode(req.public_bytes(serialization.Encoding.DER)).decode()
    with pki_server.http(token="") as anon:
        resp = anon.get(f"/v1/pki/ocsp/{encoded.replace('/', '%2F')}")
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/ocsp-response"
        answer = ocsp.load_der_ocsp_response(resp.content)
        assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert anon.post("/v1/pki/ocsp", content=b"garbage",
                         headers={"content-type": "application/ocsp-request"}).status_code == 400
        # revoking needs a token
        assert anon.post("/v1/pki/revoke", json={"serial_number": good["serial_number"]}).status_code == 403

    with pki_server.http() as h:
        resp = h.post("/v1/pki/revoke", json={"serial_number": "de:ad:be:ef"})
        assert resp.status_code == 400 and "not found" in _errors(resp)[0]
        resp = h.post("/v1/pki/revoke", json={})
        assert resp.status_code == 400


def test_unauthenticated_reads_and_authenticated_writes(pki_server, ca) -> None:  # noqa: ANN001
    serial = pki_server.client().secrets.pki.generate_certificate("web", "anon.example.com")["data"]["serial_number"]
    with pki_server.http(token="") as anon:
        assert anon.get("/v1/pki/ca/pem").text.strip() == ca["root"].strip()
        assert anon.get(f"/v1/pki/cert/{serial}").json()["data"]["certificate"].startswith("-----BEGIN CERTIFICATE")
        crl = anon.get("/v1/pki/crl")
        assert crl.status_code == 200 and crl.headers["content-type"] == "application/pkix-crl"
        x509.load_der_x509_crl(crl.content)
        assert anon.get(f"/v1/pki/issuer/{ca['issuer_id']}/pem").text.strip() == ca["root"].strip()
        assert anon.post("/v1/pki/issue/web", json={"common_name": "x.example.com"}).status_code == 403
        assert anon.request("LIST", "/v1/pki/certs").status_code == 403
        assert anon.get("/v1/pki/roles/web").status_code == 403


def test_lease_revocation_revokes_the_certificate(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    c.secrets.pki.create_or_update_role("leased", {"allowed_domains": ["example.com"], "allow_subdomains": True,
                                                   "key_type": "ec", "generate_lease": True, "ttl": "1h"})
    r = c.secrets.pki.generate_certificate("leased", "lease.example.com")
    assert r["lease_id"].startswith("pki/issue/leased/") and r["lease_duration"] > 3500
    c.sys.revoke_lease(r["lease_id"])
    crl = x509.load_pem_x509_crl(c.secrets.pki.read_crl().encode())
    serial = int(r["data"]["serial_number"].replace(":", ""), 16)
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_issuers_keys_and_default(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    _mount(c, "pki-multi")
    first = c.secrets.pki.generate_root("internal", "Multi A", extra_params={"key_type": "ec", "issuer_name": "a",
                                                                             "key_name": "ka"},
                                        mount_point="pki-multi")["data"]
    second = c.secrets.pki.generate_root("internal", "Multi B", extra_params={"key_type": "ec", "issuer_name": "b"},
                                         mount_point="pki-multi")["data"]
    assert c.read("pki-multi/config/issuers")["data"]["default"] == first["issuer_id"]
    c.secrets.pki.create_or_update_role("r", {"allow_any_name": True, "key_type": "ec", "ttl": "1h"},
                                        mount_point="pki-multi")
    leaf = c.secrets.pki.generate_certificate("r", "x.test", mount_point="pki-multi")["data"]
    assert leaf["issuing_ca"] == first["certificate"]
    c.write("pki-multi/config/issuers", default="b")
    leaf = c.secrets.pki.generate_certificate("r", "x.test", mount_point="pki-multi")["data"]
    assert leaf["issuing_ca"] == second["certificate"]
    # a role can pin its issuer by name
    c.secrets.pki.create_or_update_role("pinned", {"allow_any_name": True, "key_type": "ec", "ttl": "1h",
                                                   "issuer_ref": "a"}, mount_point="pki-multi")
    pinned = c.secrets.pki.generate_certificate("pinned", "y.test", mount_point="pki-multi")["data"]
    assert pinned["issuing_ca"] == first["certificate"]
    updated = c.secrets.pki.update_issuer("a", extra_params={"issuer_name": "alpha"},
                                          mount_point="pki-multi")["data"]
    assert updated["issuer_name"] == "alpha"
    assert c.read("pki-multi/key/ka")["data"]["key_id"] == first["key_id"]
    with pki_server.http() as h:
        resp = h.delete("/v1/pki-multi/key/ka")
        assert resp.status_code == 400 and "in use" in _errors(resp)[0]
        resp = h.post("/v1/pki-multi/config/issuers", json={"default": "nope"})
        assert resp.status_code == 400
        before = h.request("LIST", "/v1/pki-multi/issuers").json()["data"]["keys"]
        for body in ({"common_name": "x" * 65}, {"common_name": "ok", "serial_number": "*"},
                     {"common_name": "ok", "key_type": "ec", "key_bits": 123}, {"common_name": "ok", "ttl": []}):
            resp = h.post("/v1/pki-multi/root/generate/internal", json=body)
            assert resp.status_code == 400 and _errors(resp), (body, resp.text)
        assert h.request("LIST", "/v1/pki-multi/issuers").json()["data"]["keys"] == before
    c.secrets.pki.delete_issuer("alpha", mount_point="pki-multi")
    assert c.secrets.pki.list_issuers(mount_point="pki-multi")["data"]["keys"] == [second["issuer_id"]]
    c.delete("pki-multi/key/ka")
    assert first["key_id"] not in c.list("pki-multi/keys")["data"]["keys"]


def test_hvac_config_and_tidy_calls(pki_server, ca) -> None:  # noqa: ANN001
    c = pki_server.client()
    c.secrets.pki.set_crl_configuration(expiry="48h", disable=False)
    assert c.secrets.pki.read_crl_configuration()["data"]["expiry"] == "48h"
    urls = c.secrets.pki.read_urls()["data"]
    assert urls["ocsp_servers"] == [f"{pki_server.addr}/v1/pki/ocsp"]
    assert c.secrets.pki.rotate_crl()["data"]["success"] is True
    crl = x509.load_pem_x509_crl(c.secrets.pki.read_crl().encode())
    assert (crl.next_update_utc - crl.last_update_utc).total_seconds() == 48 * 3600
    assert "web" in c.secrets.pki.list_roles()["data"]["keys"]
    assert c.secrets.pki.read_role("web")["data"]["allowed_domains"] == ["example.com"]
    c.secrets.pki.create_or_update_role("temp", {"allow_any_name": True})
    c.secrets.pki.delete_role("temp")
    assert "temp" not in c.secrets.pki.list_roles()["data"]["keys"]
    assert len(c.secrets.pki.list_certificates()["data"]["keys"]) >= 2
    r = c.secrets.pki.tidy({"tidy_cert_store": True, "tidy_revoked_certs": True, "safety_buffer": "1s"})
    assert r.status_code == 202
    status = c.read("pki/tidy-status")["data"]
    assert status["state"] == "Finished" and status["cert_store_deleted_count"] == 0
    with pki_server.http() as h:
        resp = h.post("/v1/pki/config/urls", json={"ocsp_servers": ["not a url"]})
        assert resp.status_code == 400
    assert c.secrets.pki.read_urls()["data"]["ocsp_servers"] == [f"{pki_server.addr}/v1/pki/ocsp"]


def test_concurrent_revocations_all_reach_the_crl(pki_server, ca) -> None:  # noqa: ANN001
    from concurrent.futures import ThreadPoolExecutor

    c = pki_server.client()
    serials = [c.secrets.pki.generate_certificate("web", f"c{i}.example.com")["data"]["serial_number"]
               for i in range(8)]

    def revoke(serial: str) -> int:
        with pki_server.http() as h:
            return h.post("/v1/pki/revoke", json={"serial_number": serial}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(revoke, serials)) == [200] * 8
    crl = x509.load_pem_x509_crl(c.secrets.pki.read_crl().encode())
    for serial in serials:
        assert crl.get_revoked_certificate_by_serial_number(int(serial.replace(":", ""), 16)) is not None, serial


def test_keys_reach_the_audit_log_only_as_hmacs(pki_server, ca, tmp_path: Path) -> None:  # noqa: ANN001
    c = pki_server.client()
    log = tmp_path / "pki-audit.log"
    c.sys.enable_audit_device("file", options={"file_path": str(log)}, path="pki-audit")
    try:
        issued = c.secrets.pki.generate_certificate("web", "audited.example.com")["data"]
        _mount(c, "pki-audited")
        exported = c.secrets.pki.generate_root("exported", "Audited Root", extra_params={"key_type": "ec"},
                                               mount_point="pki-audited")["data"]
    finally:
        c.sys.disable_audit_device("pki-audit")
    raw = log.read_text()
    body = lambda pem: "".join(pem.strip().splitlines()[1:-1])  # noqa: E731 - the base64 inside the PEM
    assert issued["private_key"] and body(issued["private_key"])[:40] not in raw
    assert body(exported["private_key"])[:40] not in raw
    assert '"private_key":"hmac-sha256:' in raw.replace(" ", "")
