"""Prefect flows: ``lifelong_pipeline`` (flows.lifelong), ``rollback_champion`` (flows.rollback), and the
``evergraph`` command (flows.cli). Imported lazily: Prefect reads its settings when first imported."""
