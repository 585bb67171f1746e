/* serve(session, codec, data): a plain client's whole chunk, read and run in one call.
 *
 * The connection calls it (the session class's ``serve_chunk``: net/connection_core.py) with
 * each chunk before its codec sees it. When the chunk is nothing but complete, plainly
 * written commands (../../_resp_read.h, the codec's own C reader), the codec holds nothing,
 * and the session is in the state where ``KvSession.on_messages`` would hand the pipeline
 * straight to ``execute`` (not blocked, not special, no script running past its threshold,
 * no keyspace notifications, no maxmemory, no WATCH anywhere, a journal that accepts data),
 * it does here what on_messages does then, in the same order: count the commands, keep the
 * last one, run them through ``execute``, put ``SELECT`` before what they journaled, tell the
 * state a pipeline journaled, and send the replies in one piece. If execute stops at a command
 * it leaves to Python, the session's ``serve_rest`` runs the rest of the pipeline as
 * on_messages would. It returns the number of commands it took, or None, having changed
 * nothing, to leave the chunk to the codec and on_messages. So a GET at pipeline 1 costs no
 * Python frame: the codec's ``feed`` and the session's ``on_messages`` are the two it saves.
 */

static PyObject *str_buffered, *str_max_bulk_len, *str_pending, *str_special, *str_state,
    *str_script_busy, *str_notifier, *str_eviction, *str_watches, *str_keys, *str_journal,
    *str_health, *str_writable, *str_blocking, *str_names, *str_db, *str_commands,
    *str_last_argv, *str_send, *str_conn, *str_journal_select, *str_commit, *str_serve_rest;

static int
serve_init(void)
{
    static const InternedName names[] = {
        {&str_buffered, "buffered"},       {&str_max_bulk_len, "max_bulk_len"},
        {&str_pending, "pending"},         {&str_special, "special"},
        {&str_state, "state"},             {&str_script_busy, "script_busy"},
        {&str_notifier, "notifier"},       {&str_eviction, "eviction"},
        {&str_watches, "watches"},         {&str_keys, "keys"},
        {&str_journal, "journal"},         {&str_health, "health"},
        {&str_writable, "writable"},       {&str_blocking, "blocking"},
        {&str_names, "names"},             {&str_db, "db"},
        {&str_commands, "commands"},       {&str_last_argv, "last_argv"},
        {&str_send, "_send"},              {&str_conn, "conn"},
        {&str_journal_select, "journal_select"}, {&str_commit, "commit"},
        {&str_serve_rest, "serve_rest"},
    };
    return intern_all(names, sizeof(names) / sizeof(names[0]));
}

/* object.name's truth (1 or 0), or -1 with an exception. */
static int
attribute_true(PyObject *object, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(object, name);
    if (value == NULL)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* Whether object.name is None (1 or 0), or -1 with an exception. */
static int
attribute_none(PyObject *object, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(object, name);
    if (value == NULL)
        return -1;
    int none = value == Py_None;
    Py_DECREF(value);
    return none;
}

/* Whether the session and its state let a pipeline go straight to execute (1 or 0; -1 with
 * an exception), the checks of KvSession.on_messages before its call to the fast path.
 * ``*journal`` is the journal buffer (a new reference) or NULL. */
static int
serve_plain(PyObject *session, PyObject *state, PyObject **journal)
{
    *journal = NULL;
    int check;
    if ((check = attribute_none(session, str_pending)) != 1 ||
        (check = attribute_true(session, str_special)) != 0 ||
        (check = attribute_true(state, str_script_busy)) != 0 ||
        (check = attribute_none(state, str_notifier)) != 1 ||
        (check = attribute_none(state, str_eviction)) != 1)
        return check < 0 ? -1 : 0;
    PyObject *watches = PyObject_GetAttr(state, str_watches);
    if (watches == NULL)
        return -1;
    check = attribute_true(watches, str_keys);
    Py_DECREF(watches);
    if (check != 0)
        return check < 0 ? -1 : 0;
    PyObject *buffer = PyObject_GetAttr(state, str_journal);
    if (buffer == NULL)
        return -1;
    if (buffer == Py_None) {
        Py_DECREF(buffer);
        return 1;
    }
    PyObject *health = PyObject_GetAttr(state, str_health);
    check = health == NULL ? -1 : attribute_true(health, str_writable);
    Py_XDECREF(health);
    if (check != 1 || !PyByteArray_CheckExact(buffer)) {
        Py_DECREF(buffer);
        return check < 0 ? -1 : 0;
    }
    *journal = buffer;
    return 1;
}

/* The keys clients wait on (blocking.names) if any, else None: a new reference. */
static PyObject *
waited_keys(PyObject *state)
{
    PyObject *blocking = PyObject_GetAttr(state, str_blocking);
    if (blocking == NULL)
        return NULL;
    PyObject *names = PyObject_GetAttr(blocking, str_names);
    Py_DECREF(blocking);
    if (names == NULL)
        return NULL;
    int any = PyObject_IsTrue(names);
    if (any <= 0) {
        Py_DECREF(names);
        return any < 0 ? NULL : Py_NewRef(Py_None);
    }
    return names;
}

/* The chunk's commands if it holds nothing else and the codec holds nothing (a new list),
 * None if the codec must read it, or NULL with an exception. */
static PyObject *
plain_commands(PyObject *codec, PyObject *data)
{
    PyObject *value = PyObject_GetAttr(codec, str_buffered);
    if (value == NULL)
        return NULL;
    int held = PyObject_IsTrue(value);
    Py_DECREF(value);
    if (held != 0)
        return held < 0 ? NULL : Py_NewRef(Py_None);
    value = PyObject_GetAttr(codec, str_max_bulk_len);
    if (value == NULL)
        return NULL;
    long long max_bulk_len = PyLong_AsLongLong(value);
    Py_DECREF(value);
    if (max_bulk_len == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size > max_bulk_len) /* as RespCodec.feed: it could hold a bulk over the limit */
        return Py_NewRef(Py_None);
    PyObject *commands = PyList_New(0);
    if (commands == NULL)
        return NULL;
    Py_ssize_t read = read_plain(PyBytes_AS_STRING(data), PyBytes_AS_STRING(data) + size,
                                 max_bulk_len, commands);
    if (read < 0) {
        Py_DECREF(commands);
        return NULL;
    }
    if (read != size || PyList_GET_SIZE(commands) == 0) {
        Py_DECREF(commands);
        return Py_NewRef(Py_None);
    }
    return commands;
}

/* After execute: SELECT before what the pipeline journaled (state.journal_select), and, once
 * every command ran, the state told that it journaled (state.commit(session.conn, mark)). */
static int
after_journal(PyObject *session, PyObject *state, PyObject *db, PyObject *journal, Py_ssize_t mark,
              int finished)
{
    if (journal == NULL || PyByteArray_GET_SIZE(journal) == mark)
        return 0;
    PyObject *mark_object = PyLong_FromSsize_t(mark);
    if (mark_object == NULL)
        return -1;
    PyObject *result = PyObject_CallMethodObjArgs(state, str_journal_select, db, mark_object,
                                                  NULL);
    if (result == NULL || !finished) {
        Py_DECREF(mark_object);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    Py_DECREF(result);
    PyObject *conn = PyObject_GetAttr(session, str_conn);
    if (conn == NULL) {
        Py_DECREF(mark_object);
        return -1;
    }
    result = PyObject_CallMethodObjArgs(state, str_commit, conn, mark_object, NULL);
    Py_DECREF(conn);
    Py_DECREF(mark_object);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static PyObject *
serve(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "serve(session, codec, data)");
        return NULL;
    }
    PyObject *session = args[0], *codec = args[1], *data = args[2];
    if (!PyBytes_CheckExact(data))
        Py_RETURN_NONE;
    PyObject *state = PyObject_GetAttr(session, str_state);
    if (state == NULL)
        return NULL;
    PyObject *journal = NULL, *commands = NULL, *waited = NULL, *db = NULL, *replies = NULL;
    PyObject *result = NULL;
    int plain = serve_plain(session, state, &journal);
    if (plain <= 0) {
        result = plain < 0 ? NULL : Py_NewRef(Py_None);
        goto done;
    }
    commands = plain_commands(codec, data);
    if (commands == NULL || commands == Py_None) {
        result = Py_XNewRef(commands);
        goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(commands);
    if (add_to_counter(state, str_commands, count) < 0 ||
        PyObject_SetAttr(session, str_last_argv, PyList_GET_ITEM(commands, count - 1)) < 0)
        goto done;
    waited = waited_keys(state);
    db = waited == NULL ? NULL : PyObject_GetAttr(session, str_db);
    replies = db == NULL ? NULL : PyList_New(0);
    if (replies == NULL)
        goto done;
    Py_ssize_t mark = journal != NULL ? PyByteArray_GET_SIZE(journal) : 0;
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL)
        goto done;
    PyObject *call[6] = {commands, zero, db, replies, journal ? journal : Py_None, waited};
    PyObject *stopped = execute(module, call, 6);
    Py_DECREF(zero);
    if (stopped == NULL)
        goto done;
    Py_ssize_t index = PyLong_AsSsize_t(stopped);
    if (index == -1 && PyErr_Occurred()) {
        Py_DECREF(stopped);
        goto done;
    }
    if (after_journal(session, state, db, journal, mark, index == count) < 0) {
        Py_DECREF(stopped);
        goto done;
    }
    PyObject *sent;
    if (index == count) {
        PyObject *count_object = PyLong_FromSsize_t(count);
        sent = count_object == NULL ? NULL
                                    : PyObject_CallMethodObjArgs(session, str_send,
                                                                 PyList_GET_ITEM(replies, 0),
                                                                 count_object, NULL);
        Py_XDECREF(count_object);
    }
    else {
        PyObject *mark_object = PyLong_FromSsize_t(mark);
        sent = mark_object == NULL ? NULL
                                   : PyObject_CallMethodObjArgs(session, str_serve_rest,
                                                                commands, stopped, replies,
                                                                mark_object, NULL);
        Py_XDECREF(mark_object);
    }
    Py_DECREF(stopped);
    if (sent == NULL)
        goto done;
    Py_DECREF(sent);
    result = PyLong_FromSsize_t(count);
done:
    Py_DECREF(state);
    Py_XDECREF(journal);
    Py_XDECREF(commands);
    Py_XDECREF(waited);
    Py_XDECREF(db);
    Py_XDECREF(replies);
    return result;
}
