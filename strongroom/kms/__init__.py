"""The Kubernetes KMS v2 plugin: kube-apiserver encrypts its DEK seeds with a Strongroom transit key.

kube-apiserver ──gRPC, Unix socket──▶ ``strongroom kms-plugin`` ──Vault HTTP API──▶ ``transit/{encrypt,decrypt}/<key>``

The plugin holds no key material: it forwards each Encrypt/Decrypt to the transit engine with its own token (a token
file or a Kubernetes login, renewed) and fails closed — an error, never a fallback — whenever Strongroom is sealed,
unreachable or refuses. See :mod:`strongroom.kms.plugin`.
"""
