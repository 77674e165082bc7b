"""Operations on a whole store: snapshots and restore, storage migration, the storage format version.

- :mod:`.snapshot`: a consistent copy of every stored entry (still barrier ciphertext) as a Vault-shaped archive, and
  installing one atomically;
- :mod:`.auto`: scheduled snapshots into a local directory, on the active node;
- :mod:`.migrate`: copying one storage into another while no server uses either;
- :mod:`.storage_format`: the version of the stored layout, and the steps that bring an older store forward.
"""
