"""The classic stacks of bench/classic_vs_resident.py: one "users online" web app served the
way a classic web stack serves it, beside residentd's chat.

* ``app``: the handlers (heartbeat, who, post, history, incr) over a ``Store``, framework-free;
* ``sqlite_store``, ``redis_store``: the state in SQLite or in Redis;
* ``cgi_handler``: the handlers as a CGI script, one fresh Python process per request;
* ``cgi_front``: the HTTP front that runs ``cgi_handler`` per request;
* ``wsgi``: the handlers as a WSGI app, for gunicorn's pooled workers;
* ``load``: the load generator, HTTP keep-alive and the chat's JSON-lines protocol.

Only the standard library and redis-py, so the CGI handler's start-up is Python's own.
"""
