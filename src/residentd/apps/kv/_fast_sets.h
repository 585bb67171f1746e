/* The set commands of kv's C fast path: the plain case of SADD, SREM, SISMEMBER, SMISMEMBER,
 * SCARD and SPOP (without a count), as commands/sets.py runs them.
 *
 * A set is a Python ``set`` of bytes; the last member removed deletes its key. SADD and SREM
 * that change nothing are not journaled (persistence/aof.py's rule); SPOP is journaled as the
 * SREM of the member it popped, which it writes itself.
 *
 * SPOP picks a member at random as Redis does: it probes random slots of the set's hash table
 * (CPython's setobject.h: table, mask, used) until one holds a member, which is a uniform
 * pick. A table that many removals left under 1/16 full, or a member not found in
 * SPOP_PROBES tries, gives the member ``set.pop`` gives instead (constant time, in table
 * order), so that draining a large set stays linear: sampling.py does the same for a large
 * set. Python and C need not pop the same member, only one that was there.
 *
 * SREM is run_remove (_fast_collections.h). This file is part of _fastpath.c (included from
 * it, after _fast_collections.h).
 */

#ifndef RESIDENTD_FAST_SETS_H
#define RESIDENTD_FAST_SETS_H

#define SPOP_PROBES 64

static int
run_sadd(Keyspace *db, PyObject *argv, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (argc < 3)
        return 0;
    PyObject *members;
    int usable = create_as(db, PyList_GET_ITEM(argv, 1), &PySet_Type, &members);
    if (usable <= 0)
        return usable;
    Py_ssize_t before = PySet_GET_SIZE(members);
    for (Py_ssize_t i = 2; i < argc; i++)
        if (PySet_Add(members, PyList_GET_ITEM(argv, i)) < 0)
            return -1;
    Py_ssize_t added = PySet_GET_SIZE(members) - before;
    if (write_number(out, ':', added) < 0)
        return -1;
    return added ? 1 : 2;
}

/* SISMEMBER, SMISMEMBER and SCARD: reads, which count a hit or a miss. */
static int
run_set_read(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (command == SMISMEMBER ? argc < 3 : argc != (command == SCARD ? 2 : 3))
        return 0;
    PyObject *members;
    int usable = read_as(db, PyList_GET_ITEM(argv, 1), &PySet_Type, &members);
    if (usable <= 0)
        return usable;
    if (command == SCARD)
        return write_number(out, ':', members ? PySet_GET_SIZE(members) : 0) < 0 ? -1 : 2;
    if (command == SMISMEMBER && write_number(out, '*', argc - 2) < 0)
        return -1;
    for (Py_ssize_t i = 2; i < argc; i++) {
        int found = members == NULL ? 0 : PySet_Contains(members, PyList_GET_ITEM(argv, i));
        if (found < 0 || (found ? WRITE_LITERAL(out, ":1\r\n") : WRITE_LITERAL(out, ":0\r\n")))
            return -1;
    }
    return 2;
}

/* A member of the (non-empty) ``members`` taken out of it, as a new reference. */
static PyObject *
pop_random_member(PyObject *members)
{
    PySetObject *set = (PySetObject *)members;
    size_t slots = (size_t)set->mask + 1;
    if ((size_t)set->used * 16 >= slots) {
        for (int i = 0; i < SPOP_PROBES; i++) {
            PyObject *member = set->table[random_next() & set->mask].key;
            if (member != NULL && member != _PySet_Dummy) {
                Py_INCREF(member);
                if (PySet_Discard(members, member) < 0) {
                    Py_DECREF(member);
                    return NULL;
                }
                return member;
            }
        }
    }
    return PySet_Pop(members);
}

static int
run_spop(Keyspace *db, PyObject *argv, Output *out)
{
    if (PyList_GET_SIZE(argv) != 2)
        return 0; /* a count: Python's */
    PyObject *key = PyList_GET_ITEM(argv, 1);
    PyObject *members;
    int usable = lookup_as(db, key, &PySet_Type, &members);
    if (usable <= 0)
        return usable;
    if (members == NULL)
        return WRITE_LITERAL(out, "$-1\r\n") < 0 ? -1 : 2;
    PyObject *member = pop_random_member(members);
    if (member == NULL)
        return -1;
    if (PySet_GET_SIZE(members) == 0)
        keytable_delete(db->data, key); /* and the set with it */
    int failed = !PyBytes_CheckExact(member) || write_bulk(out, member) < 0;
    if (!failed && db->journal != NULL) /* SREM key member, as the journal holds SPOP */
        failed = WRITE_LITERAL(db->journal, "*3\r\n$4\r\nSREM\r\n") < 0 ||
                 write_bulk(db->journal, key) < 0 || write_bulk(db->journal, member) < 0;
    if (failed && !PyErr_Occurred())
        PyErr_BadInternalCall(); /* a member that is not bytes: kv never stores one */
    Py_DECREF(member);
    return failed ? -1 : 2;
}

#endif
