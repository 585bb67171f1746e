"""residentd: resident, event-driven, in-memory network daemons in Python."""

__version__ = "0.1.0"
