"""The HTTP side of `huskies serve`: one FastAPI app (JSON API, live events, `/crdt-sync`)."""
