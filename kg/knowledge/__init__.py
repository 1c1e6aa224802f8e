"""The knowledge service: questions in, cited knowledge out.

Text encoders (``text``), entity and relation linking (``linking``), filtered inference through the index
(``inference``) with a type guard (``types``), answer kinds (``answers``), rule mining and explanations
(``rules``, ``explain``), the plausibility of new facts (``plausibility``), the rules and filter a bundle carries
(``bundle_trust``, made when it is written), the guide that builds the cited
context (``guide``), the OpenAI-compatible chat client (``llm``), the typed results (``schemas``) and
:class:`~evergraph.kg.knowledge.knowledge.Knowledge`, which puts them together over one bundle. Reads bundles;
never imports training.
"""
