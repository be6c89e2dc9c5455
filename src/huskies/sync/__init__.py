"""Replication between huskies nodes: the protocol (sans-I/O) and its drivers."""
