/* The sorted set commands of kv's C fast path (included by _fastpath.c, after its helpers):
 * ZADD in its plain form (score member pairs, no options), ZINCRBY, ZSCORE, ZRANK, ZREVRANK,
 * ZCARD, ZPOPMIN and ZPOPMAX. They change a SortedSet (zset.py) as its methods do: the
 * ``scores`` dict, and the ``order`` tree through _zorder.c's capsule (_zorder.h),
 * including the switch to ``big`` and the -0 rule of SortedSet.add. ZSCAN's ``marks`` name
 * entries by value and are found again by bisecting, so adds and removes leave them be.
 *
 * A score is taken here only in its plain decimal form (an optional sign, digits and a
 * point, no exponent), which converts exactly as Redis's strtod; anything else (inf, hex,
 * exponents, spaces, what is not a number) goes to Python, which parses or refuses it
 * (zscores.py). Replies format scores as zscores.reply_score does (``%.17g``, ``inf``).
 *
 * SortedSet's slots are read in place (their offsets are taken once), and a batch's lookups
 * of members in one key's ``scores`` are prefetched together (prefetch_zset_members).
 *
 * The loop journals ZADD and ZINCRBY as requested; a pop logs itself (Keyspace.journal) when
 * it took something, as persistence/aof.py logs it. Without _zorder (not built) these are all
 * left to Python.
 *
 * Included by _fastpath.c after its Output, Keyspace and lookup helpers. */

#ifndef RESIDENTD_FAST_ZSETS_H
#define RESIDENTD_FAST_ZSETS_H

#include "_zorder.h"
#include "structmember.h"

static int journal_command(Output *journal, PyObject *argv); /* _fastpath.c */

static const ZOrderAPI *zorder; /* NULL: the sorted set commands are Python's */
static PyObject *sorted_set_type, *str_big;
/* Where SortedSet's slots (``__slots__``) sit in an instance: read there directly. */
static Py_ssize_t scores_slot, order_slot, big_slot;

#define ZSET_MAX_LISTPACK_ENTRIES 128 /* zset.py's MAX_LISTPACK_ENTRIES */
#define ZSET_MAX_LISTPACK_VALUE 64    /* zset.py's MAX_LISTPACK_VALUE */
#define PLAIN_SCORE_DIGITS 40         /* no overflow, no underflow to zero */
#define EXACT_INTEGER_DIGITS 15       /* an integer a double holds exactly */

/* The offset of SortedSet's slot ``name``: 1, or 0 if it is not a plain object slot. */
static int
slot_offset(const char *name, Py_ssize_t *offset)
{
    PyObject *descriptor = PyObject_GetAttrString(sorted_set_type, name);
    if (descriptor == NULL)
        return -1;
    int found = Py_IS_TYPE(descriptor, &PyMemberDescr_Type) &&
                ((PyMemberDescrObject *)descriptor)->d_member->type == T_OBJECT_EX;
    if (found)
        *offset = ((PyMemberDescrObject *)descriptor)->d_member->offset;
    Py_DECREF(descriptor);
    return found;
}

/* Fetches what the sorted set commands need; their absence leaves them to Python. */
static int
fast_zsets_init(void)
{
    str_big = PyUnicode_InternFromString("big");
    if (str_big == NULL)
        return -1;
    /* Not PyCapsule_Import, which follows attributes from the top package: this runs while
     * residentd.apps.kv is still being imported, before it is an attribute of its parent. */
    PyObject *capsule = import_attribute("residentd.apps.kv._zorder", "API");
    const ZOrderAPI *api = capsule == NULL ? NULL : PyCapsule_GetPointer(capsule, ZORDER_CAPSULE);
    Py_XDECREF(capsule); /* the module keeps it */
    if (api == NULL) {
        PyErr_Clear();
        return 0;
    }
    sorted_set_type = import_attribute("residentd.apps.kv.zset", "SortedSet");
    if (sorted_set_type == NULL)
        return -1;
    int slots = slot_offset("scores", &scores_slot);
    if (slots > 0)
        slots = slot_offset("order", &order_slot);
    if (slots > 0)
        slots = slot_offset("big", &big_slot);
    if (slots > 0)
        zorder = api;
    return slots < 0 ? -1 : 0;
}

/* SortedSet's slot at ``offset`` in ``zset`` (borrowed; NULL if unset). */
static inline PyObject *
slot(PyObject *zset, Py_ssize_t offset)
{
    return *(PyObject **)((char *)zset + offset);
}

/* A score in plain decimal ("12", "-0.5", "+3.", ".25"): returns 1 and sets *score, or 0. */
static int
plain_score(PyObject *text, double *score)
{
    if (!PyBytes_CheckExact(text))
        return 0;
    const char *p = PyBytes_AS_STRING(text);
    Py_ssize_t size = PyBytes_GET_SIZE(text);
    if (size == 0 || size > PLAIN_SCORE_DIGITS)
        return 0;
    Py_ssize_t i = p[0] == '-' || p[0] == '+';
    int digits = 0, points = 0;
    for (; i < size; i++) {
        if (p[i] >= '0' && p[i] <= '9')
            digits++;
        else if (p[i] == '.' && points++ == 0)
            continue;
        else
            return 0;
    }
    if (digits == 0)
        return 0;
    if (points == 0 && digits <= EXACT_INTEGER_DIGITS) { /* exact as a double: no strtod */
        long long magnitude = 0;
        for (i = p[0] == '-' || p[0] == '+'; i < size; i++)
            magnitude = magnitude * 10 + (p[i] - '0');
        *score = p[0] == '-' ? -(double)magnitude : (double)magnitude; /* "-0" is -0.0 */
        return 1;
    }
    *score = PyOS_string_to_double(p, NULL, NULL);
    if (*score == -1.0 && PyErr_Occurred()) { /* not expected of what passed above */
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* A score as a RESP2 bulk string, as zscores.reply_score writes it. */
static int
write_score(Output *out, double score)
{
    if (isinf(score))
        return score > 0 ? WRITE_LITERAL(out, "$3\r\ninf\r\n")
                         : WRITE_LITERAL(out, "$4\r\n-inf\r\n");
    char text[INTEGER_TEXT], *formatted = NULL;
    const char *digits;
    Py_ssize_t length;
    if (fabs(score) < 1e15 && score == (double)(long long)score &&
        !(score == 0 && signbit(score))) { /* at most 15 digits: %.17g writes just those */
        digits = format_integer(text, (long long)score);
        length = text + INTEGER_TEXT - digits;
    }
    else {
        digits = formatted = PyOS_double_to_string(score, 'g', 17, 0, NULL);
        if (formatted == NULL)
            return -1;
        length = (Py_ssize_t)strlen(formatted);
    }
    int failed = write_number(out, '$', length) < 0 || write_raw(out, digits, length) < 0 ||
                 WRITE_LITERAL(out, "\r\n") < 0;
    PyMem_Free(formatted);
    return failed ? -1 : 0;
}

/* A sorted set's parts, borrowed from it: nothing this file runs can replace them. */
typedef struct {
    PyObject *scores; /* dict: member -> float */
    PyObject *order;  /* ZOrder */
} ZsetParts;

/* The parts of ``value`` if it is a SortedSet this file can change: 1, or 0 (Python
 * decides: another type). */
static int
zset_parts(PyObject *value, ZsetParts *parts)
{
    if (Py_TYPE(value) != (PyTypeObject *)sorted_set_type)
        return 0;
    parts->scores = slot(value, scores_slot);
    parts->order = slot(value, order_slot);
    return parts->scores != NULL && PyDict_CheckExact(parts->scores) && parts->order != NULL &&
           Py_TYPE(parts->order) == zorder->type;
}

/* The sorted set at ``key`` for a read, counted as a hit or a miss as Keyspace.get counts
 * it: 1 with *found set (0 when there is none), 0 when Python must decide, -1 on an error. */
static int
read_zset(Keyspace *db, PyObject *key, ZsetParts *parts, int *found)
{
    PyObject *value;
    *found = 0;
    int usable = lookup(db, key, &value);
    if (usable <= 0)
        return usable;
    if (value == NULL) {
        db->misses++;
        return 1;
    }
    if (!zset_parts(value, parts))
        return 0;
    db->hits++;
    *found = 1;
    return 1;
}

/* The score stored for ``member``: 1 and *score, 0 when it is not there, -1 on an error. */
static int
stored_score(PyObject *scores, PyObject *member, double *score)
{
    PyObject *value = PyDict_GetItemWithError(scores, member);
    if (value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (PyFloat_CheckExact(value)) {
        *score = PyFloat_AS_DOUBLE(value);
        return 1;
    }
    *score = PyFloat_AsDouble(value);
    return *score == -1.0 && PyErr_Occurred() ? -1 : 1;
}

/* SortedSet.add(member, score): insert or move ``member``; ``*big`` is the set's ``big``,
 * which this sets (here and on the set) when the set outgrows a listpack. Returns 1 when the
 * member is new, 0 when it was there, -1 on an error. */
static int
zset_add(PyObject *zset, ZsetParts *parts, int *big, PyObject *member, double score)
{
    double old;
    int present = stored_score(parts->scores, member, &old);
    if (present < 0)
        return -1;
    if (present) {
        if (old == score)
            return 0;
        zorder->remove(parts->order, old, member);
    }
    else if (!*big && (PyDict_GET_SIZE(parts->scores) >= ZSET_MAX_LISTPACK_ENTRIES ||
                       PyBytes_GET_SIZE(member) > ZSET_MAX_LISTPACK_VALUE)) {
        if (PyObject_SetAttr(zset, str_big, Py_True) < 0)
            return -1;
        *big = 1;
    }
    if (score == 0 && !*big)
        score = 0.0; /* a listpack has no -0 */
    PyObject *value = PyFloat_FromDouble(score);
    if (value == NULL)
        return -1;
    int failed = PyDict_SetItem(parts->scores, member, value);
    Py_DECREF(value);
    if (failed || zorder->insert(parts->order, score, member) < 0)
        return -1;
    return !present;
}

/* The sorted set at ``key`` for ZADD and ZINCRBY, created empty when there is none (as
 * commands/common.py's create does): 1 with ``parts``, *zset (borrowed) and *big set, 0 when
 * Python must decide, -1 on an error. */
static int
zset_for_add(Keyspace *db, PyObject *key, PyObject **zset, ZsetParts *parts, int *big)
{
    int usable = lookup(db, key, zset);
    if (usable <= 0)
        return usable;
    int creating = *zset == NULL;
    if (creating) {
        PyObject *created = PyObject_CallNoArgs(sorted_set_type);
        if (created == NULL)
            return -1;
        int failed = keytable_set(db->data, key, created);
        Py_DECREF(created); /* the table holds it */
        if (failed)
            return -1;
        *zset = created;
    }
    PyObject *flag = zset_parts(*zset, parts) ? slot(*zset, big_slot) : NULL;
    if (flag == NULL || !PyBool_Check(flag)) { /* not a set this file can change */
        if (creating) /* take it back */
            keytable_delete(db->data, key);
        return 0;
    }
    *big = flag == Py_True;
    return 1;
}

static int
run_zadd(Keyspace *db, PyObject *argv, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    double score;
    if (argc < 4 || argc % 2)
        return 0;
    for (Py_ssize_t i = 2; i < argc; i += 2) /* an option or a score Python must read */
        if (!plain_score(PyList_GET_ITEM(argv, i), &score) ||
            !PyBytes_CheckExact(PyList_GET_ITEM(argv, i + 1)))
            return 0;
    PyObject *zset;
    ZsetParts parts;
    int big;
    int usable = zset_for_add(db, PyList_GET_ITEM(argv, 1), &zset, &parts, &big);
    if (usable <= 0)
        return usable;
    Py_ssize_t added = 0;
    for (Py_ssize_t i = 2; i < argc; i += 2) {
        PyObject *member = PyList_GET_ITEM(argv, i + 1);
        plain_score(PyList_GET_ITEM(argv, i), &score); /* read above */
        int added_one = zset_add(zset, &parts, &big, member, score);
        if (added_one < 0)
            return -1;
        added += added_one;
    }
    return write_number(out, ':', added) < 0 ? -1 : 1;
}

static int
run_zincrby(Keyspace *db, PyObject *argv, Output *out)
{
    double by, old;
    if (PyList_GET_SIZE(argv) != 4 || !plain_score(PyList_GET_ITEM(argv, 2), &by) ||
        !PyBytes_CheckExact(PyList_GET_ITEM(argv, 3)))
        return 0;
    PyObject *zset, *member = PyList_GET_ITEM(argv, 3);
    ZsetParts parts;
    int big;
    int usable = zset_for_add(db, PyList_GET_ITEM(argv, 1), &zset, &parts, &big);
    if (usable <= 0)
        return usable;
    int present = stored_score(parts.scores, member, &old);
    double score = present == 1 ? old + by : by;
    if (present == 1 && isnan(score)) /* inf - inf: Python's error */
        return 0;
    if (present < 0 || zset_add(zset, &parts, &big, member, score) < 0)
        return -1;
    if (write_score(out, score) < 0) /* the sum as computed, -0 included */
        return -1;
    /* By 0 the score stays: Redis propagates nothing (journaling.py's _zero_increment). */
    return present == 1 && by == 0 && isfinite(old) ? 2 : 1;
}

/* ZSCORE, ZRANK and ZREVRANK: a member's score or rank. */
static int
run_zmember(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    if (PyList_GET_SIZE(argv) != 3 || !PyBytes_CheckExact(PyList_GET_ITEM(argv, 2)))
        return 0;
    PyObject *member = PyList_GET_ITEM(argv, 2);
    ZsetParts parts;
    int found;
    int usable = read_zset(db, PyList_GET_ITEM(argv, 1), &parts, &found);
    if (usable <= 0)
        return usable;
    double score;
    int present = found ? stored_score(parts.scores, member, &score) : 0;
    int failed = present < 0;
    if (present == 1 && command == ZSCORE)
        failed = write_score(out, score) < 0;
    else if (present == 1) {
        Py_ssize_t rank = zorder->rank(parts.order, score, member);
        if (command == ZREVRANK)
            rank = PyDict_GET_SIZE(parts.scores) - 1 - rank;
        failed = write_number(out, ':', rank) < 0;
    }
    else if (present == 0)
        failed = WRITE_LITERAL(out, "$-1\r\n") < 0;
    return failed ? -1 : 1;
}

static int
run_zcard(Keyspace *db, PyObject *argv, Output *out)
{
    if (PyList_GET_SIZE(argv) != 2)
        return 0;
    ZsetParts parts;
    int found;
    int usable = read_zset(db, PyList_GET_ITEM(argv, 1), &parts, &found);
    if (usable <= 0)
        return usable;
    Py_ssize_t size = found ? PyDict_GET_SIZE(parts.scores) : 0;
    return write_number(out, ':', size) < 0 ? -1 : 1;
}

/* ZPOPMIN and ZPOPMAX, with or without a count. */
static int
run_zpop(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    long long count = 1;
    if (argc < 2 || argc > 3)
        return 0; /* the arity error, in Python's words */
    if (argc == 3 && (!plain_integer(PyList_GET_ITEM(argv, 2), &count) || count < 0))
        return 0; /* a negative count: Python's error */
    PyObject *key = PyList_GET_ITEM(argv, 1), *zset;
    int usable = lookup(db, key, &zset);
    if (usable <= 0)
        return usable;
    if (zset == NULL || count == 0) {
        if (zset != NULL && Py_TYPE(zset) != (PyTypeObject *)sorted_set_type)
            return 0; /* WRONGTYPE, in Python's words */
        return WRITE_LITERAL(out, "*0\r\n") < 0 ? -1 : 1; /* changed nothing: not logged */
    }
    ZsetParts parts;
    if (!zset_parts(zset, &parts))
        return 0;
    Py_ssize_t taken = Py_MIN((Py_ssize_t)count, PyDict_GET_SIZE(parts.scores));
    int failed = write_number(out, '*', 2 * taken) < 0;
    for (Py_ssize_t i = 0; i < taken && !failed; i++) {
        double score;
        PyObject *member;
        zorder->pop(parts.order, command == ZPOPMAX, &score, &member);
        failed = PyDict_DelItem(parts.scores, member) < 0 || write_bulk(out, member) < 0 ||
                 write_score(out, score) < 0;
        Py_DECREF(member);
    }
    /* The last member went: so does the key (which has no time to live). */
    if (!failed && PyDict_GET_SIZE(parts.scores) == 0)
        keytable_delete(db->data, key);
    /* It popped something: logged as requested, as persistence/aof.py logs it. */
    if (!failed && db->journal != NULL)
        failed = journal_command(db->journal, argv) < 0;
    return failed ? -1 : 1;
}

/* Where a sorted set command names the member it looks up in ``scores`` (0: none). */
static inline Py_ssize_t
member_at(enum command command)
{
    switch (command) {
    case ZADD:
    case ZINCRBY:
        return 3;
    case ZSCORE:
    case ZRANK:
    case ZREVRANK:
        return 2;
    default:
        return 0;
    }
}

/* Whether ``b`` is bytes equal to the bytes ``a``. */
static inline int
same_bytes(PyObject *a, PyObject *b)
{
    Py_ssize_t size = PyBytes_GET_SIZE(a);
    return a == b || (PyBytes_CheckExact(b) && PyBytes_GET_SIZE(b) == size &&
                      memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), size) == 0);
}

/* Prefetches the places in ``scores`` of the members that a batch's sorted set commands on
 * its first sorted set key look up (_dict_prefetch.h), so that their cache misses overlap:
 * a pipeline of them (a leaderboard's, redis-benchmark's) is usually on one key. */
static void
prefetch_zset_members(Keyspace *db, PyObject *commands, Py_ssize_t start, Py_ssize_t end,
                      const enum command *named)
{
    PyObject *key = NULL, *members[PREFETCH_BATCH];
    Py_ssize_t count = 0;
    for (Py_ssize_t i = start; i < end && zorder != NULL && count < PREFETCH_BATCH; i++) {
        Py_ssize_t at = member_at(named[i - start]);
        PyObject *argv = PyList_GET_ITEM(commands, i);
        if (at == 0 || PyList_GET_SIZE(argv) <= at)
            continue;
        PyObject *this_key = PyList_GET_ITEM(argv, 1);
        if (key == NULL && PyBytes_CheckExact(this_key))
            key = this_key;
        if (key != NULL && same_bytes(key, this_key))
            members[count++] = PyList_GET_ITEM(argv, at);
    }
    if (count < 2)
        return; /* nothing to overlap */
    KeyEntry *entry = keytable_find(db->data, key);
    PyObject *value = entry == NULL ? NULL : entry_object(entry);
    ZsetParts parts;
    if (value != NULL && zset_parts(value, &parts))
        prefetch_dict_keys(parts.scores, members, count);
}

/* Runs a sorted set command (zorder is there), or returns 0 for one that is not. */
static int
run_zset_command(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    if (zorder == NULL)
        return 0;
    switch (command) {
    case ZADD:
        return run_zadd(db, argv, out);
    case ZINCRBY:
        return run_zincrby(db, argv, out);
    case ZSCORE:
    case ZRANK:
    case ZREVRANK:
        return run_zmember(db, argv, command, out);
    case ZCARD:
        return run_zcard(db, argv, out);
    case ZPOPMIN:
    case ZPOPMAX:
        return run_zpop(db, argv, command, out);
    default:
        return 0;
    }
}

#endif
