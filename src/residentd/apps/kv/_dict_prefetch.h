/* Prefetch a batch of keys' places in a CPython dict, so that their cache misses overlap.
 *
 * On a large keyspace every lookup misses the CPU cache three times, one after the other: the
 * hash table's slot, the entry it points to, then the stored key (compared) and the value
 * (read, or released when replaced). A pipeline's commands are independent, so this walks
 * all of a batch's keys through those steps in three passes, each pass issuing the
 * prefetches the next one needs: the misses of the whole batch are in flight together
 * instead of in turn. The lookups that follow (PyDict_GetItem, PyDict_SetItem) find the
 * lines in cache and the key's hash cached in its bytes object.
 *
 * It reads the dict's internal table, whose layout is CPython's own: the mirror below is that
 * of CPython 3.11 to 3.13 (Include/internal/pycore_dict.h), with the GIL. On any other
 * version, or a table of another kind, it does nothing. It only reads inside the table, and
 * prefetching is a hint: a wrong guess costs a cache line, never a result.
 */

#ifndef RESIDENTD_DICT_PREFETCH_H
#define RESIDENTD_DICT_PREFETCH_H

#include <Python.h>
#include <stdint.h>

#define PREFETCH_BATCH 64 /* keys prefetched together, at most */

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define DICT_PREFETCH 1

typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind; /* 0: DICT_KEYS_GENERAL, the only kind a dict of bytes keys has */
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[]; /* then the entries */
} DictTable;

typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} DictEntry;

/* The width of the table's slots as a shift (0: int8 ... 3: int64), or -1 when the table is
 * not one this file knows. */
static inline int
slot_shift(const DictTable *table)
{
    int shift = table->dk_log2_index_bytes - table->dk_log2_size;
    int expected = table->dk_log2_size < 8 ? 0 : table->dk_log2_size < 16 ? 1
                 : table->dk_log2_size < 32 ? 2 : 3;
    return table->dk_kind == 0 && shift == expected ? shift : -1;
}

static inline Py_ssize_t
slot_entry(const DictTable *table, int shift, size_t slot)
{
    switch (shift) {
    case 0:
        return ((const int8_t *)table->dk_indices)[slot];
    case 1:
        return ((const int16_t *)table->dk_indices)[slot];
    case 2:
        return ((const int32_t *)table->dk_indices)[slot];
    default:
        return ((const int64_t *)table->dk_indices)[slot];
    }
}

/* Prefetch the places of ``keys[0:count]`` (count <= PREFETCH_BATCH) in ``dict``. Keys that
 * are not exact bytes are skipped. */
static inline void
prefetch_dict_keys(PyObject *dict, PyObject *const *keys, Py_ssize_t count)
{
    PyDictObject *object = (PyDictObject *)dict;
    if (object->ma_values != NULL || object->ma_used < 1024)
        return; /* a split table, or one small enough to stay in cache */
    const DictTable *table = (const DictTable *)object->ma_keys;
    int shift = slot_shift(table);
    if (shift < 0)
        return;
    size_t mask = ((size_t)1 << table->dk_log2_size) - 1;
    const DictEntry *entries =
        (const DictEntry *)(table->dk_indices + ((size_t)1 << table->dk_log2_index_bytes));
    Py_hash_t hashes[PREFETCH_BATCH];
    Py_ssize_t found[PREFETCH_BATCH];
    if (count > PREFETCH_BATCH)
        count = PREFETCH_BATCH;
    for (Py_ssize_t i = 0; i < count; i++) {
        hashes[i] = -1;
        if (!PyBytes_CheckExact(keys[i]))
            continue;
        hashes[i] = PyObject_Hash(keys[i]); /* cached in the key: the lookup reuses it */
        __builtin_prefetch(table->dk_indices + (((size_t)hashes[i] & mask) << shift));
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        found[i] = hashes[i] == -1 ? -1 : slot_entry(table, shift, (size_t)hashes[i] & mask);
        if (found[i] >= 0 && found[i] < table->dk_nentries)
            __builtin_prefetch(&entries[found[i]]);
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (found[i] < 0 || found[i] >= table->dk_nentries)
            continue;
        const DictEntry *entry = &entries[found[i]];
        if (entry->me_hash == hashes[i]) {
            __builtin_prefetch(entry->me_key);
            __builtin_prefetch(entry->me_value);
        }
    }
}

#else
#define DICT_PREFETCH 0

static inline void
prefetch_dict_keys(PyObject *dict, PyObject *const *keys, Py_ssize_t count)
{
    (void)dict;
    (void)keys;
    (void)count;
}
#endif

#endif
