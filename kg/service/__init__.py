"""The service: how people and programs reach knowledge.

Following the champion (``serving``), the HTTP server (``server``), the Python client with local and HTTP
backends (``client``) and the engine's command line (``cli``).
"""
