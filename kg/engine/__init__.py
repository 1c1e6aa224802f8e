"""The engine: growing graphs in, lifelong embeddings out.

Ingest (``ingest``, ``snapshot``, ``vocab``), models (``interactions``, ``model``), LKGE (``autoencoder``,
``strategies``), training (``training``, ``lifelong``, ``run_files``), evaluation (``evaluation``, ``comparison``)
the example dataset (``example``) and atomic file writes and hashes (``atomic``). Imports nothing of the store
or the knowledge service.

Import the module you need (``from evergraph.kg.engine.model import KGEModel``); this package imports nothing
itself, so reading a model does not load the training stack.
"""
