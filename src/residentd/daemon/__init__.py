"""The daemon layer: process lifecycle, logging, pidfile, detaching, systemd and privileges."""
