"""The HTTP side of `huskies serve`: one Starlette app."""
