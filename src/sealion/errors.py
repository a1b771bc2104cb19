"""Errors users see. The CLI prints these as one line (no traceback unless --debug)."""


class SealionError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ModelLoadError(SealionError):
    """A model reference that cannot be resolved or loaded."""


class ConfigError(SealionError):
    """A config file or flag that is invalid; the message names the field."""


class DataError(SealionError):
    """A data file that cannot be read; the message names the file and line."""
