"""Nodes: a server as a connection plus a host (``Primary``, ``Standby``), and its slots."""
