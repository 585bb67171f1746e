"""Networking: listeners, connections, deadlines, timers and the server that owns them."""
