"""The store: what a trained snapshot leaves on disk for serving.

The home layout (``home``), integrity manifests (``manifest``), the FAISS entity index (``index``), the known
facts (``facts``), the confidence calibration (``calibration``), reading bundles (``bundle``) and writing them
(``bundle_writer``, which alone reads engine runs). Depends on the engine's model and vocabularies only.
"""
