"""The store: what a trained snapshot leaves on disk for serving.

The home layout (``home``), integrity manifests (``manifest``), the FAISS entity index (``index``), the known
facts (``facts``), the confidence calibration (``calibration``), reading bundles (``bundle``) and writing them
(``bundle_writer``, which alone reads engine runs), and the quarantine of held facts with the curated source a
holding lineage learns (``quarantine``). Depends on the engine's model, vocabularies and readers only.
"""
