"""What a caller hands us, read, bounded and prepared for the wire (images, PDF pages, videos).

:mod:`._prepared` holds the wire type every endpoint builds requests from; :mod:`._read`
dispatches over input forms; the pixel, PDF and video work and client-side fetching each have
a module; :mod:`._pool` runs preparation in worker processes.
"""
