/* kv's keyspace table (KeyTable): the keys of one database to their values, as a dict holds
 * them, but with a short string value kept inside its entry.
 *
 * A dict of bytes to bytes costs a key 42 bytes of table at a million keys (a 24-byte entry
 * and its share of the index) plus a bytes object for the key and one for the value (48
 * bytes each for small strings: a 33-byte header in pymalloc's 16-byte classes); Redis spends
 * about 99 bytes a key. An entry here is 32 bytes: the key's hash, the key (a bytes object,
 * the same one the expiry table and every other structure naming the key hold), and 16 bytes
 * that hold either a reference to the value or, for a bytes value of at most 15 bytes, the
 * value itself. A short string key then costs its entry, its share of the index and its key
 * object: about 90 to 100 bytes at a million keys.
 *
 * The layout is CPython's compact dict: an index of 2^k int32 slots, probed as CPython probes
 * (perturbed linear congruence), pointing into a dense array of entries in insertion order,
 * with holes where keys were deleted until the next resize (which sizes the table for three
 * times the keys, as a dict grows). Keys come back in insertion order, as from a dict, so the
 * pure-Python mode (where the keyspace is a dict) lists them in the same order.
 *
 * From Python it is a mutable mapping of bytes keys: get, pop, setdefault, update, keys,
 * values and items (iterators), copy (without holes), clear, len, in, ==, and random_key (a
 * uniformly random key in constant expected time, where a dict needs a walk). Reading a short
 * string value makes a new bytes object: a value read back is equal to the one stored, not
 * the same object. Iterating while keys are added or deleted raises RuntimeError, as a dict
 * does. The fast path (_fastpath.c, which includes this file) works on entries directly:
 * keytable_find, entry_object, entry_text, keytable_set, keytable_set_text,
 * keytable_delete and keytable_prefetch.
 */

#ifndef RESIDENTD_KEYTABLE_H
#define RESIDENTD_KEYTABLE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_random.h"

#define TEXT_INLINE 15   /* the longest string value kept in its entry */
#define TEXT_MARK 0x80   /* in value.text[15]: the value is inline, its size in the low bits */
#define SLOT_EMPTY (-1)
#define SLOT_DELETED (-2)
#define TABLE_MIN_LOG2 3
#define TABLE_MAX_LOG2 30 /* int32 slots */

typedef struct {
    Py_hash_t hash;
    PyObject *key; /* NULL: a deleted entry (a hole) */
    union {
        PyObject *object;
        unsigned char text[16];
    } value;
} KeyEntry;

typedef struct {
    PyObject_HEAD
    Py_ssize_t used;   /* keys */
    Py_ssize_t filled; /* entries[0:filled] were written (keys and holes) */
    Py_ssize_t usable; /* entries allocated: two thirds of the slots */
    uint64_t changes;  /* keys added or deleted, resizes: what iterators check */
    int log2_size;
    int32_t *slots;
    KeyEntry *entries;
} KeyTable;

static PyTypeObject KeyTable_Type;

/* What entry_object gives for a value kept inline: not a type any command accepts as a
 * collection, so the fast path's type checks send such a key to Python. */
#define INLINE_TEXT Py_Ellipsis

static inline int
entry_inline(const KeyEntry *entry)
{
    return (entry->value.text[15] & TEXT_MARK) != 0;
}

/* The value as an object (borrowed), or INLINE_TEXT for a string kept in the entry. */
static inline PyObject *
entry_object(const KeyEntry *entry)
{
    return entry_inline(entry) ? INLINE_TEXT : entry->value.object;
}

/* Whether the value is a string (inline, or an exact bytes object): sets *text and *size. */
static inline int
entry_text(KeyEntry *entry, const char **text, Py_ssize_t *size)
{
    if (entry_inline(entry)) {
        *text = (const char *)entry->value.text;
        *size = entry->value.text[15] & ~TEXT_MARK;
        return 1;
    }
    PyObject *value = entry->value.object;
    if (!PyBytes_CheckExact(value))
        return 0;
    *text = PyBytes_AS_STRING(value);
    *size = PyBytes_GET_SIZE(value);
    return 1;
}

/* The value as a new reference (a new bytes object for an inline string). */
static PyObject *
entry_value(const KeyEntry *entry)
{
    if (entry_inline(entry))
        return PyBytes_FromStringAndSize((const char *)entry->value.text,
                                         entry->value.text[15] & ~TEXT_MARK);
    return Py_NewRef(entry->value.object);
}

/* Puts ``size`` bytes of ``text`` in the entry when they fit; returns whether they did. */
static inline int
entry_put_text(KeyEntry *entry, const char *text, Py_ssize_t size)
{
    if (size > TEXT_INLINE)
        return 0;
    memcpy(entry->value.text, text, (size_t)size);
    entry->value.text[15] = (unsigned char)(TEXT_MARK | size);
    return 1;
}

/* Stores ``value`` in the entry (a new reference, unless it is kept inline). */
static inline void
entry_put(KeyEntry *entry, PyObject *value)
{
    if (PyBytes_CheckExact(value) &&
        entry_put_text(entry, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)))
        return;
    entry->value.object = Py_NewRef(value);
    entry->value.text[15] = 0;
}

/* What releasing an entry's value needs: NULL for an inline string. */
static inline PyObject *
entry_held(const KeyEntry *entry)
{
    return entry_inline(entry) ? NULL : entry->value.object;
}

static inline Py_hash_t
key_hash(PyObject *key)
{
    return PyObject_Hash(key); /* bytes: cached in the object, never an error */
}

static inline int
same_key(const KeyEntry *entry, PyObject *key, Py_hash_t hash)
{
    if (entry->key == key)
        return 1;
    if (entry->hash != hash)
        return 0;
    Py_ssize_t size = PyBytes_GET_SIZE(key);
    return PyBytes_GET_SIZE(entry->key) == size &&
           memcmp(PyBytes_AS_STRING(entry->key), PyBytes_AS_STRING(key), (size_t)size) == 0;
}

/* The entry number of ``key`` (a bytes object) or -1; *slot is the slot that holds it, or
 * when it is not there the slot a new entry for it takes. */
static Py_ssize_t
table_probe(const KeyTable *table, PyObject *key, Py_hash_t hash, size_t *slot)
{
    size_t mask = ((size_t)1 << table->log2_size) - 1;
    size_t perturb = (size_t)hash;
    size_t i = (size_t)hash & mask;
    size_t free_slot = SIZE_MAX;
    for (;;) {
        int32_t at = table->slots[i];
        if (at == SLOT_EMPTY) {
            *slot = free_slot != SIZE_MAX ? free_slot : i;
            return -1;
        }
        if (at == SLOT_DELETED) {
            if (free_slot == SIZE_MAX)
                free_slot = i;
        }
        else if (same_key(&table->entries[at], key, hash)) {
            *slot = i;
            return at;
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
}

/* The entry of ``key``, or NULL (also for a key that is not bytes). */
static inline KeyEntry *
keytable_find(const KeyTable *table, PyObject *key)
{
    if (!PyBytes_Check(key))
        return NULL;
    size_t slot;
    Py_ssize_t at = table_probe(table, key, key_hash(key), &slot);
    return at < 0 ? NULL : &table->entries[at];
}

/* Puts entry number ``at`` (of hash ``hash``) in the first free slot of its probe. */
static inline void
place(int32_t *slots, int log2_size, Py_hash_t hash, Py_ssize_t at)
{
    size_t mask = ((size_t)1 << log2_size) - 1;
    size_t perturb = (size_t)hash;
    size_t i = (size_t)hash & mask;
    while (slots[i] != SLOT_EMPTY) {
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
    slots[i] = (int32_t)at;
}

/* Makes room for at least ``keys`` keys with two thirds of the slots usable, moving the
 * entries (without their holes) into new arrays. */
static int
table_resize(KeyTable *table, Py_ssize_t keys)
{
    int log2_size = TABLE_MIN_LOG2;
    while (log2_size <= TABLE_MAX_LOG2 && (((Py_ssize_t)1 << log2_size) * 2) / 3 < keys)
        log2_size++;
    if (log2_size > TABLE_MAX_LOG2) {
        PyErr_NoMemory();
        return -1;
    }
    size_t size = (size_t)1 << log2_size;
    Py_ssize_t usable = (Py_ssize_t)(size * 2 / 3);
    int32_t *slots = PyMem_Malloc(size * sizeof(int32_t));
    KeyEntry *entries = PyMem_Malloc((size_t)usable * sizeof(KeyEntry));
    if (slots == NULL || entries == NULL) {
        PyMem_Free(slots);
        PyMem_Free(entries);
        PyErr_NoMemory();
        return -1;
    }
    memset(slots, 0xff, size * sizeof(int32_t)); /* SLOT_EMPTY */
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < table->filled; i++) {
        if (table->entries[i].key == NULL)
            continue;
        entries[count] = table->entries[i];
        place(slots, log2_size, entries[count].hash, count);
        count++;
    }
    PyMem_Free(table->slots);
    PyMem_Free(table->entries);
    table->slots = slots;
    table->entries = entries;
    table->log2_size = log2_size;
    table->usable = usable;
    table->filled = count;
    table->changes++;
    return 0;
}

/* A new entry for ``key`` (absent, at ``slot`` of its probe), its value not yet stored. */
static KeyEntry *
table_append(KeyTable *table, PyObject *key, Py_hash_t hash, size_t slot)
{
    if (table->filled >= table->usable) {
        if (table_resize(table, table->used * 2) < 0) /* slots for 3x the keys, as a dict */
            return NULL;
        table_probe(table, key, hash, &slot);
    }
    KeyEntry *entry = &table->entries[table->filled];
    table->slots[slot] = (int32_t)table->filled;
    table->filled++;
    table->used++;
    table->changes++;
    entry->hash = hash;
    entry->key = Py_NewRef(key);
    return entry;
}

static int
check_key(PyObject *key)
{
    if (PyBytes_Check(key))
        return 0;
    PyErr_Format(PyExc_TypeError, "keyspace keys are bytes, not %.100s", Py_TYPE(key)->tp_name);
    return -1;
}

/* The entry ``key`` is stored in: its own, or a new one appended for it (NULL, with an
 * exception, when the key is not bytes or the table cannot grow). *old is the value the entry
 * holds, to release once the new one is stored (NULL for a new entry or an inline string). */
static KeyEntry *
entry_for(KeyTable *table, PyObject *key, PyObject **old)
{
    *old = NULL;
    if (check_key(key) < 0)
        return NULL;
    Py_hash_t hash = key_hash(key);
    size_t slot;
    Py_ssize_t at = table_probe(table, key, hash, &slot);
    if (at < 0)
        return table_append(table, key, hash, slot);
    *old = entry_held(&table->entries[at]);
    return &table->entries[at];
}

/* table[key] = value: 0, or -1 with an exception. */
static int
keytable_set(KeyTable *table, PyObject *key, PyObject *value)
{
    PyObject *old;
    KeyEntry *entry = entry_for(table, key, &old);
    if (entry == NULL)
        return -1;
    entry_put(entry, value);
    Py_XDECREF(old);
    return 0;
}

/* table[key] = the string ``text``, made a bytes object only when it is too long to keep in
 * the entry. */
static int
keytable_set_text(KeyTable *table, PyObject *key, const char *text, Py_ssize_t size)
{
    if (size > TEXT_INLINE) {
        PyObject *value = PyBytes_FromStringAndSize(text, size);
        if (value == NULL)
            return -1;
        int failed = keytable_set(table, key, value);
        Py_DECREF(value);
        return failed;
    }
    PyObject *old;
    KeyEntry *entry = entry_for(table, key, &old);
    if (entry == NULL)
        return -1;
    entry_put_text(entry, text, size);
    Py_XDECREF(old);
    return 0;
}

/* Deletes entry number ``at`` found at ``slot``. */
static void
table_delete_at(KeyTable *table, size_t slot, Py_ssize_t at)
{
    KeyEntry *entry = &table->entries[at];
    PyObject *key = entry->key, *value = entry_held(entry);
    table->slots[slot] = SLOT_DELETED;
    entry->key = NULL;
    table->used--;
    table->changes++;
    Py_DECREF(key);
    Py_XDECREF(value);
}

/* del table[key]: 1 when it was there, 0 when not. */
static int
keytable_delete(KeyTable *table, PyObject *key)
{
    if (!PyBytes_Check(key))
        return 0;
    size_t slot;
    Py_ssize_t at = table_probe(table, key, key_hash(key), &slot);
    if (at < 0)
        return 0;
    table_delete_at(table, slot, at);
    return 1;
}

/* Prefetch the places of ``keys[0:count]`` in the table, so that a pipeline's cache misses
 * overlap (as _dict_prefetch.h does for a dict): the slots, then the entries, then the keys
 * the entries hold (compared) and the values they point to. */
static void
keytable_prefetch(const KeyTable *table, PyObject *const *keys, Py_ssize_t count)
{
    if (table->used < 1024)
        return; /* small enough to stay in cache */
    size_t mask = ((size_t)1 << table->log2_size) - 1;
    Py_hash_t hashes[64];
    int32_t found[64];
    if (count > 64)
        count = 64;
    for (Py_ssize_t i = 0; i < count; i++) {
        hashes[i] = -1;
        if (!PyBytes_CheckExact(keys[i]))
            continue;
        hashes[i] = key_hash(keys[i]);
        __builtin_prefetch(&table->slots[(size_t)hashes[i] & mask]);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        found[i] = hashes[i] == -1 ? SLOT_EMPTY : table->slots[(size_t)hashes[i] & mask];
        if (found[i] >= 0)
            __builtin_prefetch(&table->entries[found[i]]);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (found[i] < 0)
            continue;
        const KeyEntry *entry = &table->entries[found[i]];
        if (entry->hash == hashes[i]) {
            __builtin_prefetch(entry->key);
            if (!entry_inline(entry))
                __builtin_prefetch(entry->value.object);
        }
    }
}

/* -- the Python type -------------------------------------------------------------------------- */

static void
table_release(KeyTable *table)
{
    KeyEntry *entries = table->entries;
    Py_ssize_t filled = table->filled;
    int32_t *slots = table->slots;
    table->entries = NULL;
    table->slots = NULL;
    table->filled = table->used = table->usable = 0;
    table->changes++;
    for (Py_ssize_t i = 0; i < filled; i++) {
        if (entries[i].key == NULL)
            continue;
        Py_DECREF(entries[i].key);
        Py_XDECREF(entry_held(&entries[i]));
    }
    PyMem_Free(entries);
    PyMem_Free(slots);
}

static int
table_empty(KeyTable *table)
{
    table->log2_size = TABLE_MIN_LOG2;
    table->usable = ((1 << TABLE_MIN_LOG2) * 2) / 3;
    table->slots = PyMem_Malloc(sizeof(int32_t) << TABLE_MIN_LOG2);
    table->entries = PyMem_Malloc(sizeof(KeyEntry) * (size_t)table->usable);
    if (table->slots == NULL || table->entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(table->slots, 0xff, sizeof(int32_t) << TABLE_MIN_LOG2);
    table->used = table->filled = 0;
    return 0;
}

static PyObject *table_update(KeyTable *table, PyObject *other);

static PyObject *
table_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *initial = NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs))
        return PyErr_Format(PyExc_TypeError, "KeyTable() takes no keyword arguments");
    if (!PyArg_UnpackTuple(args, "KeyTable", 0, 1, &initial))
        return NULL;
    KeyTable *table = (KeyTable *)type->tp_alloc(type, 0);
    if (table == NULL)
        return NULL;
    if (table_empty(table) < 0) {
        Py_DECREF(table);
        return NULL;
    }
    if (initial != NULL) {
        PyObject *done = table_update(table, initial);
        if (done == NULL) {
            Py_DECREF(table);
            return NULL;
        }
        Py_DECREF(done);
    }
    return (PyObject *)table;
}

static void
table_dealloc(KeyTable *table)
{
    table_release(table);
    Py_TYPE(table)->tp_free((PyObject *)table);
}

static Py_ssize_t
table_length(KeyTable *table)
{
    return table->used;
}

static PyObject *
table_subscript(KeyTable *table, PyObject *key)
{
    KeyEntry *entry = keytable_find(table, key);
    if (entry == NULL) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return entry_value(entry);
}

static int
table_ass_subscript(KeyTable *table, PyObject *key, PyObject *value)
{
    if (value != NULL)
        return keytable_set(table, key, value);
    if (keytable_delete(table, key))
        return 0;
    PyErr_SetObject(PyExc_KeyError, key);
    return -1;
}

static int
table_contains(KeyTable *table, PyObject *key)
{
    return keytable_find(table, key) != NULL;
}

/* Whether a method given ``nargs`` arguments has one or two; sets TypeError when not. */
static int
one_or_two(const char *name, Py_ssize_t nargs)
{
    if (nargs == 1 || nargs == 2)
        return 1;
    PyErr_Format(PyExc_TypeError, "%s expected 1 or 2 arguments, got %zd", name, nargs);
    return 0;
}

static PyObject *
table_get(KeyTable *table, PyObject *const *args, Py_ssize_t nargs)
{
    if (!one_or_two("get", nargs))
        return NULL;
    KeyEntry *entry = keytable_find(table, args[0]);
    if (entry != NULL)
        return entry_value(entry);
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

static PyObject *
table_pop(KeyTable *table, PyObject *const *args, Py_ssize_t nargs)
{
    if (!one_or_two("pop", nargs))
        return NULL;
    PyObject *key = args[0];
    if (PyBytes_Check(key)) {
        size_t slot;
        Py_ssize_t at = table_probe(table, key, key_hash(key), &slot);
        if (at >= 0) {
            PyObject *value = entry_value(&table->entries[at]);
            if (value != NULL)
                table_delete_at(table, slot, at);
            return value;
        }
    }
    if (nargs == 2)
        return Py_NewRef(args[1]);
    PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static PyObject *
table_setdefault(KeyTable *table, PyObject *const *args, Py_ssize_t nargs)
{
    if (!one_or_two("setdefault", nargs))
        return NULL;
    KeyEntry *entry = keytable_find(table, args[0]);
    if (entry != NULL)
        return entry_value(entry);
    PyObject *value = nargs == 2 ? args[1] : Py_None;
    return keytable_set(table, args[0], value) < 0 ? NULL : Py_NewRef(value);
}

/* update(other): a mapping (anything with ``keys``) or an iterable of pairs. */
static PyObject *
table_update(KeyTable *table, PyObject *other)
{
    PyObject *items;
    if (PyDict_Check(other) || Py_TYPE(other) == &KeyTable_Type ||
        PyObject_HasAttrString(other, "keys")) {
        PyObject *keys = PyObject_CallMethod(other, "keys", NULL);
        if (keys == NULL)
            return NULL;
        PyObject *iterator = PyObject_GetIter(keys);
        Py_DECREF(keys);
        if (iterator == NULL)
            return NULL;
        PyObject *key;
        while ((key = PyIter_Next(iterator)) != NULL) {
            PyObject *value = PyObject_GetItem(other, key);
            int failed = value == NULL || keytable_set(table, key, value) < 0;
            Py_DECREF(key);
            Py_XDECREF(value);
            if (failed) {
                Py_DECREF(iterator);
                return NULL;
            }
        }
        Py_DECREF(iterator);
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    items = PyObject_GetIter(other);
    if (items == NULL)
        return NULL;
    PyObject *pair;
    while ((pair = PyIter_Next(items)) != NULL) {
        PyObject *fast = PySequence_Fast(pair, "KeyTable.update() takes pairs");
        Py_DECREF(pair);
        int failed = fast == NULL;
        if (!failed && PySequence_Fast_GET_SIZE(fast) != 2) {
            PyErr_SetString(PyExc_ValueError, "KeyTable.update() takes pairs");
            failed = 1;
        }
        if (!failed)
            failed = keytable_set(table, PySequence_Fast_GET_ITEM(fast, 0),
                                  PySequence_Fast_GET_ITEM(fast, 1)) < 0;
        Py_XDECREF(fast);
        if (failed) {
            Py_DECREF(items);
            return NULL;
        }
    }
    Py_DECREF(items);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

static PyObject *
table_clear(KeyTable *table, PyObject *unused)
{
    (void)unused;
    table_release(table);
    return table_empty(table) < 0 ? NULL : Py_NewRef(Py_None);
}

/* copy(): the same keys and values in a table without holes. */
static PyObject *
table_copy(KeyTable *table, PyObject *unused)
{
    (void)unused;
    KeyTable *copy = (KeyTable *)KeyTable_Type.tp_alloc(&KeyTable_Type, 0);
    if (copy == NULL)
        return NULL;
    if (table_empty(copy) < 0 || table_resize(copy, table->used) < 0) {
        Py_DECREF(copy);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < table->filled; i++) {
        KeyEntry *entry = &table->entries[i];
        if (entry->key == NULL)
            continue;
        KeyEntry *target = &copy->entries[copy->filled];
        *target = *entry;
        Py_INCREF(target->key);
        Py_XINCREF(entry_held(target));
        place(copy->slots, copy->log2_size, target->hash, copy->filled);
        copy->filled++;
        copy->used++;
    }
    return (PyObject *)copy;
}

/* random_key(): a key picked uniformly at random, or None when there is none. It probes
 * random entries (each key as likely as any other): unless deletions left the entries mostly
 * holes (they stay until the next resize), one of the 64 probes finds a key; else it walks to
 * a random key, as a pick from a dict must. */
static PyObject *
table_random_key(KeyTable *table, PyObject *unused)
{
    (void)unused;
    if (table->used == 0)
        Py_RETURN_NONE;
    for (int probe = 0; probe < 64; probe++) {
        KeyEntry *entry = &table->entries[random_next() % (uint64_t)table->filled];
        if (entry->key != NULL)
            return Py_NewRef(entry->key);
    }
    Py_ssize_t skip = (Py_ssize_t)(random_next() % (uint64_t)table->used);
    for (Py_ssize_t i = 0; i < table->filled; i++)
        if (table->entries[i].key != NULL && skip-- == 0)
            return Py_NewRef(table->entries[i].key);
    Py_RETURN_NONE; /* not reached: used counts the keys */
}

/* -- iteration -------------------------------------------------------------------------------- */

enum table_view { VIEW_KEYS, VIEW_VALUES, VIEW_ITEMS };

typedef struct {
    PyObject_HEAD
    KeyTable *table;
    Py_ssize_t position;
    Py_ssize_t left;
    uint64_t changes;
    enum table_view view;
} TableIterator;

static PyTypeObject TableIterator_Type;

static PyObject *
table_iterate(KeyTable *table, enum table_view view)
{
    TableIterator *iterator = PyObject_New(TableIterator, &TableIterator_Type);
    if (iterator == NULL)
        return NULL;
    iterator->table = (KeyTable *)Py_NewRef(table);
    iterator->position = 0;
    iterator->left = table->used;
    iterator->changes = table->changes;
    iterator->view = view;
    return (PyObject *)iterator;
}

static PyObject *
table_iter(KeyTable *table)
{
    return table_iterate(table, VIEW_KEYS);
}

static PyObject *
table_keys(KeyTable *table, PyObject *unused)
{
    (void)unused;
    return table_iterate(table, VIEW_KEYS);
}

static PyObject *
table_values(KeyTable *table, PyObject *unused)
{
    (void)unused;
    return table_iterate(table, VIEW_VALUES);
}

static PyObject *
table_items(KeyTable *table, PyObject *unused)
{
    (void)unused;
    return table_iterate(table, VIEW_ITEMS);
}

static void
iterator_dealloc(TableIterator *iterator)
{
    Py_XDECREF(iterator->table);
    PyObject_Free(iterator);
}

static PyObject *
iterator_next(TableIterator *iterator)
{
    KeyTable *table = iterator->table;
    if (table == NULL)
        return NULL;
    if (table->changes != iterator->changes) {
        PyErr_SetString(PyExc_RuntimeError, "keyspace changed size during iteration");
        return NULL;
    }
    while (iterator->position < table->filled && table->entries[iterator->position].key == NULL)
        iterator->position++;
    if (iterator->position >= table->filled) {
        iterator->table = NULL;
        Py_DECREF(table);
        return NULL;
    }
    KeyEntry *entry = &table->entries[iterator->position++];
    iterator->left--;
    if (iterator->view == VIEW_KEYS)
        return Py_NewRef(entry->key);
    PyObject *value = entry_value(entry);
    if (value == NULL || iterator->view == VIEW_VALUES)
        return value;
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, Py_NewRef(entry->key));
    PyTuple_SET_ITEM(pair, 1, value);
    return pair;
}

static PyObject *
iterator_length_hint(TableIterator *iterator, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSsize_t(iterator->table == NULL ? 0 : Py_MAX(iterator->left, 0));
}

static PyMethodDef iterator_methods[] = {
    {"__length_hint__", (PyCFunction)iterator_length_hint, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableIterator_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "residentd.apps.kv._fastpath.KeyTableIterator",
    .tp_basicsize = sizeof(TableIterator),
    .tp_dealloc = (destructor)iterator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)iterator_next,
    .tp_methods = iterator_methods,
};

/* == and != with a dict or another KeyTable: the same keys with equal values. */
static PyObject *
table_richcompare(KeyTable *table, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE) ||
        !(PyDict_Check(other) || Py_TYPE(other) == &KeyTable_Type))
        Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t size = PyObject_Length(other);
    if (size < 0)
        return NULL;
    int equal = size == table->used;
    for (Py_ssize_t i = 0; equal && i < table->filled; i++) {
        KeyEntry *entry = &table->entries[i];
        if (entry->key == NULL)
            continue;
        PyObject *mine = entry_value(entry);
        if (mine == NULL)
            return NULL;
        PyObject *theirs = PyObject_GetItem(other, entry->key);
        if (theirs == NULL) {
            Py_DECREF(mine);
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                return NULL;
            PyErr_Clear();
            equal = 0;
            break;
        }
        equal = PyObject_RichCompareBool(mine, theirs, Py_EQ);
        Py_DECREF(mine);
        Py_DECREF(theirs);
        if (equal < 0)
            return NULL;
    }
    return PyBool_FromLong(op == Py_EQ ? equal : !equal);
}

static PyObject *
table_repr(KeyTable *table)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < table->filled; i++) {
        KeyEntry *entry = &table->entries[i];
        if (entry->key == NULL)
            continue;
        PyObject *value = entry_value(entry);
        int failed = value == NULL || PyDict_SetItem(dict, entry->key, value) < 0;
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    PyObject *repr = PyUnicode_FromFormat("KeyTable(%R)", dict);
    Py_DECREF(dict);
    return repr;
}

static PyMappingMethods table_as_mapping = {
    .mp_length = (lenfunc)table_length,
    .mp_subscript = (binaryfunc)table_subscript,
    .mp_ass_subscript = (objobjargproc)table_ass_subscript,
};

static PySequenceMethods table_as_sequence = {
    .sq_contains = (objobjproc)table_contains,
};

static PyMethodDef table_methods[] = {
    {"get", (PyCFunction)(void (*)(void))table_get, METH_FASTCALL, NULL},
    {"pop", (PyCFunction)(void (*)(void))table_pop, METH_FASTCALL, NULL},
    {"setdefault", (PyCFunction)(void (*)(void))table_setdefault, METH_FASTCALL, NULL},
    {"update", (PyCFunction)table_update, METH_O, NULL},
    {"clear", (PyCFunction)table_clear, METH_NOARGS, NULL},
    {"copy", (PyCFunction)table_copy, METH_NOARGS, NULL},
    {"keys", (PyCFunction)table_keys, METH_NOARGS, NULL},
    {"values", (PyCFunction)table_values, METH_NOARGS, NULL},
    {"items", (PyCFunction)table_items, METH_NOARGS, NULL},
    {"random_key", (PyCFunction)table_random_key, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject KeyTable_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "residentd.apps.kv._fastpath.KeyTable",
    .tp_doc = "kv's keyspace table: bytes keys to values, short strings kept in the entries.",
    .tp_basicsize = sizeof(KeyTable),
    .tp_dealloc = (destructor)table_dealloc,
    .tp_repr = (reprfunc)table_repr,
    .tp_as_sequence = &table_as_sequence,
    .tp_as_mapping = &table_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_MAPPING,
    .tp_richcompare = (richcmpfunc)table_richcompare,
    .tp_iter = (getiterfunc)table_iter,
    .tp_methods = table_methods,
    .tp_new = table_new,
};

#endif
