"""The transit secrets engine (see ``backend.py``)."""
