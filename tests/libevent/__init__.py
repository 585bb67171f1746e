"""Tests of residentd.libevent and of the socket daemon example built on it."""
