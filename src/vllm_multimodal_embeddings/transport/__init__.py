"""The bottom layer: the connection settings, one HTTP core for sync and async, retries, bodies.

Nothing here knows endpoints, profiles or inputs: the embedding and reranking clients, the
probe and the doctor all send their requests through :mod:`._http`.
"""
