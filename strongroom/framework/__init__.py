"""How a backend declares itself: paths with typed fields, operations and existence checks, in one place.

Modelled on Vault's ``sdk/framework``: a backend is data. The pipeline reads these declarations to route, validate,
decide create-versus-update, and describe the API; handlers only do the backend's own work.
"""

from strongroom.framework.backend import Backend, BackendContext, SecretType
from strongroom.framework.fields import Field, FieldData, FieldType
from strongroom.framework.path import Path

__all__ = ["Backend", "BackendContext", "Field", "FieldData", "FieldType", "Path", "SecretType"]
