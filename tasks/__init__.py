"""Evergraph tasks package (filled by later work)."""
