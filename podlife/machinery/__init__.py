"""API machinery shared by every layer: pieces with no knowledge of kinds, storage or transport.

Modules here import nothing else from podlife, so the store, the registry, the API server,
the client and the node agents can all use them.
"""
