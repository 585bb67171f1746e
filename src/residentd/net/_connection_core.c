/* A connection's hot path in C: the same class as connection_core.py, method for method.
 *
 * ConnectionCore holds what every read and every send touches (counters, flags, the output
 * waiting for its write) in a C struct, and runs data_received (with the session class's own
 * serve_chunk first, when it has one), _dispatch, send, send_many, send_bytes, _queue,
 * _schedule_flush, _flush and _write_now without a Python frame. Everything else, and every
 * slow path (a protocol error or input the codec still holds, an async handler's backlog, a
 * handler that raised, an output buffer over its limit), is a Python method of Connection
 * that this code calls by name. connection_core.py is the reference: the two make the same
 * calls in the same order, and the whole test suite runs against both.
 *
 * FlushCore is the server's flush queue's per-iteration part (flush_core.py is its reference):
 * add, wake and a run the app need not see, so that a connection with output to send outside
 * its own read joins the queue, and the iteration's one callback writes every queued
 * connection's output, without a Python frame. flushing.py's FlushQueue builds the app's gate on
 * it.
 *
 * push_all is a fan-out's loop (connection_core.py's push_all): one framed message to every
 * push of a dict, a connection core's own send_bytes run in place rather than called.
 */

#include "../_speedups.h"
#include <structmember.h>

enum { EACH = 0, BATCH = 1, QUEUED = 2 };

static PyObject *protocol_error_type;
static PyObject *str_feed, *str_buffered, *str_on_messages, *str_on_message, *str_encode,
    *str_encode_many, *str_write, *str_is_closing, *str_flushes, *str_add, *str_after_feed,
    *str_enqueue, *str_handler_failed, *str_check_output_cap, *str_join, *str_flush, *str_run,
    *str_run_gated, *str_flush_failed, *str_call_soon, *str_append, *empty_bytes;

/* The hot calls' method caches (_speedups.h): transport.write and is_closing, the codec's feed,
 * encode and encode_many, the session's on_messages, a queued item's _flush. */
static MethodCache write_cache, is_closing_cache, feed_cache, encode_cache, encode_many_cache,
    on_messages_cache, flush_cache;

typedef struct {
    PyObject_HEAD
    PyObject *server;
    PyObject *codec;
    PyObject *session;
    PyObject *transport;
    PyObject *loop_time;
    PyObject *out; /* a list, or NULL or None before the first send */
    PyObject *serve_chunk; /* the session class's serve_chunk, or NULL or None */
    long long bytes_in;
    long long bytes_out;
    long long messages_in;
    long long messages_out;
    double last_active;
    int mode;
    char closing;
    char codec_sends; /* the codec's class says it has bytes of its own to send */
    char dispatching;
    char defer_writes;
    char flush_scheduled;
    char writing_paused;
} Core;

/* The flush queue's per-iteration part (below). */
typedef struct {
    PyObject_HEAD
    PyObject *loop;
    PyObject *pending; /* a list of the items to flush this iteration */
    PyObject *held;    /* the subclass's: items whose output waits for the app */
    PyObject *call_soon; /* loop.call_soon */
    PyObject *run;       /* self._run: the subclass's own when it has one */
    char scheduled;
    char due;
    char gate_each;
    char plain_add; /* the class's add is FlushCore's: a connection core calls flush_add */
} FlushCore;

static PyTypeObject FlushCoreType;
static int flush_add(FlushCore *self, PyObject *item);

/* -- helpers ---------------------------------------------------------------------------------- */

static inline int
is_none(PyObject *object)
{
    return object == NULL || object == Py_None;
}

/* Look up an attribute that may be missing: 1 and a new reference, 0 and NULL, or -1. */
static int
optional_attribute(PyObject *object, PyObject *name, PyObject **result)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(object, name, result);
#else
    return _PyObject_LookupAttr(object, name, result);
#endif
}

/* A field Connection.__init__ sets; NULL (never set, or deleted) raises AttributeError. */
static PyObject *
field(PyObject *value, const char *name)
{
    if (value == NULL)
        PyErr_SetString(PyExc_AttributeError, name);
    return value;
}

static Py_ssize_t
size_of(PyObject *data)
{
    return PyBytes_CheckExact(data) ? PyBytes_GET_SIZE(data) : PyObject_Size(data);
}

/* Call a method of self with no arguments and drop its result: 0, or -1 with an exception. */
static int
call_own(Core *self, PyObject *name)
{
    PyObject *result = PyObject_CallMethodNoArgs((PyObject *)self, name);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

static int
call_own_with(Core *self, PyObject *name, PyObject *argument)
{
    PyObject *result = PyObject_CallMethodOneArg((PyObject *)self, name, argument);
    if (result == NULL)
        return -1;
    Py_DECREF(result);
    return 0;
}

/* The pending output as one bytes object (the only piece itself, or all of them joined), the
 * list emptied. A new reference, or NULL with an exception. */
static PyObject *
take_output(PyObject *out)
{
    Py_ssize_t count = PyList_GET_SIZE(out);
    PyObject *data;
    if (count == 1) {
        data = Py_NewRef(PyList_GET_ITEM(out, 0));
    }
    else {
        Py_ssize_t total = 0;
        int plain = 1;
        for (Py_ssize_t i = 0; i < count && plain; i++) {
            PyObject *piece = PyList_GET_ITEM(out, i);
            plain = PyBytes_CheckExact(piece);
            total += plain ? PyBytes_GET_SIZE(piece) : 0;
        }
        if (plain) {
            data = PyBytes_FromStringAndSize(NULL, total);
            if (data == NULL)
                return NULL;
            char *cursor = PyBytes_AS_STRING(data);
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *piece = PyList_GET_ITEM(out, i);
                memcpy(cursor, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece));
                cursor += PyBytes_GET_SIZE(piece);
            }
        }
        else {
            data = PyObject_CallMethodOneArg(empty_bytes, str_join, out);
            if (data == NULL)
                return NULL;
        }
    }
    /* Emptying the list drops the pieces, which may run arbitrary code: hold the list. */
    Py_INCREF(out);
    int emptied = PyList_SetSlice(out, 0, PY_SSIZE_T_MAX, NULL);
    Py_DECREF(out);
    if (emptied < 0) {
        Py_DECREF(data);
        return NULL;
    }
    return data;
}

/* -- writing ---------------------------------------------------------------------------------- */

static int
schedule_flush(Core *self)
{
    if (self->flush_scheduled)
        return 0;
    self->flush_scheduled = 1;
    if (field(self->server, "server") == NULL)
        return -1;
    PyObject *flushes = PyObject_GetAttr(self->server, str_flushes);
    if (flushes == NULL)
        return -1;
    int status;
    if (PyObject_TypeCheck(flushes, &FlushCoreType) && ((FlushCore *)flushes)->plain_add) {
        status = flush_add((FlushCore *)flushes, (PyObject *)self);
    }
    else {
        PyObject *result = PyObject_CallMethodOneArg(flushes, str_add, (PyObject *)self);
        Py_XDECREF(result);
        status = result == NULL ? -1 : 0;
    }
    Py_DECREF(flushes);
    return status;
}

static int
queue(Core *self, PyObject *data)
{
    PyObject *out = self->out;
    if (out == NULL || !PyList_CheckExact(out)) {
        out = PyList_New(0);
        if (out == NULL)
            return -1;
        Py_XSETREF(self->out, out);
    }
    if (PyList_Append(out, data) < 0)
        return -1;
    /* Inside a chunk's dispatch the write happens when the handler returns; otherwise once at
     * the end of this loop iteration, however many messages are sent before it. */
    if (!self->dispatching)
        return schedule_flush(self);
    return 0;
}

/* Write ``data`` to the transport now, unless it is gone or closing. */
static int
write_now(Core *self, PyObject *data)
{
    PyObject *transport = self->transport;
    if (is_none(transport))
        return 0;
    Py_INCREF(transport);
    int status = -1;
    PyObject *closing = call_method_cached_noargs(&is_closing_cache, transport, str_is_closing);
    if (closing == NULL)
        goto done;
    int is_closing = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (is_closing < 0)
        goto done;
    if (is_closing) {
        status = 0;
        goto done;
    }
    Py_ssize_t size = size_of(data);
    if (size < 0)
        goto done;
    self->bytes_out += size;
    PyObject *result = call_method_cached(&write_cache, transport, str_write, data);
    if (result == NULL)
        goto done;
    Py_DECREF(result);
    status = self->writing_paused ? call_own(self, str_check_output_cap) : 0;
done:
    Py_DECREF(transport);
    return status;
}

static PyObject *
Core_send(Core *self, PyObject *message)
{
    if (self->closing)
        Py_RETURN_NONE;
    if (field(self->codec, "codec") == NULL)
        return NULL;
    PyObject *data = call_method_cached(&encode_cache, self->codec, str_encode, message);
    if (data == NULL)
        return NULL;
    int queued = queue(self, data);
    Py_DECREF(data);
    if (queued < 0)
        return NULL;
    self->messages_out += 1;
    Py_RETURN_NONE;
}

static PyObject *
Core_send_many(Core *self, PyObject *messages)
{
    if (self->closing)
        Py_RETURN_NONE;
    int any = PyList_CheckExact(messages) ? PyList_GET_SIZE(messages) > 0
                                          : PyObject_IsTrue(messages);
    if (any <= 0)
        return any < 0 ? NULL : Py_NewRef(Py_None);
    if (field(self->codec, "codec") == NULL)
        return NULL;
    PyObject *codec = Py_NewRef(self->codec);
    PyObject *encode_many;
    PyObject *data = NULL;
    PyObject *function = cached_function(&encode_many_cache, codec, str_encode_many);
    if (function != NULL)
        data = call_function_held(function, codec, messages);
    else {
        if (optional_attribute(codec, str_encode_many, &encode_many) < 0)
            goto done;
        if (encode_many != NULL) {
            data = PyObject_CallOneArg(encode_many, messages);
            Py_DECREF(encode_many);
        }
        else
            data = encode_each(codec, messages);
    }
    if (data == NULL)
        goto done;
    Py_ssize_t count = PyList_CheckExact(messages) ? PyList_GET_SIZE(messages)
                                                   : PyObject_Size(messages);
    if (count < 0) {
        Py_CLEAR(data);
        goto done;
    }
    self->messages_out += count;
    if (queue(self, data) < 0)
        Py_CLEAR(data);
done:
    Py_DECREF(codec);
    if (data == NULL)
        return NULL;
    Py_DECREF(data);
    Py_RETURN_NONE;
}

static PyObject *
Core_send_bytes(Core *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "send_bytes expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    if (self->closing)
        Py_RETURN_NONE;
    if (queue(self, args[0]) < 0)
        return NULL;
    /* After the queueing, as in Python, where the addition is what fails on a bad count. */
    long long count = nargs == 2 ? PyLong_AsLongLong(args[1]) : 1;
    if (count == -1 && PyErr_Occurred())
        return NULL;
    self->messages_out += count;
    Py_RETURN_NONE;
}

static PyObject *
Core_queue(Core *self, PyObject *data)
{
    if (queue(self, data) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Core_schedule_flush(Core *self, PyObject *Py_UNUSED(ignored))
{
    if (schedule_flush(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Core_flush(Core *self, PyObject *Py_UNUSED(ignored))
{
    self->flush_scheduled = 0;
    PyObject *out = self->out;
    if (is_none(out) || !PyList_CheckExact(out) || PyList_GET_SIZE(out) == 0 ||
        is_none(self->transport))
        Py_RETURN_NONE;
    PyObject *data = take_output(out);
    if (data == NULL)
        return NULL;
    int written = write_now(self, data);
    Py_DECREF(data);
    if (written < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Core_write_now(Core *self, PyObject *data)
{
    if (write_now(self, data) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- reading ---------------------------------------------------------------------------------- */

/* Take the exception being raised out of the error indicator: normalized, with its traceback
 * attached, as new references. */
static void
take_exception(PyObject **type, PyObject **value, PyObject **traceback)
{
    PyErr_Fetch(type, value, traceback);
    PyErr_NormalizeException(type, value, traceback);
    if (*traceback != NULL)
        PyException_SetTraceback(*value, *traceback);
}

/* The exception being raised becomes the one being handled (as inside ``except``) while
 * object.name(text) runs (object.name() when text is NULL): 0, or -1 with an exception. */
static int
call_while_handling(PyObject *object, PyObject *name, const char *text)
{
    PyObject *type, *value, *traceback;
    take_exception(&type, &value, &traceback);
    PyObject *old_type, *old_value, *old_traceback;
    PyErr_GetExcInfo(&old_type, &old_value, &old_traceback);
    PyErr_SetExcInfo(type, value, traceback);
    PyObject *result = NULL;
    if (text == NULL) {
        result = PyObject_CallMethodNoArgs(object, name);
    }
    else {
        PyObject *argument = PyUnicode_FromString(text);
        if (argument != NULL)
            result = PyObject_CallMethodOneArg(object, name, argument);
        Py_XDECREF(argument);
    }
    Py_XDECREF(result);
    PyErr_SetExcInfo(old_type, old_value, old_traceback);
    return result == NULL ? -1 : 0;
}

/* The handler's exception, being raised, is logged by self._handler_failed(where), which
 * closes the connection. */
static int
handler_failed(Core *self, const char *where)
{
    return call_while_handling((PyObject *)self, str_handler_failed, where);
}

static int write_out(Core *self);

/* Hand a chunk's messages to the session, then write what it sent. */
static int
dispatch(Core *self, PyObject *messages)
{
    Py_ssize_t count = PyList_CheckExact(messages) ? PyList_GET_SIZE(messages)
                                                   : PyObject_Size(messages);
    if (count < 0)
        return -1;
    self->messages_in += count;
    PyObject *session = self->session;
    if (is_none(session))
        return 0;
    if (self->mode == QUEUED)
        return call_own_with(self, str_enqueue, messages);
    Py_INCREF(session);
    self->dispatching = 1;
    int failed = 0;
    if (self->mode == BATCH) {
        PyObject *result =
            call_method_cached(&on_messages_cache, session, str_on_messages, messages);
        if (result == NULL)
            failed = 1;
        else
            Py_DECREF(result);
    }
    else {
        PyObject *handle = PyObject_GetAttr(session, str_on_message);
        PyObject *iterator = handle ? PyObject_GetIter(messages) : NULL;
        if (iterator == NULL)
            failed = 1;
        else {
            PyObject *message;
            while ((message = PyIter_Next(iterator)) != NULL) {
                PyObject *result = PyObject_CallOneArg(handle, message);
                Py_DECREF(message);
                if (result == NULL)
                    break;
                Py_DECREF(result);
                if (self->closing)
                    break;
            }
            failed = PyErr_Occurred() != NULL;
        }
        Py_XDECREF(iterator);
        Py_XDECREF(handle);
    }
    Py_DECREF(session);
    self->dispatching = 0;
    if (failed) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        return handler_failed(self, "on_message");
    }
    return write_out(self);
}

/* After a chunk's dispatch: what the session sent goes out in one write, now or at the end of
 * the loop iteration (defer_writes). */
static int
write_out(Core *self)
{
    PyObject *out = self->out;
    if (is_none(out) || !PyList_CheckExact(out) || PyList_GET_SIZE(out) == 0 || self->closing)
        return 0;
    if (self->defer_writes)
        return schedule_flush(self);
    /* Not closing, so the transport is open (close() and abort() set _closing first). */
    PyObject *data = take_output(out);
    if (data == NULL)
        return -1;
    int status = -1;
    Py_ssize_t size = size_of(data);
    if (size >= 0 && !is_none(self->transport)) {
        self->bytes_out += size;
        PyObject *transport = Py_NewRef(self->transport);
        PyObject *result = call_method_cached(&write_cache, transport, str_write, data);
        Py_DECREF(transport);
        if (result != NULL) {
            Py_DECREF(result);
            status = self->writing_paused ? call_own(self, str_check_output_cap) : 0;
        }
    }
    else if (size >= 0)
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute 'write'");
    Py_DECREF(data);
    return status;
}

/* The session's own reader and handler for a whole chunk (serve_chunk), in place of the
 * codec's feed and on_messages: 1 when it took the chunk, 0 when it left it to them, -1 with
 * an exception. */
static int
serve_chunk(Core *self, PyObject *data)
{
    PyObject *serve = self->serve_chunk, *session = self->session;
    if (is_none(serve) || is_none(session))
        return 0;
    PyObject *arguments[3] = {Py_NewRef(session), Py_NewRef(self->codec), data};
    Py_INCREF(serve);
    self->dispatching = 1;
    PyObject *result = PyObject_Vectorcall(serve, arguments, 3, NULL);
    self->dispatching = 0;
    Py_DECREF(serve);
    Py_DECREF(arguments[0]);
    Py_DECREF(arguments[1]);
    if (result == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        return handler_failed(self, "on_message") < 0 ? -1 : 1;
    }
    if (result == Py_None) {
        Py_DECREF(result);
        return 0;
    }
    long long count = PyLong_AsLongLong(result);
    Py_DECREF(result);
    if (count == -1 && PyErr_Occurred())
        return -1;
    self->messages_in += count;
    return write_out(self) < 0 ? -1 : 1;
}

static PyObject *
Core_serve(Core *self, PyObject *data)
{
    int served = serve_chunk(self, data);
    if (served < 0)
        return NULL;
    return PyBool_FromLong(served);
}

static PyObject *
Core_write_out(Core *self, PyObject *Py_UNUSED(ignored))
{
    if (write_out(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Core_dispatch(Core *self, PyObject *messages)
{
    if (dispatch(self, messages) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Core_data_received(Core *self, PyObject *data)
{
    Py_ssize_t size = size_of(data);
    if (size < 0)
        return NULL;
    self->bytes_in += size;
    if (field(self->loop_time, "_loop_time") == NULL || field(self->codec, "codec") == NULL)
        return NULL;
    PyObject *now = PyObject_CallNoArgs(self->loop_time);
    if (now == NULL)
        return NULL;
    double seconds = PyFloat_AsDouble(now);
    Py_DECREF(now);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    self->last_active = seconds;
    if (self->closing)
        Py_RETURN_NONE;
    int served = serve_chunk(self, data);
    if (served != 0)
        return served < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *codec = Py_NewRef(self->codec);
    int status = -1;
    PyObject *messages = call_method_cached(&feed_cache, codec, str_feed, data);
    if (messages == NULL) {
        if (!PyErr_ExceptionMatches(protocol_error_type))
            goto done;
        PyObject *type, *error, *traceback;
        take_exception(&type, &error, &traceback);
        status = call_own_with(self, str_after_feed, error);
        Py_XDECREF(type);
        Py_XDECREF(error);
        Py_XDECREF(traceback);
        goto done;
    }
    int any = PyList_CheckExact(messages) ? PyList_GET_SIZE(messages) > 0
                                          : PyObject_IsTrue(messages);
    if (any < 0 || (any && dispatch(self, messages) < 0)) {
        Py_DECREF(messages);
        goto done;
    }
    Py_DECREF(messages);
    /* The slow path, only when the codec holds input (a partial message, or a pending error:
     * codecs/base.py) or may have bytes of its own to send. */
    if (self->closing) {
        status = 0;
        goto done;
    }
    int slow = self->codec_sends;
    if (!slow) {
        /* the session may have swapped codecs (an upgrade) */
        if (field(self->codec, "codec") == NULL)
            goto done;
        PyObject *held = PyObject_GetAttr(self->codec, str_buffered);
        if (held == NULL)
            goto done;
        slow = PyObject_IsTrue(held);
        Py_DECREF(held);
        if (slow < 0)
            goto done;
    }
    status = slow ? call_own(self, str_after_feed) : 0;
done:
    Py_DECREF(codec);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* -- the type --------------------------------------------------------------------------------- */

static int
Core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->server);
    Py_VISIT(self->codec);
    Py_VISIT(self->session);
    Py_VISIT(self->transport);
    Py_VISIT(self->loop_time);
    Py_VISIT(self->out);
    Py_VISIT(self->serve_chunk);
    return 0;
}

static int
Core_clear(Core *self)
{
    Py_CLEAR(self->server);
    Py_CLEAR(self->codec);
    Py_CLEAR(self->session);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->loop_time);
    Py_CLEAR(self->out);
    Py_CLEAR(self->serve_chunk);
    return 0;
}

static void
Core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    Core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Core_members[] = {
    {"server", T_OBJECT_EX, offsetof(Core, server), 0, NULL},
    {"codec", T_OBJECT_EX, offsetof(Core, codec), 0, NULL},
    {"session", T_OBJECT_EX, offsetof(Core, session), 0, NULL},
    {"transport", T_OBJECT_EX, offsetof(Core, transport), 0, NULL},
    {"_loop_time", T_OBJECT_EX, offsetof(Core, loop_time), 0, NULL},
    {"_out", T_OBJECT_EX, offsetof(Core, out), 0, NULL},
    {"_serve_chunk", T_OBJECT, offsetof(Core, serve_chunk), 0, NULL},
    {"bytes_in", T_LONGLONG, offsetof(Core, bytes_in), 0, NULL},
    {"bytes_out", T_LONGLONG, offsetof(Core, bytes_out), 0, NULL},
    {"messages_in", T_LONGLONG, offsetof(Core, messages_in), 0, NULL},
    {"messages_out", T_LONGLONG, offsetof(Core, messages_out), 0, NULL},
    {"last_active", T_DOUBLE, offsetof(Core, last_active), 0, NULL},
    {"_mode", T_INT, offsetof(Core, mode), 0, NULL},
    {"_closing", T_BOOL, offsetof(Core, closing), 0, NULL},
    {"_codec_sends", T_BOOL, offsetof(Core, codec_sends), 0, NULL},
    {"_dispatching", T_BOOL, offsetof(Core, dispatching), 0, NULL},
    {"_defer_writes", T_BOOL, offsetof(Core, defer_writes), 0, NULL},
    {"_flush_scheduled", T_BOOL, offsetof(Core, flush_scheduled), 0, NULL},
    {"_writing_paused", T_BOOL, offsetof(Core, writing_paused), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef Core_methods[] = {
    {"data_received", (PyCFunction)Core_data_received, METH_O,
     "Feed a chunk to the codec and its messages to the session."},
    {"_serve", (PyCFunction)Core_serve, METH_O,
     "Offer a chunk to the session's serve_chunk; False when it left the chunk to the codec."},
    {"_write_out", (PyCFunction)Core_write_out, METH_NOARGS,
     "After a chunk's dispatch: write what the session sent, now or at the iteration's end."},
    {"_dispatch", (PyCFunction)Core_dispatch, METH_O,
     "Hand decoded messages to the session, then write what it sent."},
    {"send", (PyCFunction)Core_send, METH_O,
     "Queue one message for the peer; dropped silently once the connection is closing."},
    {"send_many", (PyCFunction)Core_send_many, METH_O,
     "Queue several messages at once (one encode call when the codec has encode_many)."},
    {"send_bytes", (PyCFunction)(void (*)(void))Core_send_bytes, METH_FASTCALL,
     "Queue bytes already in the wire format: an encoded message shared by many peers, or "
     "count messages encoded as one piece (the replies to a pipeline, say)."},
    {"_queue", (PyCFunction)Core_queue, METH_O, NULL},
    {"_schedule_flush", (PyCFunction)Core_schedule_flush, METH_NOARGS, NULL},
    {"_flush", (PyCFunction)Core_flush, METH_NOARGS, NULL},
    {"_write_now", (PyCFunction)Core_write_now, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "residentd.net._connection_core.ConnectionCore",
    .tp_doc = "A connection's hot path: a chunk in, its messages to the session, its replies "
              "out.",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_members = Core_members,
    .tp_methods = Core_methods,
};

/* -- the flush queue's per-iteration part ----------------------------------------------------- */

/* self._run at the end of this loop iteration, unless already scheduled: 0, or -1. */
static int
schedule_run(FlushCore *self)
{
    if (self->scheduled)
        return 0;
    self->scheduled = 1;
    if (self->call_soon == NULL || self->run == NULL) {
        PyErr_SetString(PyExc_AttributeError, "FlushCore.__init__ was not called");
        return -1;
    }
    PyObject *handle = PyObject_CallOneArg(self->call_soon, self->run);
    if (handle == NULL)
        return -1;
    Py_DECREF(handle);
    return 0;
}

static int
flush_add(FlushCore *self, PyObject *item)
{
    if (schedule_run(self) < 0)
        return -1;
    PyObject *pending = field(self->pending, "_pending");
    if (pending == NULL)
        return -1;
    if (PyList_CheckExact(pending))
        return PyList_Append(pending, item);
    PyObject *result = PyObject_CallMethodOneArg(pending, str_append, item);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* item._flush() for each item in turn; one that raises an Exception is logged by
 * self._flush_failed() and the others still flushed. */
static int
flush_all(FlushCore *self, PyObject *items)
{
    PyObject *iterator = PyList_CheckExact(items) ? NULL : PyObject_GetIter(items);
    if (iterator == NULL && !PyList_CheckExact(items))
        return -1;
    int status = 0;
    for (Py_ssize_t i = 0;; i++) {
        PyObject *item;
        if (iterator == NULL) {
            if (i >= PyList_GET_SIZE(items))
                break;
            item = Py_NewRef(PyList_GET_ITEM(items, i));
        }
        else if ((item = PyIter_Next(iterator)) == NULL) {
            status = PyErr_Occurred() ? -1 : 0;
            break;
        }
        PyObject *result = call_method_cached_noargs(&flush_cache, item, str_flush);
        Py_DECREF(item);
        if (result != NULL) {
            Py_DECREF(result);
            continue;
        }
        if (!PyErr_ExceptionMatches(PyExc_Exception) ||
            call_while_handling((PyObject *)self, str_flush_failed, NULL) < 0) {
            status = -1;
            break;
        }
    }
    Py_XDECREF(iterator);
    return status;
}

static int
FlushCore_init(FlushCore *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"loop", NULL};
    PyObject *loop;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:FlushCore", keywords, &loop))
        return -1;
    PyObject *pending = PyList_New(0), *held = PyList_New(0);
    PyObject *call_soon = PyObject_GetAttr(loop, str_call_soon);
    PyObject *run = PyObject_GetAttr((PyObject *)self, str_run);
    if (pending == NULL || held == NULL || call_soon == NULL || run == NULL) {
        Py_XDECREF(pending);
        Py_XDECREF(held);
        Py_XDECREF(call_soon);
        Py_XDECREF(run);
        return -1;
    }
    Py_XSETREF(self->loop, Py_NewRef(loop));
    Py_XSETREF(self->pending, pending);
    Py_XSETREF(self->held, held);
    Py_XSETREF(self->call_soon, call_soon);
    Py_XSETREF(self->run, run);
    self->scheduled = 0;
    self->due = 0;
    self->gate_each = 1;
    PyObject *own_add = PyDict_GetItemWithError(FlushCoreType.tp_dict, str_add);
    if (own_add == NULL)
        return PyErr_Occurred() ? -1 : 0;
    self->plain_add = _PyType_Lookup(Py_TYPE(self), str_add) == own_add;
    return 0;
}

static PyObject *
FlushCore_add(FlushCore *self, PyObject *item)
{
    if (flush_add(self, item) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
FlushCore_wake(FlushCore *self, PyObject *Py_UNUSED(ignored))
{
    self->due = 1;
    if (schedule_run(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
FlushCore_run(FlushCore *self, PyObject *Py_UNUSED(ignored))
{
    /* Items added while flushing (a paused session that sends again) wait for the next run. */
    self->scheduled = 0;
    PyObject *pending = field(self->pending, "_pending");
    if (pending == NULL)
        return NULL;
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL)
        return NULL;
    self->pending = fresh; /* the queue's reference to the old list is now ``pending``'s */
    int gated = self->due || self->gate_each;
    if (!gated) {
        PyObject *held = field(self->held, "_held");
        gated = held == NULL ? -1 : PyObject_IsTrue(held);
    }
    int status;
    if (gated < 0) {
        status = -1;
    }
    else if (gated) {
        PyObject *result = PyObject_CallMethodOneArg((PyObject *)self, str_run_gated, pending);
        Py_XDECREF(result);
        status = result == NULL ? -1 : 0;
    }
    else {
        status = flush_all(self, pending);
    }
    Py_DECREF(pending);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
FlushCore_run_gated(FlushCore *self, PyObject *pending)
{
    if (flush_all(self, pending) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
FlushCore_flush_all(FlushCore *self, PyObject *items)
{
    if (flush_all(self, items) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
FlushCore_flush_failed(FlushCore *Py_UNUSED(self), PyObject *Py_UNUSED(ignored))
{
    static PyObject *log; /* the reference's logger, flush_core.log */
    if (log == NULL && (log = import_attribute("residentd.net.flush_core", "log")) == NULL)
        return NULL;
    return PyObject_CallMethod(log, "exception", "s", "flushing output failed");
}

static int
FlushCore_traverse(FlushCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->pending);
    Py_VISIT(self->held);
    Py_VISIT(self->call_soon);
    Py_VISIT(self->run);
    return 0;
}

static int
FlushCore_clear(FlushCore *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->held);
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->run);
    return 0;
}

static void
FlushCore_dealloc(FlushCore *self)
{
    PyObject_GC_UnTrack(self);
    FlushCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef FlushCore_members[] = {
    {"_loop", T_OBJECT_EX, offsetof(FlushCore, loop), READONLY, NULL},
    {"_pending", T_OBJECT_EX, offsetof(FlushCore, pending), 0, NULL},
    {"_held", T_OBJECT_EX, offsetof(FlushCore, held), 0, NULL},
    {"_scheduled", T_BOOL, offsetof(FlushCore, scheduled), 0, NULL},
    {"_due", T_BOOL, offsetof(FlushCore, due), 0, NULL},
    {"gate_each", T_BOOL, offsetof(FlushCore, gate_each), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyMethodDef FlushCore_methods[] = {
    {"add", (PyCFunction)FlushCore_add, METH_O,
     "Flush ``item`` at the end of this loop iteration (the caller adds it only once)."},
    {"wake", (PyCFunction)FlushCore_wake, METH_NOARGS,
     "Run the app's gate at the end of this loop iteration, even with no output pending."},
    {"_run", (PyCFunction)FlushCore_run, METH_NOARGS, NULL},
    {"_run_gated", (PyCFunction)FlushCore_run_gated, METH_O,
     "The run when the app must see it first (the subclass's)."},
    {"_flush_all", (PyCFunction)FlushCore_flush_all, METH_O, NULL},
    {"_flush_failed", (PyCFunction)FlushCore_flush_failed, METH_NOARGS,
     "Called while the exception an item's flush raised is being handled."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FlushCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "residentd.net._connection_core.FlushCore",
    .tp_doc = "The part of the flush queue that every loop iteration runs: add, wake, a plain "
              "run.",
    .tp_basicsize = sizeof(FlushCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FlushCore_init,
    .tp_dealloc = (destructor)FlushCore_dealloc,
    .tp_traverse = (traverseproc)FlushCore_traverse,
    .tp_clear = (inquiry)FlushCore_clear,
    .tp_members = FlushCore_members,
    .tp_methods = FlushCore_methods,
};

/* -- fan-out ----------------------------------------------------------------------------------- */

/* object is a ConnectionCore. The last subclass seen is remembered (a fan-out goes to one
 * class of connection), so that the usual answer costs no walk of the class's bases. */
static inline int
is_core(PyObject *object)
{
    static PyTypeObject *last_core_type; /* held, so no other type can take its address */
    PyTypeObject *type = Py_TYPE(object);
    if (type == last_core_type || type == &CoreType)
        return 1;
    if (!PyType_IsSubtype(type, &CoreType))
        return 0;
    Py_INCREF(type);
    Py_XSETREF(last_core_type, type);
    return 1;
}

/* push is a ConnectionCore's own send_bytes, bound to it. */
static inline int
is_own_send_bytes(PyObject *push)
{
    return PyCFunction_Check(push) &&
           PyCFunction_GET_FUNCTION(push) == (PyCFunction)(void (*)(void))Core_send_bytes &&
           PyCFunction_GET_SELF(push) != NULL && is_core(PyCFunction_GET_SELF(push));
}

/* push(data): in place when it is a core's own send_bytes. 0, or -1 with an exception. */
static int
push_one(PyObject *push, PyObject *data)
{
    if (is_own_send_bytes(push)) {
        Core *core = (Core *)PyCFunction_GET_SELF(push);
        if (core->closing)
            return 0;
        Py_INCREF(core);
        int status = queue(core, data);
        if (status == 0)
            core->messages_out += 1;
        Py_DECREF(core);
        return status;
    }
    PyObject *result = PyObject_CallOneArg(push, data);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

static PyObject *
push_all(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "push_all expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *pushes = args[0], *data = args[1];
    if (!PyDict_CheckExact(pushes)) {
        PyObject *values = PyObject_CallMethod(pushes, "values", NULL);
        PyObject *iterator = values == NULL ? NULL : PyObject_GetIter(values);
        Py_XDECREF(values);
        if (iterator == NULL)
            return NULL;
        PyObject *push;
        while ((push = PyIter_Next(iterator)) != NULL) {
            int status = push_one(push, data);
            Py_DECREF(push);
            if (status < 0)
                break;
        }
        Py_DECREF(iterator);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(pushes);
    Py_ssize_t position = 0, size = PyDict_GET_SIZE(pushes);
    PyObject *key, *push;
    int status = 0;
    while (PyDict_Next(pushes, &position, &key, &push)) {
        Py_INCREF(push);
        status = push_one(push, data);
        Py_DECREF(push);
        if (status < 0)
            break;
        if (PyDict_GET_SIZE(pushes) != size) { /* as iterating over the values would say */
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            status = -1;
            break;
        }
    }
    Py_DECREF(pushes);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_functions[] = {
    {"push_all", (PyCFunction)(void (*)(void))push_all, METH_FASTCALL,
     "push(data) for every value of pushes (a fan-out); a connection core's own send_bytes runs "
     "in place."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_connection_core", "A connection's hot path in C.", -1,
    module_functions, NULL, NULL, NULL, NULL,
};

static int
intern_names(void)
{
    static const InternedName names[] = {
        {&str_feed, "feed"},
        {&str_buffered, "buffered"},
        {&str_on_messages, "on_messages"},
        {&str_on_message, "on_message"},
        {&str_encode, "encode"},
        {&str_encode_many, "encode_many"},
        {&str_write, "write"},
        {&str_is_closing, "is_closing"},
        {&str_flushes, "flushes"},
        {&str_add, "add"},
        {&str_after_feed, "_after_feed"},
        {&str_enqueue, "_enqueue"},
        {&str_handler_failed, "_handler_failed"},
        {&str_check_output_cap, "_check_output_cap"},
        {&str_join, "join"},
        {&str_flush, "_flush"},
        {&str_run, "_run"},
        {&str_run_gated, "_run_gated"},
        {&str_flush_failed, "_flush_failed"},
        {&str_call_soon, "call_soon"},
        {&str_append, "append"},
    };
    if (intern_all(names, sizeof(names) / sizeof(names[0])) < 0)
        return -1;
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    return empty_bytes == NULL ? -1 : 0;
}

PyMODINIT_FUNC
PyInit__connection_core(void)
{
    if (intern_names() < 0)
        return NULL;
    protocol_error_type = import_attribute("residentd.errors", "ProtocolError");
    if (protocol_error_type == NULL)
        return NULL;
    PyObject *created = module_with_type(&module, "ConnectionCore", &CoreType);
    if (created == NULL)
        return NULL;
    if (PyType_Ready(&FlushCoreType) < 0 ||
        PyModule_AddObjectRef(created, "FlushCore", (PyObject *)&FlushCoreType) < 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
