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
    *str_last_argv, *str_send, *str_conn, *str_journal_select, *str_wrote, *str_serve_rest,
    *str_persistence, *str_index, *str_journal_db, *str_journal_file, *str_changes,
    *str_records, *str_counts_only;

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
        {&str_journal_select, "journal_select"}, {&str_wrote, "wrote"},
        {&str_serve_rest, "serve_rest"},   {&str_persistence, "persistence"},
        {&str_index, "index"},             {&str_journal_db, "_journal_db"},
        {&str_journal_file, "_journal_file"}, {&str_changes, "changes"},
        {&str_records, "records"},         {&str_counts_only, "counts_only"},
    };
    return intern_all(names, sizeof(names) / sizeof(names[0]));
}

static SlotPlace place_buffered = {&str_buffered}, place_max_bulk_len = {&str_max_bulk_len},
                 place_pending = {&str_pending}, place_special = {&str_special},
                 place_state = {&str_state}, place_script_busy = {&str_script_busy},
                 place_notifier = {&str_notifier}, place_eviction = {&str_eviction},
                 place_watches = {&str_watches}, place_keys = {&str_keys},
                 place_journal = {&str_journal}, place_health = {&str_health},
                 place_writable = {&str_writable}, place_blocking = {&str_blocking},
                 place_names = {&str_names}, place_db = {&str_db},
                 place_commands = {&str_commands}, place_last_argv = {&str_last_argv},
                 place_send = {&str_send}, place_conn = {&str_conn},
                 place_persistence = {&str_persistence}, place_index = {&str_index},
                 place_journal_db = {&str_journal_db}, place_journal_file = {&str_journal_file};
/* The persistence's (a place learns one type: the state's ``journal`` has its own). */
static SlotPlace place_persistence_journal = {&str_journal}, place_changes = {&str_changes},
                 place_records = {&str_records}, place_counts_only = {&str_counts_only};

/* object.name's truth (1 or 0), or -1 with an exception. */
static int
attribute_true(PyObject *object, SlotPlace *place)
{
    PyObject *value = get_attribute(object, place);
    if (value == NULL)
        return -1;
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* Whether object.name is None (1 or 0), or -1 with an exception. */
static int
attribute_none(PyObject *object, SlotPlace *place)
{
    PyObject *value = get_attribute(object, place);
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
    if ((check = attribute_none(session, &place_pending)) != 1 ||
        (check = attribute_true(session, &place_special)) != 0 ||
        (check = attribute_true(state, &place_script_busy)) != 0 ||
        (check = attribute_none(state, &place_notifier)) != 1 ||
        (check = attribute_none(state, &place_eviction)) != 1)
        return check < 0 ? -1 : 0;
    PyObject *watches = get_attribute(state, &place_watches);
    if (watches == NULL)
        return -1;
    check = attribute_true(watches, &place_keys);
    Py_DECREF(watches);
    if (check != 0)
        return check < 0 ? -1 : 0;
    PyObject *buffer = get_attribute(state, &place_journal);
    if (buffer == NULL)
        return -1;
    if (buffer == Py_None) {
        Py_DECREF(buffer);
        return 1;
    }
    PyObject *health = get_attribute(state, &place_health);
    check = health == NULL ? -1 : attribute_true(health, &place_writable);
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
    PyObject *blocking = get_attribute(state, &place_blocking);
    if (blocking == NULL)
        return NULL;
    PyObject *names = get_attribute(blocking, &place_names);
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
    PyObject *value = get_attribute(codec, &place_buffered);
    if (value == NULL)
        return NULL;
    int held = PyObject_IsTrue(value);
    Py_DECREF(value);
    if (held != 0)
        return held < 0 ? NULL : Py_NewRef(Py_None);
    value = get_attribute(codec, &place_max_bulk_len);
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

/* Whether the records ``db`` made go into the journal as they are, with no SELECT before
 * them: the journal's last records were in that database and in the same file
 * (KvState.journal_select's test; 1 or 0, -1 with an exception). */
static int
same_journal_db(PyObject *state, PyObject *db, PyObject *persistence)
{
    PyObject *index = get_attribute(db, &place_index);
    PyObject *last = index == NULL ? NULL : get_attribute(state, &place_journal_db);
    int same = last == NULL ? -1 : PyObject_RichCompareBool(index, last, Py_EQ);
    Py_XDECREF(index);
    Py_XDECREF(last);
    if (same != 1)
        return same;
    PyObject *current = persistence == Py_None
                            ? Py_NewRef(Py_None)
                            : get_attribute(persistence, &place_persistence_journal);
    PyObject *file = current == NULL ? NULL : get_attribute(state, &place_journal_file);
    same = file == NULL ? -1 : current == file;
    Py_XDECREF(current);
    Py_XDECREF(file);
    return same;
}

/* After run_commands: SELECT before what the pipeline journaled (state.journal_select, when
 * the database or the journal's file changed), and, once every command ran, the persistence
 * told that the pipeline wrote its ``records`` (KvState.commit(session.conn, mark): its
 * ``wrote(conn, records, records)``, called from here with the count run_commands kept). */
static int
after_journal(PyObject *session, PyObject *state, PyObject *db, PyObject *journal, Py_ssize_t mark,
              Py_ssize_t records_written, int finished)
{
    if (journal == NULL || PyByteArray_GET_SIZE(journal) == mark)
        return 0;
    PyObject *persistence = get_attribute(state, &place_persistence);
    if (persistence == NULL)
        return -1;
    int same = same_journal_db(state, db, persistence);
    if (same == 0) {
        PyObject *mark_object = PyLong_FromSsize_t(mark);
        PyObject *result = mark_object == NULL
                               ? NULL
                               : PyObject_CallMethodObjArgs(state, str_journal_select, db,
                                                            mark_object, NULL);
        Py_XDECREF(mark_object);
        Py_XDECREF(result);
        same = result == NULL ? -1 : 1;
    }
    if (same < 0 || !finished || persistence == Py_None) {
        Py_DECREF(persistence);
        return same < 0 ? -1 : 0;
    }
    int counts_only = attribute_true(persistence, &place_counts_only);
    if (counts_only != 0) { /* a commit is due and no reply waits: wrote() would only count */
        int failed = counts_only < 0 ||
                     add_to_slot(persistence, &place_changes, records_written) < 0 ||
                     add_to_slot(persistence, &place_records, records_written) < 0;
        Py_DECREF(persistence);
        return failed ? -1 : 0;
    }
    PyObject *records = PyLong_FromSsize_t(records_written);
    PyObject *conn = records == NULL ? NULL : get_attribute(session, &place_conn);
    PyObject *result = NULL;
    if (conn != NULL) {
        PyObject *arguments[4] = {persistence, conn, records, records};
        result = PyObject_VectorcallMethod(str_wrote, arguments,
                                           4 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_XDECREF(conn);
    Py_XDECREF(records);
    Py_DECREF(persistence);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static PyObject *
serve(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "serve(session, codec, data)");
        return NULL;
    }
    PyObject *session = args[0], *codec = args[1], *data = args[2];
    if (!PyBytes_CheckExact(data))
        Py_RETURN_NONE;
    PyObject *state = get_attribute(session, &place_state);
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
    if (add_to_slot(state, &place_commands, count) < 0 ||
        set_attribute(session, &place_last_argv, PyList_GET_ITEM(commands, count - 1)) < 0)
        goto done;
    waited = waited_keys(state);
    db = waited == NULL ? NULL : get_attribute(session, &place_db);
    replies = db == NULL ? NULL : PyList_New(0);
    if (replies == NULL)
        goto done;
    Py_ssize_t mark = journal != NULL ? PyByteArray_GET_SIZE(journal) : 0;
    if (waited != Py_None && !PyDict_CheckExact(waited)) {
        PyErr_SetString(PyExc_TypeError, "blocking.names must be a dict");
        goto done;
    }
    Py_ssize_t records = 0;
    Py_ssize_t index = run_commands(commands, 0, db, replies, journal,
                                    waited == Py_None ? NULL : waited, &records);
    if (index < 0 || after_journal(session, state, db, journal, mark, records, index == count) < 0)
        goto done;
    PyObject *sent;
    if (index == count) {
        PyObject *count_object = PyLong_FromSsize_t(count);
        PyObject *send = count_object == NULL ? NULL : get_attribute(session, &place_send);
        PyObject *arguments[2] = {PyList_GET_ITEM(replies, 0), count_object};
        sent = send == NULL ? NULL : PyObject_Vectorcall(send, arguments, 2, NULL);
        Py_XDECREF(send);
        Py_XDECREF(count_object);
    }
    else {
        PyObject *mark_object = PyLong_FromSsize_t(mark);
        PyObject *stopped = mark_object == NULL ? NULL : PyLong_FromSsize_t(index);
        sent = stopped == NULL ? NULL
                               : PyObject_CallMethodObjArgs(session, str_serve_rest, commands,
                                                            stopped, replies, mark_object, NULL);
        Py_XDECREF(stopped);
        Py_XDECREF(mark_object);
    }
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
