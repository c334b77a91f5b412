"""Exceptions for bad user input: the CLI prints them as one line and exits 2 instead of a traceback."""


class HrsaError(Exception):
    """Bad input (config, data, model id, path) detected before expensive work."""


class ConfigError(HrsaError):
    """A config value is wrong; the message names the key."""


class DataError(HrsaError):
    """An input file is malformed; the message names the file (and line where known)."""
