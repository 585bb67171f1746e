/* Line framing in C: the same LineCodec as lines.py, method for method.
 *
 * lines.py is the reference and says what the codec does; this file does the same without a
 * Python frame per chunk. The partial line lives in a malloc'ed buffer; each feed scans only
 * the bytes it has not scanned before, and a line passing ``max_line`` is a ProtocolError
 * ``line-too-long`` as soon as the partial line is past the limit: raised at once, or, when
 * lines came before it in the chunk, kept for the next feed while they are returned. A buffer left empty after a long line is given back, so an idle connection does
 * not keep it. The test suite runs the same tests against both versions.
 */

#include "../_speedups.h"
#include <structmember.h>

#define DEFAULT_MAX_LINE (64 * 1024)
#define KEPT_BUFFER 4096 /* an empty buffer up to this size is kept for the next partial line */

static PyObject *protocol_error_type;
static PyObject *str_code, *str_detail, *str_join, *default_newline;

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_line;
    PyObject *newline;
    char *buffer; /* the partial line, ``held`` bytes of ``capacity`` */
    Py_ssize_t held;
    Py_ssize_t capacity;
    Py_ssize_t scanned; /* bytes of the partial line already searched for LF */
    PyObject *error;    /* line-too-long found after lines that went out first, or NULL */
} LineCodec;

static void
forget_partial(LineCodec *self)
{
    self->held = self->scanned = 0;
    if (self->capacity > KEPT_BUFFER) {
        PyMem_Free(self->buffer);
        self->buffer = NULL;
        self->capacity = 0;
    }
}

static int
hold(LineCodec *self, const char *data, Py_ssize_t size)
{
    Py_ssize_t needed = self->held + size;
    if (needed > self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity : 64;
        while (capacity < needed)
            capacity = capacity > PY_SSIZE_T_MAX / 2 ? needed : capacity * 2;
        char *buffer = PyMem_Realloc(self->buffer, capacity);
        if (buffer == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->buffer = buffer;
        self->capacity = capacity;
    }
    memcpy(self->buffer + self->held, data, size);
    self->held = needed;
    return 0;
}

/* Append one line (its trailing CR dropped) to ``lines``. */
static int
append_line(PyObject *lines, const char *start, Py_ssize_t size)
{
    if (size && start[size - 1] == '\r')
        size--;
    PyObject *line = PyBytes_FromStringAndSize(start, size);
    if (line == NULL)
        return -1;
    int status = PyList_Append(lines, line);
    Py_DECREF(line);
    return status;
}

/* line-too-long, the partial line dropped: raised now (NULL) when ``decoded`` is empty, else
 * kept for the next feed, and ``decoded`` (whose reference this takes) is returned. */
static PyObject *
too_long(LineCodec *self, PyObject *decoded)
{
    forget_partial(self);
    PyObject *detail = PyUnicode_FromFormat("limit=%zd", self->max_line);
    PyObject *error = NULL;
    if (detail != NULL) {
        error = PyObject_CallFunction(protocol_error_type, "sO", "line-too-long", detail);
        Py_DECREF(detail);
    }
    if (error == NULL) {
        Py_DECREF(decoded);
        return NULL;
    }
    if (PyList_GET_SIZE(decoded) == 0) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
        Py_DECREF(decoded);
        return NULL;
    }
    Py_XSETREF(self->error, error);
    return decoded;
}

/* Nothing held, and no line of the chunk can be over the limit: split it, hold the rest. */
static PyObject *
feed_fresh(LineCodec *self, const char *data, Py_ssize_t size)
{
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return NULL;
    const char *start = data, *end = data + size, *newline;
    while ((newline = memchr(start, '\n', end - start)) != NULL) {
        if (append_line(lines, start, newline - start) < 0)
            goto failed;
        start = newline + 1;
    }
    if (start < end) {
        if (hold(self, start, end - start) < 0)
            goto failed;
        self->scanned = self->held;
    }
    return lines;
failed:
    Py_DECREF(lines);
    return NULL;
}

static PyObject *
feed_buffered(LineCodec *self, const char *data, Py_ssize_t size)
{
    if (hold(self, data, size) < 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return NULL;
    char *buffer = self->buffer;
    Py_ssize_t start = 0, position = self->scanned;
    char *newline;
    while ((newline = memchr(buffer + position, '\n', self->held - position)) != NULL) {
        position = newline - buffer;
        Py_ssize_t length = position - start;
        if (length && buffer[position - 1] == '\r')
            length--;
        if (length > self->max_line)
            return too_long(self, lines);
        if (append_line(lines, buffer + start, position - start) < 0)
            goto failed;
        start = ++position;
    }
    if (start) {
        self->held -= start;
        memmove(buffer, buffer + start, self->held);
    }
    /* A partial line may still lose a trailing CR, hence the +1. */
    if (self->held > self->max_line + 1)
        return too_long(self, lines);
    if (self->held == 0)
        forget_partial(self);
    else if (self->capacity > KEPT_BUFFER && self->held < self->capacity / 4) {
        /* what is left of a long line: give most of its buffer back */
        Py_ssize_t capacity = self->held * 2;
        char *smaller = PyMem_Realloc(self->buffer, capacity);
        if (smaller != NULL) {
            self->buffer = smaller;
            self->capacity = capacity;
        }
    }
    self->scanned = self->held;
    return lines;
failed:
    Py_DECREF(lines);
    return NULL;
}

static PyObject *
LineCodec_feed(LineCodec *self, PyObject *data)
{
    if (self->error != NULL) { /* found by the last feed: its turn now */
        PyObject *error = self->error;
        self->error = NULL;
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *lines = self->held || view.len > self->max_line + 1
                          ? feed_buffered(self, view.buf, view.len)
                          : feed_fresh(self, view.buf, view.len);
    PyBuffer_Release(&view);
    return lines;
}

static PyObject *
LineCodec_encode(LineCodec *self, PyObject *message)
{
    PyObject *data;
    if (PyUnicode_Check(message)) {
        data = PyUnicode_AsUTF8String(message);
        if (data == NULL)
            return NULL;
    }
    else
        data = Py_NewRef(message);
    PyObject *encoded;
    if (PyBytes_CheckExact(data)) {
        Py_ssize_t size = PyBytes_GET_SIZE(data), extra = PyBytes_GET_SIZE(self->newline);
        encoded = PyBytes_FromStringAndSize(NULL, size + extra);
        if (encoded != NULL) {
            memcpy(PyBytes_AS_STRING(encoded), PyBytes_AS_STRING(data), size);
            memcpy(PyBytes_AS_STRING(encoded) + size, PyBytes_AS_STRING(self->newline), extra);
        }
    }
    else
        encoded = PyNumber_Add(data, self->newline);
    Py_DECREF(data);
    return encoded;
}

static PyObject *
LineCodec_encode_many(LineCodec *self, PyObject *messages)
{
    Py_ssize_t extra = PyBytes_GET_SIZE(self->newline);
    if (PyList_CheckExact(messages)) {
        Py_ssize_t count = PyList_GET_SIZE(messages), total = extra * (count ? count : 1);
        int plain = 1;
        for (Py_ssize_t i = 0; i < count && plain; i++) {
            PyObject *message = PyList_GET_ITEM(messages, i);
            plain = PyBytes_CheckExact(message);
            if (plain)
                total += PyBytes_GET_SIZE(message);
        }
        if (plain) {
            PyObject *data = PyBytes_FromStringAndSize(NULL, total);
            if (data == NULL)
                return NULL;
            char *cursor = PyBytes_AS_STRING(data);
            const char *newline = PyBytes_AS_STRING(self->newline);
            for (Py_ssize_t i = 0; i < count; i++) {
                PyObject *message = PyList_GET_ITEM(messages, i);
                memcpy(cursor, PyBytes_AS_STRING(message), PyBytes_GET_SIZE(message));
                cursor += PyBytes_GET_SIZE(message);
                memcpy(cursor, newline, extra);
                cursor += extra;
            }
            if (count == 0)
                memcpy(cursor, newline, extra);
            return data;
        }
    }
    PyObject *joined = PyObject_CallMethodOneArg(self->newline, str_join, messages);
    if (joined == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError))
            return NULL;
        PyErr_Clear(); /* some are str */
        return encode_each((PyObject *)self, messages);
    }
    PyObject *data = PyNumber_Add(joined, self->newline);
    Py_DECREF(joined);
    return data;
}

static PyObject *
LineCodec_error_reply(LineCodec *self, PyObject *error)
{
    PyObject *code = PyObject_GetAttr(error, str_code);
    PyObject *detail = code ? PyObject_GetAttr(error, str_detail) : NULL;
    PyObject *text = NULL, *reply = NULL;
    if (detail == NULL)
        goto done;
    int has_detail = PyObject_IsTrue(detail);
    if (has_detail < 0)
        goto done;
    text = has_detail ? PyUnicode_FromFormat("ERR %S %S", code, detail)
                      : PyUnicode_FromFormat("ERR %S", code);
    if (text != NULL)
        reply = LineCodec_encode(self, text);
done:
    Py_XDECREF(text);
    Py_XDECREF(detail);
    Py_XDECREF(code);
    return reply;
}

static PyObject *
LineCodec_get_buffered(LineCodec *self, void *Py_UNUSED(closure))
{
    /* A pending error counts as held input: the connection feeds again when this is not 0. */
    return PyLong_FromSsize_t(self->held + (self->error != NULL));
}

static PyObject *
LineCodec_unparsed(LineCodec *self, PyObject *Py_UNUSED(ignored))
{
    return PyBytes_FromStringAndSize(self->held ? self->buffer : "", self->held);
}

static int
LineCodec_init(LineCodec *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"max_line", "newline", NULL};
    Py_ssize_t max_line = DEFAULT_MAX_LINE;
    PyObject *newline = default_newline;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|nO!:LineCodec", keywords, &max_line,
                                     &PyBytes_Type, &newline))
        return -1;
    if (max_line < 1) {
        PyErr_SetString(PyExc_ValueError, "max_line must be at least 1");
        return -1;
    }
    self->max_line = max_line;
    Py_XSETREF(self->newline, Py_NewRef(newline));
    Py_CLEAR(self->error);
    forget_partial(self);
    return 0;
}

static PyObject *
LineCodec_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    LineCodec *self = (LineCodec *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->max_line = DEFAULT_MAX_LINE;
    self->newline = Py_NewRef(default_newline);
    return (PyObject *)self;
}

static void
LineCodec_dealloc(LineCodec *self)
{
    PyMem_Free(self->buffer);
    Py_XDECREF(self->newline);
    Py_XDECREF(self->error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef LineCodec_members[] = {
    {"max_line", T_PYSSIZET, offsetof(LineCodec, max_line), READONLY, NULL},
    {"newline", T_OBJECT, offsetof(LineCodec, newline), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef LineCodec_getset[] = {
    {"buffered", (getter)LineCodec_get_buffered, NULL,
     "bytes of the partial line held for the next feed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef LineCodec_methods[] = {
    {"feed", (PyCFunction)LineCodec_feed, METH_O,
     "feed(data) -> list of lines; raises ProtocolError line-too-long (codecs/base.py)."},
    {"encode", (PyCFunction)LineCodec_encode, METH_O, "One message and its line ending."},
    {"encode_many", (PyCFunction)LineCodec_encode_many, METH_O,
     "Several messages in one buffer, each with its line ending."},
    {"error_reply", (PyCFunction)LineCodec_error_reply, METH_O,
     "ERR <code> <detail> on a line of its own."},
    {"unparsed", (PyCFunction)LineCodec_unparsed, METH_NOARGS,
     "The partial line held, as the bytes that came in (for a live upgrade)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LineCodecType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "residentd.codecs._lines.LineCodec",
    .tp_doc = "Line framing: one message per line, ended by LF or CRLF.",
    .tp_basicsize = sizeof(LineCodec),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = LineCodec_new,
    .tp_init = (initproc)LineCodec_init,
    .tp_dealloc = (destructor)LineCodec_dealloc,
    .tp_members = LineCodec_members,
    .tp_getset = LineCodec_getset,
    .tp_methods = LineCodec_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lines", "Line framing in C.", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    str_code = PyUnicode_InternFromString("code");
    str_detail = PyUnicode_InternFromString("detail");
    str_join = PyUnicode_InternFromString("join");
    default_newline = PyBytes_FromStringAndSize("\n", 1);
    if (!str_code || !str_detail || !str_join || !default_newline)
        return NULL;
    protocol_error_type = import_attribute("residentd.errors", "ProtocolError");
    if (protocol_error_type == NULL)
        return NULL;
    return module_with_type(&module, "LineCodec", &LineCodecType);
}
