/* What kv's C fast path shares between the commands of sets and hashes (_fast_sets.h,
 * _fast_hashes.h): the lookup of a value of one type, for a read (which counts a hit or a
 * miss) or a write that creates it; SREM and HDEL, which differ only in the call that removes
 * one element; and the prefetch of the members and fields a batch of their commands names.
 *
 * This file is part of _fastpath.c (included from it, after Keyspace, Output, lookup and the
 * command names).
 */

#ifndef RESIDENTD_FAST_COLLECTIONS_H
#define RESIDENTD_FAST_COLLECTIONS_H

/* As lookup, for a command of one type: also 0 when the value is of another (WRONGTYPE, in
 * Python's words). */
static int
lookup_as(Keyspace *db, PyObject *key, PyTypeObject *type, PyObject **value)
{
    int usable = lookup(db, key, value);
    return usable == 1 && *value != NULL && Py_TYPE(*value) != type ? 0 : usable;
}

/* As lookup_as, for a read: counts a hit, or a miss when there is no value. */
static int
read_as(Keyspace *db, PyObject *key, PyTypeObject *type, PyObject **value)
{
    int usable = lookup_as(db, key, type, value);
    if (usable == 1 && *value == NULL)
        db->misses++;
    else if (usable == 1)
        db->hits++;
    return usable;
}

/* As lookup_as, for a write that creates its value: an empty ``type`` (set, dict) is stored
 * when there is none, so *value is never NULL when it returns 1. */
static int
create_as(Keyspace *db, PyObject *key, PyTypeObject *type, PyObject **value)
{
    int usable = lookup_as(db, key, type, value);
    if (usable <= 0 || *value != NULL)
        return usable;
    *value = PyObject_CallNoArgs((PyObject *)type);
    if (*value == NULL)
        return -1;
    int failed = keytable_set(db->data, key, *value);
    Py_DECREF(*value); /* the table holds it */
    return failed ? -1 : 1;
}


/* Removes ``item`` from the set or hash ``collection``: 1 if it was there, 0 if not, -1 on an
 * error. */
static int
remove_item(PyObject *collection, PyObject *item)
{
    if (Py_TYPE(collection) == &PySet_Type)
        return PySet_Discard(collection, item);
    int found = PyDict_Contains(collection, item);
    return found <= 0 ? found : (PyDict_DelItem(collection, item) < 0 ? -1 : 1);
}

/* SREM and HDEL: remove argv[2:] from the set or hash at argv[1], deleting an emptied one, and
 * answer how many were there. One that removed nothing is not journaled. */
static int
run_remove(Keyspace *db, PyObject *argv, PyTypeObject *type, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (argc < 3)
        return 0;
    PyObject *key = PyList_GET_ITEM(argv, 1);
    PyObject *collection;
    int usable = lookup_as(db, key, type, &collection);
    if (usable <= 0)
        return usable;
    Py_ssize_t removed = 0;
    if (collection != NULL) {
        for (Py_ssize_t i = 2; i < argc; i++) {
            int found = remove_item(collection, PyList_GET_ITEM(argv, i));
            if (found < 0)
                return -1;
            removed += found;
        }
        if (PyObject_Length(collection) == 0)
            keytable_delete(db->data, key); /* lookup_as vouched: no time to live */
    }
    if (write_number(out, ':', removed) < 0)
        return -1;
    return removed ? 1 : 2;
}

/* Prefetch the places of ``members[0:count]`` in the set ``set``, as prefetch_dict_keys does
 * in a dict (_dict_prefetch.h): the table's slot first, then the member stored there, which
 * the lookup compares. A small set stays in cache: nothing to do. */
static void
prefetch_set_members(PyObject *set, PyObject *const *members, Py_ssize_t count)
{
    PySetObject *object = (PySetObject *)set;
    if (object->used < 1024)
        return;
    Py_hash_t hashes[PREFETCH_BATCH];
    if (count > PREFETCH_BATCH)
        count = PREFETCH_BATCH;
    for (Py_ssize_t i = 0; i < count; i++) {
        hashes[i] = PyBytes_CheckExact(members[i]) ? PyObject_Hash(members[i]) : -1;
        if (hashes[i] != -1)
            __builtin_prefetch(&object->table[(size_t)hashes[i] & (size_t)object->mask]);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (hashes[i] == -1)
            continue;
        const setentry *entry = &object->table[(size_t)hashes[i] & (size_t)object->mask];
        if (entry->hash == hashes[i] && entry->key != NULL)
            __builtin_prefetch(entry->key);
    }
}

/* With the keys of a batch in cache (plan_batch), prefetch the places of the members and
 * fields its set and hash commands name in their sets and hashes: on a large set or hash,
 * each lookup in it misses the cache too. Commands in a row on one set or hash (a pipeline
 * of SADDs to one key) have their members prefetched together. */
static void
prefetch_members(KeyTable *data, PyObject *commands, Py_ssize_t start, Py_ssize_t end,
                 const enum command *commands_named)
{
    PyObject *members[PREFETCH_BATCH];
    PyObject *target = NULL;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = start; i <= end; i++) {
        PyObject *value = NULL, *argv = NULL;
        enum command command = i < end ? commands_named[i - start] : UNKNOWN;
        int hash_command = command == HSET || command == HGET || command == HEXISTS ||
                           command == HDEL || command == HMGET || command == HINCRBY;
        int set_command = command == SADD || command == SREM || command == SISMEMBER ||
                          command == SMISMEMBER;
        if (hash_command || set_command) {
            argv = PyList_GET_ITEM(commands, i);
            KeyEntry *entry = PyList_GET_SIZE(argv) >= 3
                                  ? keytable_find(data, PyList_GET_ITEM(argv, 1))
                                  : NULL;
            value = entry == NULL ? NULL : entry_object(entry);
        }
        if (value != NULL && Py_TYPE(value) != (hash_command ? &PyDict_Type : &PySet_Type))
            value = NULL;
        if (count > 0 && (value != target || count == PREFETCH_BATCH)) {
            if (PyDict_CheckExact(target))
                prefetch_dict_keys(target, members, count);
            else
                prefetch_set_members(target, members, count);
            count = 0;
        }
        if (value == NULL)
            continue;
        target = value;
        Py_ssize_t argc = PyList_GET_SIZE(argv), step = command == HSET ? 2 : 1;
        for (Py_ssize_t k = 2; k < argc && count < PREFETCH_BATCH; k += step)
            members[count++] = PyList_GET_ITEM(argv, k);
    }
}


#endif
