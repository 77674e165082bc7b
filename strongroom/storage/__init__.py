"""Physical storage: opaque bytes under string keys. Everything stored here is already barrier ciphertext."""

from strongroom.storage.base import CheckAndSetError, Storage, TxnOp

__all__ = ["CheckAndSetError", "Storage", "TxnOp"]
