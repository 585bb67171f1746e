"""Built-in scenarios, loadable by name: ``residentd bots --scenario echo``.

``BUILTIN`` maps a name to the ``module:Class`` of its scenario, as ``--scenario`` takes for
scenarios of your own.
"""

BUILTIN = {
    "echo": "residentd.bots.scenarios.echo:Echo",
    "kv": "residentd.bots.scenarios.kv:KeyValue",
    "chat": "residentd.bots.scenarios.chat:Chat",
    "chat-idle": "residentd.bots.scenarios.chat:ChatIdle",
}
