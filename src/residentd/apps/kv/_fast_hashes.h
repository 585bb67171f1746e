/* The hash commands of kv's C fast path: the plain case of HSET, HGET, HEXISTS, HDEL, HLEN,
 * HMGET and HINCRBY, as commands/hashes.py runs them.
 *
 * A hash is a Python ``dict`` of field to value (bytes); the last field deleted deletes its
 * key. HSET and HINCRBY are journaled as the request; an HDEL that deleted nothing is not
 * (persistence/aof.py's rules). HINCRBY runs here when the increment and the stored value
 * are plain integers of at most 18 digits and the sum does not overflow; Python gives every
 * error.
 *
 * HDEL is run_remove (_fast_collections.h). This file is part of _fastpath.c (included from
 * it, after _fast_collections.h).
 */

#ifndef RESIDENTD_FAST_HASHES_H
#define RESIDENTD_FAST_HASHES_H

static int
run_hset(Keyspace *db, PyObject *argv, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (argc < 4 || argc % 2)
        return 0;
    PyObject *hash;
    int usable = create_as(db, PyList_GET_ITEM(argv, 1), &PyDict_Type, &hash);
    if (usable <= 0)
        return usable;
    Py_ssize_t before = PyDict_GET_SIZE(hash);
    for (Py_ssize_t i = 2; i < argc; i += 2)
        if (PyDict_SetItem(hash, PyList_GET_ITEM(argv, i), PyList_GET_ITEM(argv, i + 1)) < 0)
            return -1;
    return write_number(out, ':', PyDict_GET_SIZE(hash) - before) < 0 ? -1 : 1;
}

/* HGET, HEXISTS, HLEN and HMGET: reads, which count a hit or a miss. */
static int
run_hash_read(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (command == HMGET ? argc < 3 : argc != (command == HLEN ? 2 : 3))
        return 0;
    PyObject *hash;
    int usable = read_as(db, PyList_GET_ITEM(argv, 1), &PyDict_Type, &hash);
    if (usable <= 0)
        return usable;
    if (command == HLEN)
        return write_number(out, ':', hash ? PyDict_GET_SIZE(hash) : 0) < 0 ? -1 : 2;
    if (command == HEXISTS) {
        int found = hash == NULL ? 0 : PyDict_Contains(hash, PyList_GET_ITEM(argv, 2));
        if (found < 0 || (found ? WRITE_LITERAL(out, ":1\r\n") : WRITE_LITERAL(out, ":0\r\n")))
            return -1;
        return 2;
    }
    if (command == HMGET && write_number(out, '*', argc - 2) < 0)
        return -1;
    for (Py_ssize_t i = 2; i < argc; i++) {
        PyObject *value = NULL;
        if (hash != NULL) {
            value = PyDict_GetItemWithError(hash, PyList_GET_ITEM(argv, i));
            if (value == NULL && PyErr_Occurred())
                return -1;
        }
        int failed = value != NULL && PyBytes_CheckExact(value)
                         ? write_bulk(out, value)
                         : WRITE_LITERAL(out, "$-1\r\n");
        if (failed)
            return -1;
    }
    return 2;
}

static int
run_hincrby(Keyspace *db, PyObject *argv, Output *out)
{
    long long by, current = 0, value;
    if (PyList_GET_SIZE(argv) != 4 || !plain_integer(PyList_GET_ITEM(argv, 3), &by))
        return 0;
    PyObject *key = PyList_GET_ITEM(argv, 1), *field = PyList_GET_ITEM(argv, 2);
    PyObject *hash;
    int usable = lookup_as(db, key, &PyDict_Type, &hash);
    if (usable <= 0)
        return usable;
    if (hash != NULL) {
        PyObject *old = PyDict_GetItemWithError(hash, field);
        if (old == NULL && PyErr_Occurred())
            return -1;
        if (old != NULL && !plain_integer(old, &current))
            return 0;
    }
    if (__builtin_add_overflow(current, by, &value))
        return 0;
    if (hash == NULL && create_as(db, key, &PyDict_Type, &hash) < 0)
        return -1;
    char text[INTEGER_TEXT];
    char *start = format_integer(text, value);
    PyObject *stored = PyBytes_FromStringAndSize(start, text + INTEGER_TEXT - start);
    if (stored == NULL)
        return -1;
    int failed = PyDict_SetItem(hash, field, stored);
    Py_DECREF(stored);
    if (failed)
        return -1;
    return write_number(out, ':', value) < 0 ? -1 : 1;
}

#endif
