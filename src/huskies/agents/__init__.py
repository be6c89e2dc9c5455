"""Coding agents: what they print, parsed into typed events, and how they are run."""
