"""The ``aws`` secrets engine: short-lived AWS credentials (IAM users as leases, STS credentials), Vault-compatible.

Start at :mod:`strongroom.engines.aws.backend`, which lists the paths and the module that serves each.
"""
