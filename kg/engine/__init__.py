"""The engine: growing graphs in, lifelong embeddings out.

- ingest: ``ingest``, ``snapshot``, ``vocab``, and the source formats in ``sources`` (LKGE folders, full RDF and
  table exports, their diffs and stable splits);
- models: ``interactions``, ``model``;
- LKGE: ``autoencoder``, ``strategies``, ``unlearning`` of retracted facts;
- training: ``training``, ``lifelong``, ``run_files`` (the run-directory layout);
- evaluation: ``evaluation``, ``comparison``;
- the example dataset (``example``), one-line events (``events``), atomic writes and hashes (``atomic``).

Imports nothing of the store or the knowledge service. Import the module you need
(``from evergraph.kg.engine.model import KGEModel``); this package imports nothing itself, so reading a model
does not load the training stack.
"""
