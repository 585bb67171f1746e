/* ZOrder: the order of a sorted set's entries, Redis's skip list with spans (t_zset.c's
 * zslInsert, zslDelete, zslGetRank, zslGetElementByRank; 32 levels at most, each level a
 * quarter as likely as the one below). zset.py uses it as its ``order`` when it is built,
 * in place of sortedcontainers' SortedList, whose API it keeps for what zset.py, geo.py and
 * zsets.py call: add, remove, index, bisect_left, bisect_right, islice, indexing, ``del`` of
 * a slice, len and iteration.
 *
 * An entry is a (score, member) tuple: a float that is not NaN and bytes. Entries are ordered
 * by score, then by the members' bytes (memcmp, then length): Python's order of such tuples,
 * which is Redis's. A key for bisect_left and bisect_right may be a 1-tuple ``(score,)``,
 * which sorts before every entry of that score, as in Python. Insert, remove, rank, entry by
 * rank and bisect are O(log n); islice and ``del`` of a slice O(log n) plus the entries they
 * touch. Iteration walks a list of the entries taken when it starts.
 *
 * Members are bytes only, so a ZOrder holds no reference that could make a cycle and has no
 * GC support. _fastpath.c reaches the skip list through a capsule (_zorder.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../../_speedups.h"
#include "_zorder.h"

#define MAX_LEVEL 32

typedef struct Node {
    double score;
    PyObject *member; /* bytes, owned; NULL in the header */
    struct Node *backward;
    struct Level {
        struct Node *forward;
        Py_ssize_t span; /* how many entries the forward link passes */
    } level[];
} Node;

typedef struct {
    PyObject_HEAD
    Node *header;
    Node *tail;
    Py_ssize_t length;
    int level;
} ZOrder;

static PyTypeObject ZOrderType;

static Node *
new_node(int level, double score, PyObject *member)
{
    Node *node = PyMem_Malloc(sizeof(Node) + level * sizeof(struct Level));
    if (node == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    node->score = score;
    node->member = member;
    Py_XINCREF(member);
    return node;
}

static void
free_node(Node *node)
{
    Py_XDECREF(node->member);
    PyMem_Free(node);
}

/* A level for a new node: 1, and one more with probability 1/4 each time (zslRandomLevel),
 * from a xorshift generator (the shape only affects speed). */
static int
random_level(void)
{
    static uint64_t state = 0x9E3779B97F4A7C15ULL;
    int level = 1;
    for (;;) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if ((state & 0xFFFF) >= 0xFFFF / 4 || level == MAX_LEVEL)
            return level;
        level++;
    }
}

/* memcmp order, a prefix first: bytes comparison in Python. */
static inline int
compare_members(PyObject *a, PyObject *b)
{
    Py_ssize_t size_a = PyBytes_GET_SIZE(a), size_b = PyBytes_GET_SIZE(b);
    int order = memcmp(PyBytes_AS_STRING(a), PyBytes_AS_STRING(b), Py_MIN(size_a, size_b));
    if (order)
        return order;
    return size_a < size_b ? -1 : size_a > size_b;
}

/* Whether ``node`` comes before the key (score, member), or is equal to it too when
 * ``or_equal``. A NULL member is the 1-tuple (score,), before every entry of that score. */
static inline int
before(const Node *node, double score, PyObject *member, int or_equal)
{
    if (node->score != score)
        return node->score < score;
    if (member == NULL)
        return 0;
    int order = compare_members(node->member, member);
    return order < 0 || (or_equal && order == 0);
}

static inline int
is_entry(const Node *node, double score, PyObject *member)
{
    return node != NULL && node->member != NULL && node->score == score &&
           compare_members(node->member, member) == 0;
}

/* Starts loading the node a walk goes down to from ``x`` at level ``i`` while it looks at the
 * next one along: the two loads overlap instead of waiting one for the other. */
static inline void
prefetch_below(const Node *x, int i)
{
    if (i > 0)
        __builtin_prefetch(x->level[i - 1].forward);
}

/* How many entries come before the key (or are equal to it, ``or_equal``); fills ``update``
 * with the last node at each level before that place when it is not NULL. */
static Py_ssize_t
seek(ZOrder *self, double score, PyObject *member, int or_equal, Node **update)
{
    Node *x = self->header;
    Py_ssize_t rank = 0;
    for (int i = self->level - 1; i >= 0; i--) {
        prefetch_below(x, i);
        while (x->level[i].forward && before(x->level[i].forward, score, member, or_equal)) {
            rank += x->level[i].span;
            x = x->level[i].forward;
            prefetch_below(x, i);
        }
        if (update != NULL)
            update[i] = x;
    }
    return rank;
}

static int
insert(PyObject *order, double score, PyObject *member)
{
    ZOrder *self = (ZOrder *)order;
    Node *update[MAX_LEVEL];
    Py_ssize_t rank[MAX_LEVEL];
    Node *x = self->header;
    for (int i = self->level - 1; i >= 0; i--) {
        rank[i] = i == self->level - 1 ? 0 : rank[i + 1];
        prefetch_below(x, i);
        while (x->level[i].forward && before(x->level[i].forward, score, member, 0)) {
            rank[i] += x->level[i].span;
            x = x->level[i].forward;
            prefetch_below(x, i);
        }
        update[i] = x;
    }
    int level = random_level();
    if (level > self->level) {
        for (int i = self->level; i < level; i++) {
            rank[i] = 0;
            update[i] = self->header;
            update[i]->level[i].span = self->length;
        }
        self->level = level;
    }
    x = new_node(level, score, member);
    if (x == NULL)
        return -1;
    for (int i = 0; i < level; i++) {
        x->level[i].forward = update[i]->level[i].forward;
        update[i]->level[i].forward = x;
        x->level[i].span = update[i]->level[i].span - (rank[0] - rank[i]);
        update[i]->level[i].span = (rank[0] - rank[i]) + 1;
    }
    for (int i = level; i < self->level; i++)
        update[i]->level[i].span++;
    x->backward = update[0] == self->header ? NULL : update[0];
    if (x->level[0].forward)
        x->level[0].forward->backward = x;
    else
        self->tail = x;
    self->length++;
    return 0;
}

/* Unlinks ``x``, given the nodes before it at each level (zslDeleteNode); does not free it. */
static void
unlink_node(ZOrder *self, Node *x, Node **update)
{
    for (int i = 0; i < self->level; i++) {
        if (update[i]->level[i].forward == x) {
            update[i]->level[i].span += x->level[i].span - 1;
            update[i]->level[i].forward = x->level[i].forward;
        }
        else {
            update[i]->level[i].span -= 1;
        }
    }
    if (x->level[0].forward)
        x->level[0].forward->backward = x->backward;
    else
        self->tail = x->backward;
    while (self->level > 1 && self->header->level[self->level - 1].forward == NULL)
        self->level--;
    self->length--;
}

static int
remove_entry(PyObject *order, double score, PyObject *member)
{
    ZOrder *self = (ZOrder *)order;
    Node *update[MAX_LEVEL];
    seek(self, score, member, 0, update);
    Node *x = update[0]->level[0].forward;
    if (!is_entry(x, score, member))
        return 0;
    unlink_node(self, x, update);
    free_node(x);
    return 1;
}

static Py_ssize_t
rank_of(PyObject *order, double score, PyObject *member)
{
    ZOrder *self = (ZOrder *)order;
    Node *update[MAX_LEVEL];
    Py_ssize_t rank = seek(self, score, member, 0, update);
    return is_entry(update[0]->level[0].forward, score, member) ? rank : -1;
}

/* The node at 0-based ``rank`` (< length), filling ``update`` for unlinking it if not NULL. */
static Node *
node_at(ZOrder *self, Py_ssize_t rank, Node **update)
{
    Node *x = self->header;
    Py_ssize_t traversed = 0;
    for (int i = self->level - 1; i >= 0; i--) {
        prefetch_below(x, i);
        while (x->level[i].forward && traversed + x->level[i].span <= rank) {
            traversed += x->level[i].span;
            x = x->level[i].forward;
            prefetch_below(x, i);
        }
        if (update != NULL)
            update[i] = x;
    }
    return x->level[0].forward;
}

/* Removes the entries ranked start to stop - 1 (0 <= start <= stop <= length). */
static void
delete_ranks(ZOrder *self, Py_ssize_t start, Py_ssize_t stop)
{
    if (start >= stop)
        return;
    Node *update[MAX_LEVEL];
    Node *x = node_at(self, start, update);
    for (Py_ssize_t rank = start; rank < stop; rank++) {
        Node *next = x->level[0].forward;
        unlink_node(self, x, update);
        free_node(x);
        x = next;
    }
}

static int
pop(PyObject *order, int highest, double *score, PyObject **member)
{
    ZOrder *self = (ZOrder *)order;
    if (self->length == 0)
        return 0;
    Node *x = highest ? self->tail : self->header->level[0].forward;
    *score = x->score;
    *member = Py_NewRef(x->member);
    delete_ranks(self, highest ? self->length - 1 : 0, highest ? self->length : 1);
    /* A pop is usually followed by another: start loading what it will read, the member of
     * the new end node and the node after it (scattered in memory, each a cache miss). */
    Node *next = highest ? self->tail : self->header->level[0].forward;
    if (next != NULL) {
        __builtin_prefetch(next->member);
        __builtin_prefetch(highest ? next->backward : next->level[0].forward);
    }
    return 1;
}

/* -- Python's side ------------------------------------------------------------------------- */

/* Reads a key: (score, member), or (score,) when ``partial``. Returns 0, or -1 with an
 * exception. */
static int
parse_key(PyObject *key, int partial, double *score, PyObject **member)
{
    Py_ssize_t size = PyTuple_Check(key) ? PyTuple_GET_SIZE(key) : 0;
    if (size != 2 && !(partial && size == 1)) {
        PyErr_SetString(PyExc_TypeError, partial ? "expected (score, member) or (score,)"
                                                 : "expected (score, member)");
        return -1;
    }
    *score = PyFloat_AsDouble(PyTuple_GET_ITEM(key, 0));
    if (*score == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(*score)) {
        PyErr_SetString(PyExc_ValueError, "a score must not be NaN");
        return -1;
    }
    *member = size == 2 ? PyTuple_GET_ITEM(key, 1) : NULL;
    if (*member != NULL && !PyBytes_Check(*member)) {
        PyErr_SetString(PyExc_TypeError, "a member must be bytes");
        return -1;
    }
    return 0;
}

static PyObject *
entry_tuple(const Node *node)
{
    PyObject *score = PyFloat_FromDouble(node->score);
    if (score == NULL)
        return NULL;
    PyObject *entry = PyTuple_Pack(2, score, node->member);
    Py_DECREF(score);
    return entry;
}

/* The entries ranked start to stop - 1 (clamped to the order), highest first if
 * ``reverse``, as a list. */
static PyObject *
entries_list(ZOrder *self, Py_ssize_t start, Py_ssize_t stop, int reverse)
{
    Py_ssize_t count = stop > start ? stop - start : 0;
    PyObject *list = PyList_New(count);
    if (list == NULL || count == 0)
        return list;
    Node *x = node_at(self, start, NULL);
    for (Py_ssize_t i = 0; i < count; i++, x = x->level[0].forward) {
        PyObject *entry = entry_tuple(x);
        if (entry == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, reverse ? count - 1 - i : i, entry);
    }
    return list;
}

static int
add_all(ZOrder *self, PyObject *iterable)
{
    PyObject *iterator = PyObject_GetIter(iterable);
    if (iterator == NULL)
        return -1;
    PyObject *entry;
    while ((entry = PyIter_Next(iterator)) != NULL) {
        double score;
        PyObject *member;
        int failed = parse_key(entry, 0, &score, &member) < 0 ||
                     insert((PyObject *)self, score, member) < 0;
        Py_DECREF(entry);
        if (failed) {
            Py_DECREF(iterator);
            return -1;
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *
ZOrder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *iterable = NULL;
    static char *keywords[] = {"iterable", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:ZOrder", keywords, &iterable))
        return NULL;
    ZOrder *self = (ZOrder *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->header = new_node(MAX_LEVEL, 0.0, NULL);
    if (self->header == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    for (int i = 0; i < MAX_LEVEL; i++) {
        self->header->level[i].forward = NULL;
        self->header->level[i].span = 0;
    }
    self->header->backward = NULL;
    self->tail = NULL;
    self->length = 0;
    self->level = 1;
    if (iterable != NULL && add_all(self, iterable) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
ZOrder_dealloc(ZOrder *self)
{
    if (self->header != NULL) {
        Node *x = self->header->level[0].forward;
        while (x != NULL) {
            Node *next = x->level[0].forward;
            free_node(x);
            x = next;
        }
        free_node(self->header);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
ZOrder_add(ZOrder *self, PyObject *entry)
{
    double score;
    PyObject *member;
    if (parse_key(entry, 0, &score, &member) < 0 || insert((PyObject *)self, score, member) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ValueError for an entry that is not in the order, as SortedList raises; NULL. */
static PyObject *
not_there(void)
{
    PyErr_SetString(PyExc_ValueError, "entry not in the order");
    return NULL;
}

static PyObject *
ZOrder_remove(ZOrder *self, PyObject *entry)
{
    double score;
    PyObject *member;
    if (parse_key(entry, 0, &score, &member) < 0)
        return NULL;
    if (!remove_entry((PyObject *)self, score, member))
        return not_there();
    Py_RETURN_NONE;
}

static PyObject *
ZOrder_index(ZOrder *self, PyObject *entry)
{
    double score;
    PyObject *member;
    if (parse_key(entry, 0, &score, &member) < 0)
        return NULL;
    Py_ssize_t rank = rank_of((PyObject *)self, score, member);
    return rank < 0 ? not_there() : PyLong_FromSsize_t(rank);
}

static PyObject *
bisect(ZOrder *self, PyObject *key, int right)
{
    double score;
    PyObject *member;
    if (parse_key(key, 1, &score, &member) < 0)
        return NULL;
    return PyLong_FromSsize_t(seek(self, score, member, right, NULL));
}

static PyObject *
ZOrder_bisect_left(ZOrder *self, PyObject *key)
{
    return bisect(self, key, 0);
}

static PyObject *
ZOrder_bisect_right(ZOrder *self, PyObject *key)
{
    return bisect(self, key, 1);
}

/* Reads start and stop as a slice of the order would (None, negatives from the end). */
static int
slice_bounds(ZOrder *self, PyObject *start, PyObject *stop, Py_ssize_t *first, Py_ssize_t *last)
{
    PyObject *slice = PySlice_New(start, stop, NULL);
    if (slice == NULL)
        return -1;
    Py_ssize_t step;
    int failed = PySlice_Unpack(slice, first, last, &step);
    Py_DECREF(slice);
    if (failed < 0)
        return -1;
    PySlice_AdjustIndices(self->length, first, last, step);
    return 0;
}

static PyObject *
ZOrder_islice(ZOrder *self, PyObject *args, PyObject *kwargs)
{
    PyObject *start = Py_None, *stop = Py_None;
    int reverse = 0;
    static char *keywords[] = {"start", "stop", "reverse", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOp:islice", keywords, &start, &stop,
                                     &reverse))
        return NULL;
    Py_ssize_t first, last;
    if (slice_bounds(self, start, stop, &first, &last) < 0)
        return NULL;
    return entries_list(self, first, last, reverse);
}

static PyObject *
ZOrder_reduce(ZOrder *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *entries = entries_list(self, 0, self->length, 0);
    if (entries == NULL)
        return NULL;
    return Py_BuildValue("(O(N))", (PyObject *)Py_TYPE(self), entries);
}

static Py_ssize_t
ZOrder_length(ZOrder *self)
{
    return self->length;
}

/* The ranks ``index`` names, start to stop - 1: a slice without a step, or one rank
 * (negative from the end). Sets *is_slice; returns 0, or -1 with an exception. */
static int
index_range(ZOrder *self, PyObject *index, Py_ssize_t *start, Py_ssize_t *stop, int *is_slice)
{
    *is_slice = PySlice_Check(index);
    if (*is_slice) {
        Py_ssize_t step;
        if (PySlice_Unpack(index, start, stop, &step) < 0)
            return -1;
        if (step != 1) {
            PyErr_SetString(PyExc_ValueError, "a ZOrder slice takes no step");
            return -1;
        }
        PySlice_AdjustIndices(self->length, start, stop, step);
        return 0;
    }
    *start = PyNumber_AsSsize_t(index, PyExc_IndexError);
    if (*start == -1 && PyErr_Occurred())
        return -1;
    if (*start < 0)
        *start += self->length;
    if (*start < 0 || *start >= self->length) {
        PyErr_SetString(PyExc_IndexError, "ZOrder index out of range");
        return -1;
    }
    *stop = *start + 1;
    return 0;
}

static PyObject *
ZOrder_subscript(ZOrder *self, PyObject *index)
{
    Py_ssize_t start, stop;
    int is_slice;
    if (index_range(self, index, &start, &stop, &is_slice) < 0)
        return NULL;
    if (is_slice)
        return entries_list(self, start, stop, 0);
    return entry_tuple(node_at(self, start, NULL));
}

/* ``del order[start:stop]`` and ``del order[rank]``; assignment is not supported. */
static int
ZOrder_ass_subscript(ZOrder *self, PyObject *index, PyObject *value)
{
    if (value != NULL) {
        PyErr_SetString(PyExc_TypeError, "a ZOrder only takes add(); it cannot be assigned to");
        return -1;
    }
    Py_ssize_t start, stop;
    int is_slice;
    if (index_range(self, index, &start, &stop, &is_slice) < 0)
        return -1;
    delete_ranks(self, start, stop);
    return 0;
}

static PyObject *
ZOrder_iter(ZOrder *self)
{
    PyObject *entries = entries_list(self, 0, self->length, 0);
    if (entries == NULL)
        return NULL;
    PyObject *iterator = PyObject_GetIter(entries);
    Py_DECREF(entries);
    return iterator;
}

static PyMethodDef ZOrder_methods[] = {
    {"add", (PyCFunction)ZOrder_add, METH_O, "add(entry): insert (score, member)."},
    {"remove", (PyCFunction)ZOrder_remove, METH_O,
     "remove(entry): take (score, member) out; ValueError if it is not there."},
    {"index", (PyCFunction)ZOrder_index, METH_O,
     "index(entry) -> int: the rank of (score, member); ValueError if it is not there."},
    {"bisect_left", (PyCFunction)ZOrder_bisect_left, METH_O,
     "bisect_left(key) -> int: how many entries come before key, (score, member) or (score,)."},
    {"bisect_right", (PyCFunction)ZOrder_bisect_right, METH_O,
     "bisect_right(key) -> int: how many entries come before key or equal it."},
    {"islice", (PyCFunction)(void (*)(void))ZOrder_islice, METH_VARARGS | METH_KEYWORDS,
     "islice(start=None, stop=None, reverse=False) -> list: the entries order[start:stop], "
     "highest first if reverse."},
    {"__reduce__", (PyCFunction)ZOrder_reduce, METH_NOARGS, "Pickle and copy as the entries."},
    {NULL, NULL, 0, NULL},
};

static PyMappingMethods ZOrder_mapping = {
    .mp_length = (lenfunc)ZOrder_length,
    .mp_subscript = (binaryfunc)ZOrder_subscript,
    .mp_ass_subscript = (objobjargproc)ZOrder_ass_subscript,
};

static PySequenceMethods ZOrder_sequence = {
    .sq_length = (lenfunc)ZOrder_length,
};

static PyTypeObject ZOrderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "residentd.apps.kv._zorder.ZOrder",
    .tp_basicsize = sizeof(ZOrder),
    .tp_dealloc = (destructor)ZOrder_dealloc,
    .tp_as_mapping = &ZOrder_mapping,
    .tp_as_sequence = &ZOrder_sequence,
    .tp_iter = (getiterfunc)ZOrder_iter,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ZOrder(iterable=()): (score, member) entries in order, in a skip list with spans.",
    .tp_methods = ZOrder_methods,
    .tp_new = ZOrder_new,
};

static ZOrderAPI api = {&ZOrderType, insert, remove_entry, rank_of, pop};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_zorder", "A sorted set's order: Redis's skip list.", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__zorder(void)
{
    PyObject *created = module_with_type(&module, "ZOrder", &ZOrderType);
    if (created == NULL)
        return NULL;
    PyObject *capsule = PyCapsule_New(&api, ZORDER_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(created, "API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
