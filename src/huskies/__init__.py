"""huskies: a story-driven development server."""

__version__ = "0.1.0"
