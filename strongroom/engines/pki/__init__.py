"""The pki secrets engine (see ``backend.py``)."""
