"""Evergraph flows package (filled by later work)."""
