/* HTTP/1.1 request head reader in C: the fast path of codecs/http.py.
 *
 * read_head(head, max_request_line, max_headers) reads a whole request head (without its
 * final empty line) written the plain way and returns ``(method, target, version, fields)``,
 * the field names in lower case and each value stripped of the spaces and tabs around it;
 * for anything else it returns None without judging, and http.py's line-by-line reading
 * (``_refuse_head``) names the fault or reads the head. It returns None for: a request line
 * that is not ``token SP visible-ASCII SP HTTP/1.0|1.1`` or is over max_request_line; a
 * control character (HTAB aside), a CR not followed by LF or an LF not after a CR anywhere;
 * a field line that is not ``token ":" value`` (obsolete folding included); max_headers
 * lines or more; a field name that repeats (the Python reading joins the values). It is the
 * same function as http.py's ``_read_head_fast``, which the tests run against the same heads.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_NAME 256 /* a longer field name goes to the Python reading */

/* RFC 9110's tchar: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA */
static unsigned char tchar[256];
/* A byte a field value may hold: HTAB, SP to '~', and 0x80 to 0xFF (obs-text). */
static unsigned char vchar[256];

static PyObject *http11;
static PyObject *http10;

static void
init_tables(void)
{
    const char *extra = "!#$%&'*+-.^_`|~";
    for (int c = '0'; c <= '9'; c++)
        tchar[c] = 1;
    for (int c = 'a'; c <= 'z'; c++)
        tchar[c] = tchar[c - 32] = 1;
    for (const char *p = extra; *p; p++)
        tchar[(unsigned char)*p] = 1;
    vchar['\t'] = 1;
    for (int c = 0x20; c < 256; c++)
        vchar[c] = c != 0x7f;
}

static PyObject *
read_head(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "read_head(head: bytes, max_request_line, max_headers)");
        return NULL;
    }
    Py_ssize_t max_line = PyLong_AsSsize_t(args[1]);
    Py_ssize_t max_headers = PyLong_AsSsize_t(args[2]);
    if ((max_line == -1 || max_headers == -1) && PyErr_Occurred())
        return NULL;
    const unsigned char *start = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *end = start + PyBytes_GET_SIZE(args[0]);
    const unsigned char *p = start;

    /* The request line. */
    const unsigned char *method = p;
    while (p < end && tchar[*p])
        p++;
    if (p == method || p >= end || *p != ' ')
        Py_RETURN_NONE;
    Py_ssize_t method_len = p - method;
    const unsigned char *target = ++p;
    while (p < end && *p >= 0x21 && *p <= 0x7e)
        p++;
    Py_ssize_t target_len = p - target;
    if (target_len == 0 || end - p < 9 || memcmp(p, " HTTP/1.", 8) != 0)
        Py_RETURN_NONE;
    p += 8;
    char minor = (char)*p++;
    if (minor != '0' && minor != '1')
        Py_RETURN_NONE;
    if (p - start > max_line || (p < end && (end - p < 2 || p[0] != '\r' || p[1] != '\n')))
        Py_RETURN_NONE;

    /* The field lines: check them all before anything is made. */
    Py_ssize_t lines = 1;
    for (const unsigned char *q = p; q < end;) {
        q += 2; /* the CRLF before the line */
        const unsigned char *name = q;
        while (q < end && tchar[*q])
            q++;
        if (q == name || q >= end || *q != ':' || q - name > MAX_NAME)
            Py_RETURN_NONE;
        while (q < end && vchar[*q])
            q++;
        if (q < end && (end - q < 2 || q[0] != '\r' || q[1] != '\n'))
            Py_RETURN_NONE;
        if (++lines >= max_headers + 1)
            Py_RETURN_NONE;
    }

    PyObject *fields = PyDict_New();
    if (fields == NULL)
        return NULL;
    char lowered[MAX_NAME];
    while (p < end) {
        p += 2;
        const unsigned char *name = p;
        while (*p != ':')
            p++;
        Py_ssize_t name_len = p - name;
        for (Py_ssize_t i = 0; i < name_len; i++) {
            unsigned char c = name[i];
            lowered[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const unsigned char *value = p;
        while (p < end && *p != '\r')
            p++;
        const unsigned char *value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        PyObject *key = PyUnicode_DecodeLatin1(lowered, name_len, NULL);
        if (key == NULL)
            goto fail;
        int known = PyDict_Contains(fields, key);
        if (known != 0) {
            Py_DECREF(key);
            if (known < 0)
                goto fail;
            Py_DECREF(fields);
            Py_RETURN_NONE; /* a repeated name: the Python reading joins the values */
        }
        PyObject *text = PyUnicode_DecodeLatin1((const char *)value, value_end - value, NULL);
        if (text == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        int failed = PyDict_SetItem(fields, key, text);
        Py_DECREF(key);
        Py_DECREF(text);
        if (failed)
            goto fail;
    }
    PyObject *version = minor == '1' ? http11 : http10;
    return Py_BuildValue("(NNON)", PyUnicode_DecodeLatin1((const char *)method, method_len, NULL),
                         PyUnicode_DecodeLatin1((const char *)target, target_len, NULL), version,
                         fields);
fail:
    Py_DECREF(fields);
    return NULL;
}

static PyMethodDef methods[] = {
    {"read_head", (PyCFunction)(void (*)(void))read_head, METH_FASTCALL,
     "read_head(head, max_request_line, max_headers) -> (method, target, version, fields) for "
     "a plainly written request head, else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_http_head",
    "HTTP/1.1 request head reader in C, the fast path of residentd.codecs.http.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__http_head(void)
{
    init_tables();
    http11 = PyUnicode_InternFromString("HTTP/1.1");
    http10 = PyUnicode_InternFromString("HTTP/1.0");
    if (http11 == NULL || http10 == NULL)
        return NULL;
    return PyModule_Create(&module);
}
