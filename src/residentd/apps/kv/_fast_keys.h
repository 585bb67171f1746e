/* The key commands of kv's C fast path (_fastpath.c): the plain case of DEL and EXISTS (any
 * number of keys), EXPIRE and PEXPIRE without NX/XX/GT/LT, and TTL and PTTL, as
 * commands/keys.py runs them.
 *
 * These see keys with a time to live: a deadline still ahead is read (TTL), replaced
 * (EXPIRE) or dropped with its key (DEL) here, but a key whose time has passed is Python's,
 * which deletes it and journals the DEL (store.py ``expire_if_due``). The time is store.py's
 * ``now_ms``: the Unix time in milliseconds from the same clock. An EXPIRE to a time not
 * after now (it deletes the key and logs a DEL) is Python's too.
 *
 * Included by _fastpath.c after its Output, Keyspace and lookup helpers (and _fast_lists.h,
 * which declares the helpers both use).
 */

#ifndef RESIDENTD_FAST_KEYS_H
#define RESIDENTD_FAST_KEYS_H

#include <limits.h>
#include <time.h>

/* store.py's now_ms(): time.time_ns() // 1_000_000. */
static long long
now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The value at ``key`` as Python would see it: sets *value (borrowed, NULL when there is
 * none) and *deadline (its absolute expiry in ms, -1 when it has none), returns 1; returns
 * 0 when the key's time has passed (Python deletes it), -1 on an error. Counts nothing. */
static int
live_value(Keyspace *db, PyObject *key, PyObject **value, long long *deadline)
{
    *deadline = -1;
    KeyEntry *entry = keytable_find(db->data, key);
    *value = entry == NULL ? NULL : entry_object(entry);
    if (*value == NULL)
        return 1;
    if (PyDict_GET_SIZE(db->expires) == 0)
        return 1;
    PyObject *when = PyDict_GetItemWithError(db->expires, key);
    if (when == NULL)
        return PyErr_Occurred() ? -1 : 1;
    *deadline = PyLong_AsLongLong(when);
    if (*deadline == -1 && PyErr_Occurred())
        return -1;
    return *deadline > now_ms();
}

/* DEL and EXISTS: how many of the keys exist. EXISTS looks them up as reads (a hit or a miss
 * each, as keys.py's ``db.get``); DEL deletes them (with their times to live) and logs its
 * request when it deleted one, as keys.py and Redis do. Any key past its time leaves the
 * whole command to Python, before anything changed or was counted. */
static int
run_del_exists(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    Py_ssize_t found = 0;
    if (argc < 2)
        return 0;
    for (Py_ssize_t i = 1; i < argc; i++) {
        PyObject *value;
        long long deadline;
        int usable = live_value(db, PyList_GET_ITEM(argv, i), &value, &deadline);
        if (usable <= 0)
            return usable;
        found += value != NULL;
    }
    if (command == EXISTS) {
        db->hits += found;
        db->misses += argc - 1 - found;
    }
    if (command == DEL && found) {
        found = 0; /* a key named twice is deleted once */
        for (Py_ssize_t i = 1; i < argc; i++) {
            PyObject *key = PyList_GET_ITEM(argv, i);
            int present = keytable_delete(db->data, key);
            if (present && drop_expiry(db->expires, key) < 0)
                return -1;
            found += present;
        }
        if (db->journal != NULL && journal_command(db->journal, argv) < 0)
            return -1;
    }
    return write_number(out, ':', found) < 0 ? -1 : 1;
}

/* TTL and PTTL: -2 for a missing key (a miss), -1 for one without a time to live, else the
 * time left, TTL's rounded to the nearest second (a hit). */
static int
run_ttl(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    PyObject *value;
    long long deadline;
    if (PyList_GET_SIZE(argv) != 2)
        return 0;
    int usable = live_value(db, PyList_GET_ITEM(argv, 1), &value, &deadline);
    if (usable <= 0)
        return usable;
    long long left = -2;
    if (value == NULL)
        db->misses++;
    else {
        db->hits++;
        left = -1;
        if (deadline >= 0) {
            left = deadline - now_ms();
            if (left < 0)
                left = 0;
            if (command == TTL)
                left = (left + 500) / 1000;
        }
    }
    return write_number(out, ':', left) < 0 ? -1 : 1;
}

/* EXPIRE and PEXPIRE ``key time``: a time of at most 18 digits that ends after now (EXPIRE's
 * within Redis's LLONG_MAX / 1000 seconds). Sets the deadline of a key that exists and logs
 * it as ``PEXPIREAT key <deadline>``, the absolute form Redis's AOF holds (persistence/aof.py
 * ``_expire``); a missing key is 0 and logs nothing. */
static int
run_expire(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    long long when;
    if (PyList_GET_SIZE(argv) != 3 || !plain_integer(PyList_GET_ITEM(argv, 2), &when) ||
        when <= 0 || (command == EXPIRE && when > LLONG_MAX / 1000))
        return 0;
    long long deadline;
    if (__builtin_mul_overflow(when, command == EXPIRE ? 1000 : 1, &deadline) ||
        __builtin_add_overflow(deadline, now_ms(), &deadline))
        return 0; /* past LLONG_MAX: Python's error */
    PyObject *key = PyList_GET_ITEM(argv, 1);
    PyObject *value;
    long long old;
    int usable = live_value(db, key, &value, &old);
    if (usable <= 0)
        return usable;
    if (value == NULL)
        return WRITE_LITERAL(out, ":0\r\n") < 0 ? -1 : 1;
    PyObject *stored = PyLong_FromLongLong(deadline);
    if (stored == NULL)
        return -1;
    int failed = PyDict_SetItem(db->expires, key, stored);
    Py_DECREF(stored);
    if (failed)
        return -1;
    if (db->journal != NULL) {
        char text[INTEGER_TEXT];
        char *start = format_integer(text, deadline);
        PyObject *logged[3] = {NULL, key, NULL};
        logged[0] = PyBytes_FromStringAndSize("PEXPIREAT", 9);
        logged[2] = PyBytes_FromStringAndSize(start, text + INTEGER_TEXT - start);
        PyObject *record = logged[0] && logged[2] ? PyList_New(3) : NULL;
        if (record != NULL) {
            for (int i = 0; i < 3; i++)
                PyList_SET_ITEM(record, i, Py_NewRef(logged[i]));
            failed = journal_command(db->journal, record);
            Py_DECREF(record);
        }
        Py_XDECREF(logged[0]);
        Py_XDECREF(logged[2]);
        if (record == NULL || failed)
            return -1;
    }
    return WRITE_LITERAL(out, ":1\r\n") < 0 ? -1 : 1;
}

#endif
