"""Built-in daemons, loadable by name: ``residentd run echo``.

``BUILTIN`` maps a name to the ``module:attribute`` of its App.
"""

BUILTIN = {
    "echo": "residentd.apps.echo:app",
    "kv": "residentd.apps.kv:app",
    "chat": "residentd.apps.chat:app",
}
