"""Lua scripting (EVAL, EVALSHA, SCRIPT), as Redis 7.0's ``eval.c`` and ``script_lua.c`` do it.

- sandbox.py makes the Lua 5.1 interpreter (lupa's ``lua51``) Redis's: the libraries Redis
  offers and no others, globals that cannot be created, the error handler that tells where a
  script failed, and the instruction-count hook that lets a long script be interrupted;
- cjson.py and bitop.py are the ``cjson`` and ``bit`` libraries scripts commonly use;
- convert.py turns command replies into Lua values and a script's result into a reply, by
  Redis's conversion rules;
- engine.py holds the script cache and runs a script atomically: ``redis.call`` dispatches
  through kv's command table as the calling client, the writes are journaled as their
  effects, and a script past ``busy-reply-threshold`` serves the other clients -BUSY and
  listens for SCRIPT KILL.
"""
