"""Evergraph registry package (filled by later work)."""
