"""``residentd bots``: a load generator that imitates users online, for loopback servers.

A scenario describes one kind of user (``Scenario``, ``task``, ``StepFailed``); the load models
in ``load`` decide how many bots run and when they send; generator processes (``workers``)
record latencies per step in HdrHistograms (``stats``) that the controller merges, samples the
server's memory (``server``), shows (``live``) and reports (``report``). ``cli`` is the command.
docs/bots.md is the guide.
"""

from residentd.bots.scenario import Context, Scenario, StepFailed, task

__all__ = ["Context", "Scenario", "StepFailed", "task"]
