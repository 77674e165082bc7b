"""Configuration as code: the server's mounts, auth methods, roles, policies, identity groups, audit devices, database
connections, transit keys, PKI roles and token roles, declared in HCL files and reconciled over the Vault HTTP API.

``hcl`` reads and writes the files; ``kinds`` knows each object type's API paths; ``plan`` diffs files against the
server and marks risk; ``apply`` makes the changes in dependency order; ``export`` writes the live state as files.
The command line is ``strongroom/cli/config_cmd.py``.
"""
