"""A node of several worker processes sharing one listening socket and one storage (see :mod:`.node`)."""
