/* The list commands of kv's C fast path (_fastpath.c): the plain case of LPOP and RPOP (with
 * or without a count), LRANGE, LINDEX and LLEN on a list (a ``collections.deque`` of bytes)
 * without a time to live, as commands/lists.py runs them.
 *
 * The deque is walked with its own iterator, forward or (for a range nearer the tail, as
 * lists.py walks it) backward, never indexed element by element: deque indexing walks its
 * blocks from an end each time. Pops call deque's own ``popleft``/``pop`` through the
 * method descriptors fetched once (fast_lists_init), skipping the attribute lookup.
 *
 * Included by _fastpath.c after its Output, Keyspace and lookup helpers.
 */

#ifndef RESIDENTD_FAST_LISTS_H
#define RESIDENTD_FAST_LISTS_H

/* Defined further down in _fastpath.c. */
static inline Py_ssize_t decimal_digits(Py_ssize_t value);
static inline char *put_size(char *p, char mark, Py_ssize_t value, Py_ssize_t digits);
static int journal_command(Output *journal, PyObject *argv);

static PyObject *deque_popleft, *deque_pop, *deque_reversed;

static int
fast_lists_init(void)
{
    deque_popleft = PyObject_GetAttrString(deque_type, "popleft");
    deque_pop = deque_popleft ? PyObject_GetAttrString(deque_type, "pop") : NULL;
    deque_reversed = deque_pop ? PyObject_GetAttrString(deque_type, "__reversed__") : NULL;
    return deque_reversed == NULL ? -1 : 0;
}

/* ``$<size>\r\n<value>\r\n`` for a bytes ``value``, with one reserve. */
static inline int
put_bulk(Output *out, PyObject *value)
{
    Py_ssize_t size = PyBytes_GET_SIZE(value);
    Py_ssize_t digits = decimal_digits(size);
    char *p = reserve(out, digits + size + 5);
    if (p == NULL)
        return -1;
    p = put_size(p, '$', size, digits);
    memcpy(p, PyBytes_AS_STRING(value), size);
    p[size] = '\r';
    p[size + 1] = '\n';
    out->size += digits + size + 5;
    return 0;
}

/* The list at ``key`` for a read: sets *items (borrowed, NULL when there is none, counted a
 * miss; a hit otherwise) and *size (0 when there is none) and returns 1; 0 when Python must
 * decide (a time to live, another type: nothing counted), -1 on an error. */
static int
read_list(Keyspace *db, PyObject *key, PyObject **items, Py_ssize_t *size)
{
    *size = 0;
    int usable = lookup(db, key, items);
    if (usable <= 0)
        return usable;
    if (*items == NULL) {
        db->misses++;
        return 1;
    }
    if (Py_TYPE(*items) != (PyTypeObject *)deque_type)
        return 0; /* WRONGTYPE, in Python's words */
    *size = PyObject_Size(*items);
    if (*size < 0)
        return -1;
    db->hits++;
    return 1;
}

static int
run_llen(Keyspace *db, PyObject *argv, Output *out)
{
    PyObject *items;
    Py_ssize_t size;
    if (PyList_GET_SIZE(argv) != 2)
        return 0;
    int usable = read_list(db, PyList_GET_ITEM(argv, 1), &items, &size);
    if (usable <= 0)
        return usable;
    return write_number(out, ':', size) < 0 ? -1 : 1;
}

static int
run_lindex(Keyspace *db, PyObject *argv, Output *out)
{
    long long index;
    PyObject *items;
    Py_ssize_t size;
    if (PyList_GET_SIZE(argv) != 3 || !plain_integer(PyList_GET_ITEM(argv, 2), &index))
        return 0;
    int usable = read_list(db, PyList_GET_ITEM(argv, 1), &items, &size);
    if (usable <= 0)
        return usable;
    if (index < 0)
        index += size;
    if (index < 0 || index >= size)
        return WRITE_LITERAL(out, "$-1\r\n") < 0 ? -1 : 1;
    /* deque's item walks its blocks once, from the nearer end */
    PyObject *value = PySequence_GetItem(items, (Py_ssize_t)index);
    if (value == NULL)
        return -1;
    int ran = PyBytes_CheckExact(value) ? (put_bulk(out, value) < 0 ? -1 : 1) : 0;
    Py_DECREF(value);
    if (ran == 0)
        db->hits--; /* Python answers it, and counts it */
    return ran;
}

/* Writes ``count`` elements of ``items`` from ``start`` as a RESP array, walking from the
 * nearer end. Returns 1, 0 for an element that is not bytes (the output is taken back),
 * -1 on an error. */
static int
write_range(Output *out, PyObject *items, Py_ssize_t size, Py_ssize_t start, Py_ssize_t count)
{
    Py_ssize_t mark = out->size;
    int backward = start > size - (start + count);
    PyObject *walk = backward ? PyObject_Vectorcall(deque_reversed, &items, 1, NULL)
                              : PyObject_GetIter(items);
    if (walk == NULL)
        return -1;
    iternextfunc next = Py_TYPE(walk)->tp_iternext;
    int ran = -1;
    PyObject *held[64], **elements = held;
    if (backward && count > (Py_ssize_t)(sizeof(held) / sizeof(held[0]))) {
        elements = PyMem_Malloc(count * sizeof(PyObject *));
        if (elements == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (write_number(out, '*', count) < 0)
        goto done;
    /* Skip to the range (from the head, or the tail walking backward). */
    Py_ssize_t skip = backward ? size - (start + count) : start;
    for (Py_ssize_t i = 0; i < skip; i++) {
        PyObject *item = next(walk);
        if (item == NULL)
            goto vanished;
        Py_DECREF(item);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = next(walk);
        if (item == NULL)
            goto vanished;
        Py_DECREF(item); /* the deque holds it, and nothing here changes the deque */
        if (!PyBytes_CheckExact(item)) {
            ran = 0;
            goto done;
        }
        if (backward)
            elements[count - 1 - i] = item;
        else if (put_bulk(out, item) < 0)
            goto done;
    }
    for (Py_ssize_t i = 0; backward && i < count; i++)
        if (put_bulk(out, elements[i]) < 0)
            goto done;
    ran = 1;
    goto done;
vanished:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "list shorter than its length");
done:
    if (elements != held)
        PyMem_Free(elements);
    Py_DECREF(walk);
    if (ran == 0)
        out->size = mark;
    return ran;
}

static int
run_lrange(Keyspace *db, PyObject *argv, Output *out)
{
    long long start, stop;
    PyObject *items;
    Py_ssize_t size;
    if (PyList_GET_SIZE(argv) != 4 || !plain_integer(PyList_GET_ITEM(argv, 2), &start) ||
        !plain_integer(PyList_GET_ITEM(argv, 3), &stop))
        return 0;
    int usable = read_list(db, PyList_GET_ITEM(argv, 1), &items, &size);
    if (usable <= 0)
        return usable;
    /* common.py's index_range: negative positions from the end, clipped to the list. */
    if (start < 0)
        start += size;
    if (stop < 0)
        stop += size;
    if (start < 0)
        start = 0;
    if (stop >= size)
        stop = size - 1;
    if (start > stop || start >= size) {
        if (WRITE_LITERAL(out, "*0\r\n") < 0)
            return -1;
        return 1;
    }
    int ran = write_range(out, items, size, (Py_ssize_t)start, (Py_ssize_t)(stop - start + 1));
    if (ran == 0)
        db->hits--; /* Python answers it, and counts it */
    return ran;
}

/* LPOP and RPOP, ``key [count]``: the count from 1 up (0, a negative one and one past 18
 * digits are Python's). Pops change the list and count no hit or miss, as lists.py's
 * ``write`` does not; a list they empty is deleted. They log their request when they popped
 * something, which is what Redis's AOF holds. */
static int
run_pop(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    long long count = 1;
    if (argc != 2 && argc != 3)
        return 0;
    if (argc == 3 && (!plain_integer(PyList_GET_ITEM(argv, 2), &count) || count < 1))
        return 0;
    PyObject *key = PyList_GET_ITEM(argv, 1);
    PyObject *items;
    int usable = lookup(db, key, &items);
    if (usable <= 0)
        return usable;
    if (items == NULL)
        return (argc == 2 ? WRITE_LITERAL(out, "$-1\r\n") : WRITE_LITERAL(out, "*-1\r\n")) < 0
                   ? -1
                   : 1;
    if (Py_TYPE(items) != (PyTypeObject *)deque_type)
        return 0; /* WRONGTYPE, in Python's words */
    Py_ssize_t size = PyObject_Size(items);
    if (size < 0)
        return -1;
    if (size == 0)
        return 0; /* not a list kv keeps: Python's */
    Py_ssize_t popping = count < size ? (Py_ssize_t)count : size;
    if (argc == 3 && write_number(out, '*', popping) < 0)
        return -1;
    PyObject *pop = command == LPOP ? deque_popleft : deque_pop;
    for (Py_ssize_t i = 0; i < popping; i++) {
        PyObject *value = PyObject_Vectorcall(pop, &items, 1, NULL);
        if (value == NULL)
            return -1;
        /* kv's lists hold bytes only (store.py); anything else is a bug, not a reply. */
        int failed = PyBytes_CheckExact(value) ? put_bulk(out, value) : -2;
        Py_DECREF(value);
        if (failed == -2)
            PyErr_SetString(PyExc_TypeError, "a list element that is not bytes");
        if (failed)
            return -1;
    }
    if (popping == size)
        keytable_delete(db->data, key);
    if (db->journal != NULL && journal_command(db->journal, argv) < 0)
        return -1;
    return 1;
}

#endif
