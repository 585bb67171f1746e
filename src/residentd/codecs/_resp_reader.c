/* RESP2 request reader in C: the fast path of codecs/resp.py.
 *
 * read_commands(data, max_bulk_len) reads the multibulk commands at the start of ``data``
 * (``*<count>\r\n`` then ``$<len>\r\n<bytes>\r\n`` per argument, what every client library
 * sends) and returns ``(commands, end)``: a list of commands, each a list of bytes, and the
 * offset where it stopped. It stops, without judging, at the first thing that is not a
 * complete command written the plain way: an inline command, a partial command, a count or
 * length that is signed, has a leading zero or is over a limit, a missing ``$``. The Python
 * exact parser, a port of Redis's processMultibulkBuffer, takes over from ``end`` and keeps
 * the partial command or raises Redis's error. What this reader accepts it reads exactly as
 * that parser (and Redis) does, including Redis's habit of skipping the two bytes after a
 * count, a length or an argument without checking them.
 *
 * Each command is checked whole before anything is allocated, so a huge count in a small
 * chunk costs a scan of the chunk and no memory.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>

#define MAX_COUNT_DIGITS 10 /* INT_MAX, Redis's multibulk limit, has ten digits */
#define MAX_LENGTH_DIGITS 18

/* A plain non-negative decimal (no sign, no leading zero) ending at a '\r' that has one byte
 * after it; returns its value and sets *next past the two bytes, or -1. */
static long long
read_number(const char *p, const char *end, int max_digits, const char **next)
{
    const char *start = p;
    long long value = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - start == max_digits)
            return -1;
        value = value * 10 + (*p - '0');
        p++;
    }
    if (p == start || (*start == '0' && p - start > 1))
        return -1;
    if (end - p < 2 || *p != '\r')
        return -1;
    *next = p + 2;
    return value;
}

/* Check the command at p: its argument count, and where it ends. Returns the count (0 for an
 * empty command, which Redis skips), or -1 when the reader must stop here. */
static long long
scan_command(const char *p, const char *end, long long max_bulk_len, const char **command_end)
{
    long long count = read_number(p + 1, end, MAX_COUNT_DIGITS, &p);
    if (count < 0 || count > INT_MAX)
        return -1;
    for (long long i = 0; i < count; i++) {
        if (p >= end || *p != '$')
            return -1;
        long long size = read_number(p + 1, end, MAX_LENGTH_DIGITS, &p);
        if (size < 0 || size > max_bulk_len || end - p < size + 2)
            return -1;
        p += size + 2;
    }
    *command_end = p;
    return count;
}

/* Command names repeat in almost every chunk: a small direct-mapped cache of the names seen
 * last hands out the same bytes object again instead of a new one (bytes are immutable, so
 * sharing them is safe). */
#define NAME_CACHE_SIZE 64
#define NAME_MAX_SIZE 16
static PyObject *name_cache[NAME_CACHE_SIZE];

static PyObject *
command_name(const char *p, Py_ssize_t size)
{
    if (size == 0 || size > NAME_MAX_SIZE)
        return PyBytes_FromStringAndSize(p, size);
    size_t slot = ((size_t)size * 31 + (unsigned char)p[0] * 7 + (unsigned char)p[size - 1]) %
                  NAME_CACHE_SIZE;
    PyObject *cached = name_cache[slot];
    if (cached != NULL && PyBytes_GET_SIZE(cached) == size &&
        memcmp(PyBytes_AS_STRING(cached), p, size) == 0) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *name = PyBytes_FromStringAndSize(p, size);
    if (name != NULL) {
        Py_INCREF(name);
        Py_XSETREF(name_cache[slot], name);
    }
    return name;
}

static PyObject *
build_command(const char *p, Py_ssize_t count)
{
    PyObject *argv = PyList_New(count);
    if (argv == NULL)
        return NULL;
    while (*p != '\r') /* past the count line, checked by scan_command */
        p++;
    p += 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t size = 0;
        p++; /* '$' */
        while (*p != '\r')
            size = size * 10 + (*p++ - '0');
        p += 2;
        PyObject *arg = i == 0 ? command_name(p, size) : PyBytes_FromStringAndSize(p, size);
        if (arg == NULL) {
            Py_DECREF(argv);
            return NULL;
        }
        PyList_SET_ITEM(argv, i, arg);
        p += size + 2;
    }
    return argv;
}

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
    const char *end = start + view.len;
    const char *p = start;
    PyObject *commands = PyList_New(0);
    if (commands == NULL)
        goto fail;
    while (p < end && *p == '*') {
        const char *next;
        long long count = scan_command(p, end, max_bulk_len, &next);
        if (count < 0)
            break;
        if (count > 0) {
            PyObject *argv = build_command(p, (Py_ssize_t)count);
            if (argv == NULL)
                goto fail;
            int failed = PyList_Append(commands, argv);
            Py_DECREF(argv);
            if (failed)
                goto fail;
        }
        p = next;
    }
    PyBuffer_Release(&view);
    PyObject *result = Py_BuildValue("(Nn)", commands, (Py_ssize_t)(p - start));
    return result;
fail:
    Py_XDECREF(commands);
    PyBuffer_Release(&view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_commands", (PyCFunction)(void (*)(void))read_commands, METH_FASTCALL,
     "read_commands(data, max_bulk_len) -> (commands, end): the complete, plainly written "
     "multibulk commands at the start of data, and the offset where reading stopped."},
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
