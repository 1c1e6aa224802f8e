"""Errors raised by the registry package. Each message says what went wrong and what to do next."""

from __future__ import annotations

from kg.errors import EvergraphError


class RegistryError(EvergraphError):
    """A tracking or registry operation cannot be done as asked (missing snapshot, unknown version, ...)."""


class ManifestError(RegistryError):
    """Downloaded model files do not match their ``manifest.json`` (missing, extra or changed files)."""
