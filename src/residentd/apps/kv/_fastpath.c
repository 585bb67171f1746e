/* kv's hot commands in C: the common case of GET, SET, MGET, MSET, INCR, DECR, INCRBY, DECRBY,
 * LPUSH, RPUSH and PING, run straight on the keyspace's table (_keytable.h, whose KeyTable
 * type this module also exports: each database's ``data``); LPOP, RPOP, LRANGE, LINDEX and
 * LLEN are in _fast_lists.h, DEL, EXISTS, EXPIRE, PEXPIRE, TTL and PTTL in _fast_keys.h, the
 * set commands SADD, SREM, SISMEMBER, SMISMEMBER, SCARD and SPOP in _fast_sets.h, the hash
 * commands HSET, HGET, HEXISTS, HDEL, HLEN, HMGET and HINCRBY in _fast_hashes.h, and ZADD,
 * ZINCRBY, ZSCORE, ZRANK, ZREVRANK, ZCARD, ZPOPMIN and ZPOPMAX in _fast_zsets.h.
 *
 * execute(commands, start, db, replies) runs commands[start:] in order, writes their replies
 * (RESP) into one buffer appended to ``replies`` as one bytes object (nothing when it ran
 * nothing), and returns the index of the first command it left alone. It
 * leaves alone everything that is not the plain case: another command, a wrong argument count,
 * options (SET ... EX), a key with a time to live, a value of another type, a number that is
 * not a plain 64-bit integer, an overflow. The session runs that command in Python, where the
 * errors, expiry and every other command live, then hands the rest back here. So this file
 * holds no error text and no expiry logic (the key commands read a time to live that is still
 * ahead, and leave a key past it to Python): for what it does run, it does exactly what the
 * Python handlers in commands/strings.py, lists.py, keys.py, sets.py, hashes.py and zsets.py
 * do, keyspace hit and miss counts included (``db.hits``, ``db.misses``);
 * tests/kv/test_fastpath.py checks that the two agree, reply for reply and value for value
 * (SPOP's random member aside).
 *
 * The session calls it only for a plain client: not inside MULTI, not subscribed.
 *
 * When kv persists (appendonly yes), the session passes a fifth argument, the journal buffer
 * (a bytearray): each write command run here appends itself to it in RESP, as the request
 * said it, which is what Redis's AOF holds for the plain case of these commands; as in
 * persistence/aof.py, the pops, DEL, SADD, SREM and HDEL only when they changed something (a
 * run function returns 2 for "ran, nothing to journal as the request"), EXPIRE/PEXPIRE as
 * ``PEXPIREAT key <ms>`` and SPOP as the SREM of what it popped (those write to
 * Keyspace.journal themselves). crc64() is the RDB checksum (persistence/crc64.py).
 *
 * While clients are blocked on keys (BLPOP, ...), a sixth argument holds the waited keys (a
 * dict, blocking.py): a write to one of them is left to Python, which serves the waiters.
 *
 * serve(session, codec, data) (_fast_serve.h) reads a plain client's chunk and runs it through
 * execute in one call, in place of the codec's feed and the session's on_messages.
 *
 * It takes the commands in batches: first it names each command of a batch and prefetches
 * the places of all the keys they name in the keyspace (keytable_prefetch), then those of the
 * members and fields its set and hash commands name in their sets and hashes, then it runs
 * them.
 */

#include "../../_speedups.h"
#include "../../_resp_read.h"
#include <strings.h>
#include "_dict_prefetch.h"
#include "_keytable.h"
#include "_slot_place.h"

static PyObject *str_data, *str_expires, *str_hits, *str_misses, *str_append, *str_appendleft;
static PyObject *deque_type;

enum command {
    UNKNOWN, GET, SET, MGET, MSET, INCR, DECR, INCRBY, DECRBY, LPUSH, RPUSH, PING,
    LPOP, RPOP, LRANGE, LINDEX, LLEN,         /* _fast_lists.h */
    DEL, EXISTS, EXPIRE, PEXPIRE, TTL, PTTL, /* _fast_keys.h */
    SADD, SREM, SISMEMBER, SMISMEMBER, SCARD, SPOP, /* _fast_sets.h */
    HSET, HGET, HEXISTS, HDEL, HLEN, HMGET, HINCRBY, /* _fast_hashes.h */
    ZADD, ZINCRBY, ZSCORE, ZRANK, ZREVRANK, ZCARD, ZPOPMIN, ZPOPMAX, /* _fast_zsets.h */
};

/* Whether the bytes ``name`` spell ``upper`` in any mix of cases (``upper`` is upper case). */
static int
same_name(const char *name, const char *upper, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        char c = name[i];
        if (c >= 'a' && c <= 'z')
            c -= 'a' - 'A';
        if (c != upper[i])
            return 0;
    }
    return 1;
}

static enum command
identify(PyObject *name)
{
    static const struct {
        const char *upper;
        Py_ssize_t size;
        enum command command;
    } names[] = {
        {"GET", 3, GET},     {"SET", 3, SET},       {"MGET", 4, MGET},     {"MSET", 4, MSET},
        {"INCR", 4, INCR},   {"DECR", 4, DECR},     {"INCRBY", 6, INCRBY}, {"DECRBY", 6, DECRBY},
        {"LPUSH", 5, LPUSH}, {"RPUSH", 5, RPUSH},   {"PING", 4, PING},
        {"LPOP", 4, LPOP},   {"RPOP", 4, RPOP},     {"LRANGE", 6, LRANGE}, {"LINDEX", 6, LINDEX},
        {"LLEN", 4, LLEN},   {"DEL", 3, DEL},       {"EXISTS", 6, EXISTS}, {"EXPIRE", 6, EXPIRE},
        {"PEXPIRE", 7, PEXPIRE}, {"TTL", 3, TTL},   {"PTTL", 4, PTTL},
        {"SADD", 4, SADD},   {"SREM", 4, SREM},     {"SISMEMBER", 9, SISMEMBER},
        {"SMISMEMBER", 10, SMISMEMBER},             {"SCARD", 5, SCARD},   {"SPOP", 4, SPOP},
        {"HSET", 4, HSET},   {"HGET", 4, HGET},     {"HEXISTS", 7, HEXISTS},
        {"HDEL", 4, HDEL},   {"HLEN", 4, HLEN},     {"HMGET", 5, HMGET},
        {"HINCRBY", 7, HINCRBY},
        {"ZADD", 4, ZADD},   {"ZINCRBY", 7, ZINCRBY}, {"ZSCORE", 6, ZSCORE},
        {"ZRANK", 5, ZRANK}, {"ZREVRANK", 8, ZREVRANK}, {"ZCARD", 5, ZCARD},
        {"ZPOPMIN", 7, ZPOPMIN}, {"ZPOPMAX", 7, ZPOPMAX},
    };
    if (!PyBytes_CheckExact(name))
        return UNKNOWN;
    Py_ssize_t size = PyBytes_GET_SIZE(name);
    const char *text = PyBytes_AS_STRING(name);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].size == size && same_name(text, names[i].upper, size))
            return names[i].command;
    return UNKNOWN;
}

/* A signed 64-bit integer written as Redis's string2ll accepts it, restricted to at most 18
 * digits (so it cannot overflow here): returns 1 and sets *value, or 0 (Python decides). */
static int
plain_integer_text(const char *p, Py_ssize_t size, long long *value)
{
    int negative = size > 0 && p[0] == '-';
    p += negative;
    size -= negative;
    if (size < 1 || size > 18 || (p[0] == '0' && (size > 1 || negative)))
        return 0;
    long long result = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        result = result * 10 + (p[i] - '0');
    }
    *value = negative ? -result : result;
    return 1;
}

static int
plain_integer(PyObject *text, long long *value)
{
    return PyBytes_CheckExact(text) &&
           plain_integer_text(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), value);
}

/* The replies of one call, written into one buffer: the session gets them as one bytes. It
 * starts in place and moves to the heap when a large reply outgrows it. */
typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
    Py_ssize_t records; /* a journal's: the commands written to it (journal_command) */
    char initial[8192];
} Output;

static char *
reserve(Output *out, Py_ssize_t size)
{
    if (out->size + size > out->capacity) {
        Py_ssize_t capacity = (out->size + size) * 2;
        char *data = PyMem_Malloc(capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(data, out->data, out->size);
        if (out->data != out->initial)
            PyMem_Free(out->data);
        out->data = data;
        out->capacity = capacity;
    }
    return out->data + out->size;
}

/* The heap buffer a call's replies grew into, kept for the next call (up to SPARE_LIMIT): a
 * pipeline of large replies (LRANGE's) then writes into pages already mapped, where a fresh
 * allocation of that size (mmap'ed by malloc) faults each page in again, every call. */
#define SPARE_LIMIT (1024 * 1024)
static char *spare_data;
static Py_ssize_t spare_capacity;

static void
output_open(Output *out)
{
    out->size = 0;
    out->records = 0;
    if (spare_data != NULL) {
        out->data = spare_data;
        out->capacity = spare_capacity;
        spare_data = NULL;
    }
    else {
        out->data = out->initial;
        out->capacity = sizeof(out->initial);
    }
}

static void
output_close(Output *out)
{
    if (out->data == out->initial)
        return;
    if (spare_data == NULL && out->capacity <= SPARE_LIMIT) {
        spare_data = out->data;
        spare_capacity = out->capacity;
    }
    else
        PyMem_Free(out->data);
}

#define INTEGER_TEXT 24 /* room for any long long in decimal */

/* ``value`` in decimal, written at the end of ``text``; returns where it starts. */
static char *
format_integer(char text[INTEGER_TEXT], long long value)
{
    char *start = text + INTEGER_TEXT;
    unsigned long long rest = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    do {
        *--start = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (value < 0)
        *--start = '-';
    return start;
}

/* ``<mark><value>\r\n`` (":12\r\n", "$5\r\n", "*3\r\n"), or -1 with MemoryError. */
static int
write_number(Output *out, char mark, long long value)
{
    char text[INTEGER_TEXT];
    char *start = format_integer(text, value);
    Py_ssize_t length = text + INTEGER_TEXT - start;
    char *p = reserve(out, length + 3);
    if (p == NULL)
        return -1;
    p[0] = mark;
    memcpy(p + 1, start, length);
    p[length + 1] = '\r';
    p[length + 2] = '\n';
    out->size += length + 3;
    return 0;
}

static int
write_raw(Output *out, const char *text, Py_ssize_t size)
{
    char *p = reserve(out, size);
    if (p == NULL)
        return -1;
    memcpy(p, text, size);
    out->size += size;
    return 0;
}

#define WRITE_LITERAL(out, text) write_raw((out), (text), sizeof(text) - 1)

/* Writes a bulk string of ``size`` bytes of ``text``. */
static int
write_text(Output *out, const char *text, Py_ssize_t size)
{
    if (write_number(out, '$', size) < 0 || reserve(out, size + 2) == NULL)
        return -1;
    char *p = out->data + out->size;
    memcpy(p, text, size);
    p[size] = '\r';
    p[size + 1] = '\n';
    out->size += size + 2;
    return 0;
}

static int
write_bulk(Output *out, PyObject *value)
{
    return write_text(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
}

/* Drop ``key``'s time to live, as Keyspace.set does. */
static int
drop_expiry(PyObject *expires, PyObject *key)
{
    if (PyDict_GET_SIZE(expires) == 0)
        return 0;
    PyObject *found = PyDict_GetItemWithError(expires, key);
    if (found == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return PyDict_DelItem(expires, key);
}

/* The keyspace's dicts, the hits and misses counted during one call, and the call's journal
 * (NULL when kv does not persist) for the commands journaled otherwise than as their request. */
typedef struct {
    KeyTable *data;
    PyObject *expires;
    Py_ssize_t hits;
    Py_ssize_t misses;
    Output *journal;
} Keyspace;

/* The value at ``key`` as the fast path may use it: sets *value (borrowed, NULL when there is
 * none) and returns 1; returns 0 when Python must decide (the key has a time to live, which
 * only the Python keyspace enforces), -1 on an error. */
static int
lookup_entry(Keyspace *db, PyObject *key, KeyEntry **entry)
{
    *entry = keytable_find(db->data, key);
    if (*entry == NULL)
        return 1;
    int expiring = PyDict_GET_SIZE(db->expires) ? PyDict_Contains(db->expires, key) : 0;
    return expiring == 0 ? 1 : (expiring < 0 ? -1 : 0);
}

/* As lookup_entry, for the value as an object (borrowed; INLINE_TEXT for a short string kept
 * in its entry, which no collection command takes for its type). */
static int
lookup(Keyspace *db, PyObject *key, PyObject **value)
{
    KeyEntry *entry;
    int usable = lookup_entry(db, key, &entry);
    *value = entry == NULL ? NULL : entry_object(entry);
    return usable;
}

/* Each run_* returns 1 when it ran the command and wrote its reply, 2 when it also has
 * nothing to journal (a read, a write that changed nothing, or one that journaled itself),
 * 0 when Python must run it (nothing was changed or written), -1 on an error (an exception
 * is set). */

static int
run_get(Keyspace *db, PyObject *argv, Output *out)
{
    KeyEntry *entry;
    if (PyList_GET_SIZE(argv) != 2)
        return 0;
    int usable = lookup_entry(db, PyList_GET_ITEM(argv, 1), &entry);
    if (usable <= 0)
        return usable;
    if (entry == NULL) {
        db->misses++;
        return WRITE_LITERAL(out, "$-1\r\n") < 0 ? -1 : 1;
    }
    const char *text;
    Py_ssize_t size;
    if (!entry_text(entry, &text, &size))
        return 0; /* WRONGTYPE, in Python's words */
    db->hits++;
    return write_text(out, text, size) < 0 ? -1 : 1;
}

static int
run_mget(Keyspace *db, PyObject *argv, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (argc < 2)
        return 0;
    /* Answer key by key; a key Python must see takes back what this command wrote and
     * counted. */
    Py_ssize_t start = out->size, hits = db->hits, misses = db->misses;
    if (write_number(out, '*', argc - 1) < 0)
        return -1;
    for (Py_ssize_t i = 1; i < argc; i++) {
        KeyEntry *entry;
        int usable = lookup_entry(db, PyList_GET_ITEM(argv, i), &entry);
        if (usable <= 0) {
            out->size = start;
            db->hits = hits;
            db->misses = misses;
            return usable;
        }
        if (entry == NULL)
            db->misses++;
        else
            db->hits++;
        const char *text;
        Py_ssize_t size;
        int failed = entry != NULL && entry_text(entry, &text, &size)
                         ? write_text(out, text, size)
                         : WRITE_LITERAL(out, "$-1\r\n");
        if (failed)
            return -1;
    }
    return 1;
}

static int
run_set(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (command == MSET ? argc < 3 || argc % 2 == 0 : argc != 3)
        return 0;
    for (Py_ssize_t i = 1; i < argc; i += 2) {
        PyObject *key = PyList_GET_ITEM(argv, i);
        if (keytable_set(db->data, key, PyList_GET_ITEM(argv, i + 1)) < 0)
            return -1;
    }
    for (Py_ssize_t i = 1; i < argc; i += 2)
        if (drop_expiry(db->expires, PyList_GET_ITEM(argv, i)) < 0)
            return -1;
    return WRITE_LITERAL(out, "+OK\r\n") < 0 ? -1 : 1;
}

static int
run_increment(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    long long by = command == INCR ? 1 : -1;
    if (argc != ((command == INCR || command == DECR) ? 2 : 3))
        return 0;
    if (argc == 3) {
        if (!plain_integer(PyList_GET_ITEM(argv, 2), &by))
            return 0;
        if (command == DECRBY)
            by = -by;
    }
    PyObject *key = PyList_GET_ITEM(argv, 1);
    KeyEntry *old;
    long long current = 0;
    int usable = lookup_entry(db, key, &old);
    if (usable <= 0)
        return usable;
    const char *old_text;
    Py_ssize_t old_size;
    if (old != NULL && !(entry_text(old, &old_text, &old_size) &&
                         plain_integer_text(old_text, old_size, &current)))
        return 0;
    long long value;
    if (__builtin_add_overflow(current, by, &value))
        return 0;
    char text[INTEGER_TEXT];
    char *start = format_integer(text, value);
    if (keytable_set_text(db->data, key, start, text + INTEGER_TEXT - start) < 0)
        return -1;
    return write_number(out, ':', value) < 0 ? -1 : 1;
}

static int
run_push(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    if (argc < 3)
        return 0;
    PyObject *key = PyList_GET_ITEM(argv, 1);
    PyObject *items;
    int usable = lookup(db, key, &items);
    if (usable <= 0)
        return usable;
    if (items == NULL) {
        items = PyObject_CallNoArgs(deque_type);
        if (items == NULL)
            return -1;
        int failed = keytable_set(db->data, key, items);
        Py_DECREF(items); /* the table holds it */
        if (failed)
            return -1;
    }
    else if (Py_TYPE(items) != (PyTypeObject *)deque_type)
        return 0; /* WRONGTYPE, in Python's words */
    PyObject *method = command == LPUSH ? str_appendleft : str_append;
    for (Py_ssize_t i = 2; i < argc; i++) {
        PyObject *done = PyObject_CallMethodOneArg(items, method, PyList_GET_ITEM(argv, i));
        if (done == NULL)
            return -1;
        Py_DECREF(done);
    }
    Py_ssize_t length = PyObject_Size(items);
    if (length < 0)
        return -1;
    return write_number(out, ':', length) < 0 ? -1 : 1;
}

#include "_fast_lists.h"
#include "_fast_keys.h"
#include "_fast_collections.h"
#include "_fast_sets.h"
#include "_fast_hashes.h"
#include "_fast_zsets.h"

#define COMMAND_BATCH 32 /* commands named, and their keys prefetched, together */

/* Names each of commands[start:end] into ``commands_named`` and gathers the keys they will
 * look up into ``keys`` (at most PREFETCH_BATCH); returns how many keys. */
static Py_ssize_t
plan_batch(PyObject *commands, Py_ssize_t start, Py_ssize_t end, enum command *commands_named,
           PyObject **keys)
{
    Py_ssize_t count = 0;
    for (Py_ssize_t i = start; i < end; i++) {
        PyObject *argv = PyList_GET_ITEM(commands, i);
        enum command command = UNKNOWN;
        if (PyList_CheckExact(argv) && PyList_GET_SIZE(argv) > 0)
            command = identify(PyList_GET_ITEM(argv, 0));
        commands_named[i - start] = command;
        if (command == UNKNOWN || command == PING)
            continue;
        Py_ssize_t argc = PyList_GET_SIZE(argv);
        int all_keys = command == MGET || command == MSET || command == DEL || command == EXISTS;
        Py_ssize_t last = all_keys ? argc : Py_MIN(argc, 2);
        for (Py_ssize_t k = 1; k < last && count < PREFETCH_BATCH; k += 1 + (command == MSET))
            keys[count++] = PyList_GET_ITEM(argv, k);
    }
    return count;
}

/* Whether the loop journals a command it ran as its request (when its run function returned
 * 1: SADD, SREM and HDEL return 2 when they changed nothing, ZINCRBY when it added 0). The
 * other writes log themselves when they changed something (Keyspace.journal). */
static int
journaled_as_request(enum command command)
{
    switch (command) {
    case SET:
    case MSET:
    case INCR:
    case DECR:
    case INCRBY:
    case DECRBY:
    case LPUSH:
    case RPUSH:
    case SADD:
    case SREM:
    case HSET:
    case HDEL:
    case HINCRBY:
    case ZADD:
    case ZINCRBY:
        return 1;
    default:
        return 0;
    }
}

/* Whether ``argv`` (named ``command``) writes a key some client waits on (``waited``, a
 * dict): 1, 0, or -1 on an error. Python runs such a write, then serves the waiters. */
static int
writes_waited_key(PyObject *waited, PyObject *argv, enum command command)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    Py_ssize_t last;
    switch (command) {
    case LPUSH:
    case RPUSH:
    case LPOP:
    case RPOP:
    case EXPIRE:
    case PEXPIRE:
    case ZADD:
    case ZINCRBY:
    case ZPOPMIN:
    case ZPOPMAX:
        last = Py_MIN(argc, 2);
        break;
    case DEL:
        last = argc;
        break;
    default:
        return 0;
    }
    for (Py_ssize_t i = 1; i < last; i++) {
        int awaited = PyDict_Contains(waited, PyList_GET_ITEM(argv, i));
        if (awaited != 0)
            return awaited;
    }
    return 0;
}

/* Runs one command, named by plan_batch. */
static int
run_one(Keyspace *db, PyObject *argv, enum command command, Output *out)
{
    switch (command) {
    case GET:
        return run_get(db, argv, out);
    case MGET:
        return run_mget(db, argv, out);
    case SET:
    case MSET:
        return run_set(db, argv, command, out);
    case INCR:
    case DECR:
    case INCRBY:
    case DECRBY:
        return run_increment(db, argv, command, out);
    case LPUSH:
    case RPUSH:
        return run_push(db, argv, command, out);
    case SADD:
        return run_sadd(db, argv, out);
    case SREM:
        return run_remove(db, argv, &PySet_Type, out);
    case SISMEMBER:
    case SMISMEMBER:
    case SCARD:
        return run_set_read(db, argv, command, out);
    case SPOP:
        return run_spop(db, argv, out);
    case HSET:
        return run_hset(db, argv, out);
    case HDEL:
        return run_remove(db, argv, &PyDict_Type, out);
    case HGET:
    case HEXISTS:
    case HLEN:
    case HMGET:
        return run_hash_read(db, argv, command, out);
    case HINCRBY:
        return run_hincrby(db, argv, out);
    case PING:
        if (PyList_GET_SIZE(argv) != 1)
            return 0;
        return WRITE_LITERAL(out, "+PONG\r\n") < 0 ? -1 : 1;
    case LPOP:
    case RPOP:
        return run_pop(db, argv, command, out);
    case LRANGE:
        return run_lrange(db, argv, out);
    case LINDEX:
        return run_lindex(db, argv, out);
    case LLEN:
        return run_llen(db, argv, out);
    case DEL:
    case EXISTS:
        return run_del_exists(db, argv, command, out);
    case EXPIRE:
    case PEXPIRE:
        return run_expire(db, argv, command, out);
    case TTL:
    case PTTL:
        return run_ttl(db, argv, command, out);
    default:
        return run_zset_command(db, argv, command, out);
    }
}

/* Decimal digits of a size (>= 0). */
static inline Py_ssize_t
decimal_digits(Py_ssize_t value)
{
    Py_ssize_t digits = 1;
    while (value >= 10) {
        value /= 10;
        digits++;
    }
    return digits;
}

/* Writes ``<mark><value>\r\n`` for a size of ``digits`` digits at ``p``; returns the end. */
static inline char *
put_size(char *p, char mark, Py_ssize_t value, Py_ssize_t digits)
{
    *p++ = mark;
    char *end = p + digits;
    do {
        *--end = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    p += digits;
    p[0] = '\r';
    p[1] = '\n';
    return p + 2;
}

/* Writes ``argv`` to ``journal`` as a RESP array of bulk strings, the form a Redis AOF holds
 * it in: what a write command this file ran logs when persistence is on. The command's size is
 * counted first, so that it is written with one ``reserve``. The call's journal goes to the
 * caller's bytearray in one piece at the end. */
static int
journal_command(Output *journal, PyObject *argv)
{
    Py_ssize_t argc = PyList_GET_SIZE(argv);
    Py_ssize_t argc_digits = decimal_digits(argc);
    Py_ssize_t size = argc_digits + 3;
    for (Py_ssize_t i = 0; i < argc; i++) {
        Py_ssize_t length = PyBytes_GET_SIZE(PyList_GET_ITEM(argv, i));
        size += decimal_digits(length) + length + 5;
    }
    char *p = reserve(journal, size);
    if (p == NULL)
        return -1;
    p = put_size(p, '*', argc, argc_digits);
    for (Py_ssize_t i = 0; i < argc; i++) {
        PyObject *item = PyList_GET_ITEM(argv, i);
        Py_ssize_t length = PyBytes_GET_SIZE(item);
        p = put_size(p, '$', length, decimal_digits(length));
        memcpy(p, PyBytes_AS_STRING(item), length);
        p[length] = '\r';
        p[length + 1] = '\n';
        p += length + 2;
    }
    journal->size += size;
    journal->records++;
    return 0;
}

/* The room a journal's bytearray is given when it must grow: an iteration's records usually
 * fit, though the journal's write empties it every iteration (and CPython then gives its memory
 * back). */
#define JOURNAL_ROOM (64 * 1024)

/* Appends what ``journal`` holds to the bytearray ``target``. The pipelines of one loop
 * iteration append to the same bytearray. CPython grows one to the exact size asked for, and
 * shrinks it again when that is under half its room: it is grown here to half as much again
 * as needed (at least JOURNAL_ROOM) and its size set within that room, as CPython's own
 * appends do, so the appends of an iteration allocate it once, not once each. */
static int
flush_journal(Output *journal, PyObject *target)
{
    if (journal->size == 0)
        return 0;
    PyByteArrayObject *array = (PyByteArrayObject *)target;
    Py_ssize_t start = PyByteArray_GET_SIZE(target);
    Py_ssize_t needed = start + journal->size;
    if (array->ob_exports > 0 || (array->ob_start - array->ob_bytes) + needed >= array->ob_alloc) {
        if (PyByteArray_Resize(target, Py_MAX(needed + needed / 2, JOURNAL_ROOM)) < 0)
            return -1;
    }
    Py_SET_SIZE(target, needed); /* within the room: what PyByteArray_Resize does there */
    array->ob_start[needed] = '\0';
    memcpy(array->ob_start + start, journal->data, journal->size);
    return 0;
}

static SlotPlace place_hits = {&str_hits}, place_misses = {&str_misses},
                 place_data = {&str_data}, place_expires = {&str_expires};

/* Runs commands[index:] on the keyspace ``db_object`` until one must go to Python (a command
 * the fast path does not serve, or a write to a key a client waits on): their replies appended
 * to ``replies`` as one bytes, what they journal to ``journal`` (a bytearray, or NULL) and
 * the count of those records to ``*records``. Returns the index it stopped at, -1 with an
 * exception. */
static Py_ssize_t
run_commands(PyObject *commands, Py_ssize_t index, PyObject *db_object, PyObject *replies,
             PyObject *journal, PyObject *waited, Py_ssize_t *records)
{
    Keyspace db = {NULL, NULL, 0, 0, NULL};
    Output out, logged;
    output_open(&out);
    logged.data = logged.initial;
    logged.size = 0;
    logged.records = 0;
    logged.capacity = sizeof(logged.initial);
    db.journal = journal != NULL ? &logged : NULL;
    int failed = 1;
    db.data = (KeyTable *)get_attribute(db_object, &place_data);
    db.expires = db.data == NULL ? NULL : get_attribute(db_object, &place_expires);
    if (db.expires == NULL)
        goto done;
    if (Py_TYPE(db.data) != &KeyTable_Type || !PyDict_CheckExact(db.expires)) {
        PyErr_SetString(PyExc_TypeError, "db.data must be a KeyTable and db.expires a dict");
        goto done;
    }
    Py_ssize_t total = PyList_GET_SIZE(commands);
    while (index < total) {
        Py_ssize_t start = index, end = Py_MIN(index + COMMAND_BATCH, total);
        enum command commands_named[COMMAND_BATCH];
        PyObject *keys[PREFETCH_BATCH];
        Py_ssize_t count = plan_batch(commands, start, end, commands_named, keys);
        keytable_prefetch(db.data, keys, count);
        prefetch_members(db.data, commands, start, end, commands_named);
        prefetch_zset_members(&db, commands, start, end, commands_named);
        for (; index < end; index++) {
            PyObject *argv = PyList_GET_ITEM(commands, index);
            enum command named = commands_named[index - start];
            if (waited != NULL) {
                int awaited = writes_waited_key(waited, argv, named);
                if (awaited < 0)
                    goto done;
                if (awaited)
                    goto stopped; /* a client waits on the key: Python wakes it */
            }
            int ran = run_one(&db, argv, named, &out);
            if (ran < 0)
                goto done;
            if (ran == 0)
                goto stopped;
            if (journal != NULL && ran == 1 && journaled_as_request(named) &&
                journal_command(&logged, argv) < 0)
                goto done;
        }
    }
stopped:
    if (journal != NULL && flush_journal(&logged, journal) < 0)
        goto done;
    if (out.size) {
        PyObject *replies_bytes = PyBytes_FromStringAndSize(out.data, out.size);
        if (replies_bytes == NULL)
            goto done;
        int appended = PyList_Append(replies, replies_bytes);
        Py_DECREF(replies_bytes);
        if (appended < 0)
            goto done;
    }
    failed = 0;
done:
    output_close(&out);
    if (logged.data != logged.initial)
        PyMem_Free(logged.data);
    Py_XDECREF(db.data);
    Py_XDECREF(db.expires);
    if (failed || add_to_slot(db_object, &place_hits, db.hits) < 0 ||
        add_to_slot(db_object, &place_misses, db.misses) < 0)
        return -1;
    *records = logged.records;
    return index;
}

static PyObject *
execute(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 4 || nargs > 6 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[3]) ||
        (nargs >= 5 && args[4] != Py_None && !PyByteArray_CheckExact(args[4])) ||
        (nargs == 6 && args[5] != Py_None && !PyDict_CheckExact(args[5]))) {
        PyErr_SetString(PyExc_TypeError, "execute(commands: list, start, db, replies: list[, "
                                         "journal: bytearray | None[, waited: dict | None]])");
        return NULL;
    }
    PyObject *journal = nargs >= 5 && args[4] != Py_None ? args[4] : NULL;
    PyObject *waited = nargs == 6 && args[5] != Py_None ? args[5] : NULL;
    Py_ssize_t index = PyLong_AsSsize_t(args[1]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    if (index < 0) {
        PyErr_SetString(PyExc_ValueError, "start must not be negative");
        return NULL;
    }
    Py_ssize_t records;
    index = run_commands(args[0], index, args[2], args[3], journal, waited, &records);
    return index < 0 ? NULL : PyLong_FromSsize_t(index);
}

/* Reads the decimal number after the type byte at ``*at`` up to its CRLF; advances past it.
 * -1 when the text there is not that (the count below then stops). */
static Py_ssize_t
record_number(const char *data, Py_ssize_t size, Py_ssize_t *at, char kind)
{
    Py_ssize_t i = *at, value = 0;
    if (i >= size || data[i] != kind)
        return -1;
    for (i++; i < size && data[i] >= '0' && data[i] <= '9'; i++)
        value = value * 10 + (data[i] - '0');
    if (i + 1 >= size || data[i] != '\r' || data[i + 1] != '\n')
        return -1;
    *at = i + 2;
    return value;
}

/* The commands journaled in data[at:size] (RESP arrays of bulk strings, as kv writes them),
 * leaving out SELECT, MULTI and EXEC: the changes they made, for the save points. */
static Py_ssize_t
count_journaled(const char *data, Py_ssize_t size, Py_ssize_t at)
{
    Py_ssize_t count = 0;
    while (at >= 0 && at < size) {
        Py_ssize_t argc = record_number(data, size, &at, '*');
        int marker = 0;
        for (Py_ssize_t i = 0; i < argc && at >= 0; i++) {
            Py_ssize_t length = record_number(data, size, &at, '$');
            if (length < 0 || at + length + 2 > size) {
                at = -1;
                break;
            }
            if (i == 0)
                marker = (length == 6 && strncasecmp(data + at, "SELECT", 6) == 0) ||
                         (length == 5 && strncasecmp(data + at, "MULTI", 5) == 0) ||
                         (length == 4 && strncasecmp(data + at, "EXEC", 4) == 0);
            at += length + 2;
        }
        if (argc < 0 || at < 0)
            break;
        count += !marker;
    }
    return count;
}

/* count_records(journal, start) -> int: count_journaled of journal[start:]
 * (persistence/aof.py's count_records). */
static PyObject *
count_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyByteArray_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "count_records(journal: bytearray, start: int)");
        return NULL;
    }
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    if (at == -1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(
        count_journaled(PyByteArray_AS_STRING(args[0]), PyByteArray_GET_SIZE(args[0]), at));
}

#include "_fast_serve.h"

/* crc64(crc, data) -> int: CRC-64/Jones of data, continuing crc (persistence/crc64.py). */
static uint64_t crc64_table[256];

static void
crc64_init(void)
{
    for (int byte = 0; byte < 256; byte++) {
        uint64_t crc = (uint64_t)byte;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 1 ? (crc >> 1) ^ 0x95AC9329AC4BC9B5ULL : crc >> 1;
        crc64_table[byte] = crc;
    }
}

static PyObject *
crc64(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "crc64(crc, data)");
        return NULL;
    }
    uint64_t crc = PyLong_AsUnsignedLongLong(args[0]);
    if (crc == (uint64_t)-1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf;
    Py_ssize_t size = view.len;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < size; i++)
        crc = crc64_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(crc);
}

static PyMethodDef methods[] = {
    {"crc64", (PyCFunction)(void (*)(void))crc64, METH_FASTCALL,
     "crc64(crc, data) -> int: the CRC-64/Jones of data, continuing crc."},
    {"count_records", (PyCFunction)(void (*)(void))count_records, METH_FASTCALL,
     "count_records(journal, start) -> int: the commands journaled in journal[start:], "
     "SELECT, MULTI and EXEC left out."},
    {"execute", (PyCFunction)(void (*)(void))execute, METH_FASTCALL,
     "execute(commands, start, db, replies[, journal]) -> int: run commands[start:] while "
     "they are the plain case of a hot command, append their replies (and the write "
     "commands, in RESP, to journal), return where it stopped."},
    {"serve", (PyCFunction)(void (*)(void))serve, METH_FASTCALL,
     "serve(session, codec, data) -> int | None: read a plain client's whole chunk and run it "
     "as KvSession.on_messages would, or None to leave it to the codec and on_messages."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastpath", "kv's hot commands in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    crc64_init();
    if (random_seed() < 0)
        return NULL;
    deque_type = import_attribute("collections", "deque");
    if (deque_type == NULL || fast_lists_init() < 0 || fast_zsets_init() < 0 || serve_init() < 0)
        return NULL;
    str_data = PyUnicode_InternFromString("data");
    str_expires = PyUnicode_InternFromString("expires");
    str_hits = PyUnicode_InternFromString("hits");
    str_misses = PyUnicode_InternFromString("misses");
    str_append = PyUnicode_InternFromString("append");
    str_appendleft = PyUnicode_InternFromString("appendleft");
    if (!str_data || !str_expires || !str_hits || !str_misses || !str_append ||
        !str_appendleft || PyType_Ready(&KeyTable_Type) < 0 ||
        PyType_Ready(&TableIterator_Type) < 0)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL || PyModule_AddObjectRef(created, "KeyTable",
                                                 (PyObject *)&KeyTable_Type) < 0) {
        Py_XDECREF(created);
        return NULL;
    }
    return created;
}
