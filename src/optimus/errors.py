"""Every error Optimus raises on purpose derives from OptimusError, so the CLI can print it plainly."""


class OptimusError(Exception):
    """Base of all errors with a message meant for the user."""


class ConfigError(OptimusError):
    """A setting is unknown, missing or has a bad value; the message names the key and the file."""


class DataPathError(OptimusError):
    """A configured data path does not exist or has the wrong layout."""


class WarehouseError(OptimusError):
    """The warehouse cannot be opened, is locked, or has an incompatible schema."""


class WarehouseLocked(WarehouseError):
    """Another Optimus process holds the warehouse."""


class SchemaVersionError(WarehouseError):
    """The warehouse was written by a newer Optimus."""


class IngestError(OptimusError):
    """A file could not be ingested; the message names the file (and line where known)."""


class ArchiveError(IngestError):
    """An archive is unsafe (path escape, link, device, too large) or broken."""


class QueryRefused(OptimusError):
    """An untrusted query is not exactly one read-only SELECT."""


class UnsafeName(IngestError):
    """A name read from data (org, course, run, table, file) does not have the shape it must have
    before it may become part of a path, a key or a table name."""
