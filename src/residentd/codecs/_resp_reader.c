/* RESP2 request reader in C: the fast path of codecs/resp.py.
 *
 * read_commands(data, max_bulk_len) reads the commands at the start of ``data``: multibulk
 * ones (``*<count>\r\n`` then ``$<len>\r\n<bytes>\r\n`` per argument, what every client
 * library sends) and plain inline ones (``PING\r\n``, what redis-benchmark's PING_INLINE and
 * telnet send: a whole line without quotes, split at spaces, tabs and carriage returns as
 * Redis's sdssplitargs splits it), and returns ``(commands, end)``: a list of commands, each a
 * list of bytes, and the offset where it stopped. It stops, without judging, at the first
 * thing that is not a complete command written the plain way: an inline line without its
 * newline yet or with a quote, a NUL, a vertical tab or a form feed in it (sdssplitargs treats
 * those specially), a partial command, a count or length that is signed, has a leading zero or
 * is over a limit, a missing ``$``. The Python exact parser, a port of Redis's
 * processMultibulkBuffer, takes over from ``end`` and keeps the partial command or raises
 * Redis's error. What this reader accepts it reads exactly as
 * that parser (and Redis) does, including Redis's habit of skipping the two bytes after a
 * count, a length or an argument without checking them.
 *
 * Each command is checked whole before anything is allocated, so a huge count in a small
 * chunk costs a scan of the chunk and no memory. The reading itself is in ../_resp_read.h,
 * which kv's fast path shares (its serve reads a chunk and runs it in one call).
 */

#define PY_SSIZE_T_CLEAN
#include "../_resp_read.h"

static PyObject *
read_commands(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    Py_buffer view;
    long long max_bulk_len;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "read_commands(data, max_bulk_len)");
        return NULL;
    }
    max_bulk_len = PyLong_AsLongLong(args[1]);
    if (max_bulk_len == -1 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *start = view.buf;
    PyObject *commands = PyList_New(0);
    if (commands == NULL)
        goto fail;
    Py_ssize_t read = read_plain(start, start + view.len, max_bulk_len, commands);
    if (read < 0)
        goto fail;
    PyBuffer_Release(&view);
    PyObject *result = Py_BuildValue("(Nn)", commands, read);
    return result;
fail:
    Py_XDECREF(commands);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_commands", (PyCFunction)(void (*)(void))read_commands, METH_FASTCALL,
     "read_commands(data, max_bulk_len) -> (commands, end): the complete, plainly written "
     "multibulk and inline commands at the start of data, and the offset where reading stopped."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_resp_reader",
    "RESP2 multibulk request reader in C, the fast path of residentd.codecs.resp.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__resp_reader(void)
{
    return PyModule_Create(&module);
}
