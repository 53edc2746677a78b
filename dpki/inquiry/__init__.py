"""The inquiry node: an index that mirrors the ledger, served as JSON, OCSP and a web page.

``indexer`` follows the ledger into the index (``schema``, ``projection``, ``queries``,
``store``); ``app`` serves it (``ocsp``, ``views``, ``web``). Nothing is imported here, so
that the indexer does not load the web stack.
"""
