"""The relay Lambda's edge: the OpenAI-compatible ``/v1/*`` routes as a small ASGI app.

It runs under uvicorn, which AWS Lambda Web Adapter starts in the function and streams from
(``app.py`` in this package); the management API stays with Chalice.
"""
