"""The service: how people and programs reach knowledge.

Following the champion (``serving``), the HTTP server (``server``) and its request guard (``guard``: token,
body cap, exposure), the Python client with local and HTTP
backends (``client``) and the engine's command line (``cli``, with ``trust_cli`` for check and explain).
"""
