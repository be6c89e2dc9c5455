"""Use cases that do I/O: they read and write through the replica."""
