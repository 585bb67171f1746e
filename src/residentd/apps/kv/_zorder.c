/* ZOrder: the order of a sorted set's entries, an order-statistic B+ tree. Redis keeps the
 * order in a skip list with spans (t_zset.c); this keeps it in a tree whose leaves hold up to
 * 64 entries in order and whose inner nodes hold up to 64 children with the number of entries
 * under each, so insert, remove, rank, entry by rank and bisect are O(log n) as there, with a
 * few node reads where a skip list follows a pointer per step (measured in bench/kv_zset.py
 * and by redis-benchmark's ZADD). zset.py uses it as its ``order`` when it is built, in place
 * of sortedcontainers' SortedList, whose API it keeps for what zset.py, geo.py and zsets.py
 * call: add, remove, index, bisect_left, bisect_right, islice, indexing, ``del`` of a slice,
 * len and iteration.
 *
 * An entry is a (score, member) tuple: a float that is not NaN and bytes. Entries are ordered
 * by score, then by the members' bytes (memcmp, then length): Python's order of such tuples,
 * which is Redis's. A key for bisect_left and bisect_right may be a 1-tuple ``(score,)``,
 * which sorts before every entry of that score, as in Python. islice and ``del`` of a slice
 * cost O(log n) plus the entries they touch. Iteration walks a list of the entries taken when
 * it starts.
 *
 * Members are bytes only, so a ZOrder holds no reference that could make a cycle and has no
 * GC support. _fastpath.c reaches the tree through a capsule (_zorder.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../../_speedups.h"
#include "_zorder.h"

/* Entries a leaf holds, and children an inner node holds, at most; a node other than the root
 * holds at least a quarter of that (it is joined with a neighbour when it falls under). */
#define LEAF_MAX 64
#define LEAF_MIN (LEAF_MAX / 4)
#define INNER_MAX 64
#define INNER_MIN (INNER_MAX / 4)
/* Inner levels at most: with at least INNER_MIN children an inner node, far more than a
 * Py_ssize_t of entries needs. */
#define MAX_HEIGHT 24

/* A leaf: its entries in order, scores and members in two arrays, so that a search reads the
 * scores' cache lines and a member only where a score ties. The leaves form a list in order. */
typedef struct Leaf {
    int count;
    struct Leaf *prev;
    struct Leaf *next;
    double score[LEAF_MAX];
    PyObject *member[LEAF_MAX]; /* bytes, owned */
} Leaf;

/* An inner node: its children, how many entries each holds, and for each child but the first
 * a separator: a key at or before every entry of that child and after every entry of the one
 * before it (the first entry the child had when the separator was set). */
typedef struct Inner {
    int count;
    Py_ssize_t size[INNER_MAX];
    void *child[INNER_MAX]; /* Inner nodes, or Leaf nodes at the lowest inner level */
    double score[INNER_MAX];    /* [0] unused */
    PyObject *member[INNER_MAX]; /* [0] unused; owned */
} Inner;

typedef struct {
    PyObject_HEAD
    void *root;   /* a Leaf when height is 0 */
    int height;   /* inner levels above the leaves */
    Leaf *first;
    Leaf *last;
    Py_ssize_t length;
} ZOrder;

/* The inner nodes from the root down to a leaf, and the child taken at each. */
typedef struct {
    Inner *node[MAX_HEIGHT];
    int index[MAX_HEIGHT];
} Path;

static PyTypeObject ZOrderType;

static Leaf *
new_leaf(void)
{
    Leaf *leaf = PyMem_Malloc(sizeof(Leaf));
    if (leaf == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    leaf->count = 0;
    leaf->prev = leaf->next = NULL;
    return leaf;
}

static Inner *
new_inner(void)
{
    Inner *node = PyMem_Malloc(sizeof(Inner));
    if (node == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    node->count = 0;
    return node;
}

/* Frees a node, everything under it, and the references they hold. */
static void
free_tree(void *node, int height)
{
    if (height == 0) {
        Leaf *leaf = node;
        for (int i = 0; i < leaf->count; i++)
            Py_DECREF(leaf->member[i]);
        PyMem_Free(leaf);
        return;
    }
    Inner *inner = node;
    for (int i = 0; i < inner->count; i++) {
        if (i > 0)
            Py_DECREF(inner->member[i]);
        free_tree(inner->child[i], height - 1);
    }
    PyMem_Free(inner);
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

/* Whether the entry (s, m) comes before the key (score, member), or is equal to it too when
 * ``or_equal``. A NULL member is the 1-tuple (score,), before every entry of that score. */
static inline int
before(double s, PyObject *m, double score, PyObject *member, int or_equal)
{
    if (s != score)
        return s < score;
    if (member == NULL)
        return 0;
    int order = compare_members(m, member);
    return order < 0 || (or_equal && order == 0);
}

/* How many of a leaf's entries come before the key (or equal it, ``or_equal``). */
static inline int
leaf_search(const Leaf *leaf, double score, PyObject *member, int or_equal)
{
    int low = 0, high = leaf->count;
    while (low < high) {
        int middle = (low + high) >> 1;
        if (before(leaf->score[middle], leaf->member[middle], score, member, or_equal))
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/* The child of ``node`` where the key belongs: the last whose separator is at or before it.
 * Every entry of an earlier child comes before the key, none of a later one does or equals
 * it, so a search for either bound goes down the same way. */
static inline int
inner_search(const Inner *node, double score, PyObject *member)
{
    int low = 1, high = node->count;
    while (low < high) {
        int middle = (low + high) >> 1;
        if (before(node->score[middle], node->member[middle], score, member, 1))
            low = middle + 1;
        else
            high = middle;
    }
    return low - 1;
}

/* Goes down to the leaf where the key belongs, filling ``path``; adds to *rank, when it is not
 * NULL, the entries of the leaves before that one. */
static Leaf *
descend_to_key(ZOrder *self, double score, PyObject *member, Path *path, Py_ssize_t *rank)
{
    void *node = self->root;
    for (int depth = 0; depth < self->height; depth++) {
        Inner *inner = node;
        int index = inner_search(inner, score, member);
        if (rank != NULL)
            for (int i = 0; i < index; i++)
                *rank += inner->size[i];
        path->node[depth] = inner;
        path->index[depth] = index;
        node = inner->child[index];
        __builtin_prefetch(node);
    }
    return node;
}

/* Goes down to the leaf holding the entry ranked ``rank`` (< length), filling ``path``; sets
 * *position to the entry's place in the leaf. */
static Leaf *
descend_to_rank(ZOrder *self, Py_ssize_t rank, Path *path, int *position)
{
    void *node = self->root;
    for (int depth = 0; depth < self->height; depth++) {
        Inner *inner = node;
        int index = 0;
        while (index < inner->count - 1 && rank >= inner->size[index])
            rank -= inner->size[index++];
        path->node[depth] = inner;
        path->index[depth] = index;
        node = inner->child[index];
    }
    *position = (int)rank;
    return node;
}

/* How many entries come before the key (or are equal to it, ``or_equal``). */
static Py_ssize_t
seek(ZOrder *self, double score, PyObject *member, int or_equal)
{
    Path path;
    Py_ssize_t rank = 0;
    Leaf *leaf = descend_to_key(self, score, member, &path, &rank);
    return rank + leaf_search(leaf, score, member, or_equal);
}

/* Moves ``count`` entries of leaf ``from`` at ``from_at`` to leaf ``to`` at ``to_at`` (the
 * same leaf too: the ranges may overlap); references move with them. */
static inline void
move_entries(Leaf *to, int to_at, const Leaf *from, int from_at, int count)
{
    memmove(&to->score[to_at], &from->score[from_at], count * sizeof(double));
    memmove(&to->member[to_at], &from->member[from_at], count * sizeof(PyObject *));
}

/* Moves ``count`` children, with their sizes and separators, as move_entries moves entries. */
static inline void
move_children(Inner *to, int to_at, const Inner *from, int from_at, int count)
{
    memmove(&to->child[to_at], &from->child[from_at], count * sizeof(void *));
    memmove(&to->size[to_at], &from->size[from_at], count * sizeof(Py_ssize_t));
    memmove(&to->score[to_at], &from->score[from_at], count * sizeof(double));
    memmove(&to->member[to_at], &from->member[from_at], count * sizeof(PyObject *));
}

static inline void
inner_sum(const Inner *node, Py_ssize_t *total)
{
    Py_ssize_t sum = 0;
    for (int i = 0; i < node->count; i++)
        sum += node->size[i];
    *total = sum;
}

/* Puts ``child`` at ``index`` (>= 1) of ``node``, which has room, with its size and separator
 * (whose reference moves into the node). */
static void
inner_put(Inner *node, int index, void *child, Py_ssize_t size, double score, PyObject *member)
{
    move_children(node, index + 1, node, index, node->count - index);
    node->child[index] = child;
    node->size[index] = size;
    node->score[index] = score;
    node->member[index] = member;
    node->count++;
}

/* Takes the child at ``index`` (>= 1) out of ``node``, with its separator, whose reference the
 * caller has dealt with. */
static void
inner_take(Inner *node, int index)
{
    move_children(node, index, node, index + 1, node->count - index - 1);
    node->count--;
}

/* A node split off below, going up to its parent: the node, its entries, its separator. */
typedef struct {
    void *node;
    Py_ssize_t size;
    double score;
    PyObject *member; /* owned */
} Split;

/* Moves the upper half of a full leaf into ``right``, a new leaf after it. */
static void
split_leaf(ZOrder *self, Leaf *leaf, Leaf *right, Split *split)
{
    int half = LEAF_MAX / 2;
    right->count = leaf->count - half;
    move_entries(right, 0, leaf, half, right->count);
    leaf->count = half;
    right->prev = leaf;
    right->next = leaf->next;
    if (leaf->next != NULL)
        leaf->next->prev = right;
    else
        self->last = right;
    leaf->next = right;
    split->node = right;
    split->size = right->count;
    split->score = right->score[0];
    split->member = Py_NewRef(right->member[0]);
}

/* Moves the upper half of a full inner node into ``right``, a new one; the separator of the
 * first child it moves goes up in ``split``. */
static void
split_inner(Inner *node, Inner *right, Split *split)
{
    int half = INNER_MAX / 2;
    right->count = node->count - half;
    move_children(right, 0, node, half, right->count);
    node->count = half;
    split->node = right;
    inner_sum(right, &split->size);
    split->score = right->score[0];
    split->member = right->member[0]; /* moves up */
}

/* The nodes an insert into ``leaf`` will need: a leaf if it is full, an inner node for each
 * full one above it that the split reaches, and a new root if it reaches past the root.
 * Allocated before anything changes, so that a MemoryError leaves the order as it was:
 * 0, or -1 with MemoryError. */
static int
spare_nodes(ZOrder *self, Leaf *leaf, Path *path, Leaf **spare_leaf, Inner **spare_inner,
            int *inners)
{
    *spare_leaf = NULL;
    *inners = 0;
    if (leaf->count < LEAF_MAX)
        return 0;
    int depth = self->height - 1;
    while (depth >= 0 && path->node[depth]->count == INNER_MAX)
        depth--;
    int needed = self->height - 1 - depth + (depth < 0); /* splits above, and a new root */
    *spare_leaf = new_leaf();
    if (*spare_leaf == NULL)
        return -1;
    for (; *inners < needed; (*inners)++) {
        spare_inner[*inners] = new_inner();
        if (spare_inner[*inners] == NULL) {
            while (*inners > 0)
                PyMem_Free(spare_inner[--*inners]);
            PyMem_Free(*spare_leaf);
            return -1;
        }
    }
    return 0;
}

static int
insert(PyObject *order, double score, PyObject *member)
{
    ZOrder *self = (ZOrder *)order;
    Path path;
    Leaf *leaf = descend_to_key(self, score, member, &path, NULL);
    int position = leaf_search(leaf, score, member, 0);
    Leaf *spare_leaf;
    Inner *spare_inner[MAX_HEIGHT + 1];
    int inners;
    if (spare_nodes(self, leaf, &path, &spare_leaf, spare_inner, &inners) < 0)
        return -1;
    Split split = {NULL, 0, 0.0, NULL};
    if (spare_leaf != NULL) {
        split_leaf(self, leaf, spare_leaf, &split);
        if (position > leaf->count) { /* never first in the new leaf: its separator stays */
            position -= leaf->count;
            leaf = spare_leaf;
            split.size++;
        }
    }
    move_entries(leaf, position + 1, leaf, position, leaf->count - position);
    leaf->score[position] = score;
    leaf->member[position] = Py_NewRef(member);
    leaf->count++;
    self->length++;
    for (int depth = self->height - 1; depth >= 0; depth--) {
        Inner *node = path.node[depth];
        int index = path.index[depth];
        node->size[index]++;
        if (split.node == NULL)
            continue;
        node->size[index] -= split.size;
        Split above = {NULL, 0, 0.0, NULL};
        Inner *target = node;
        int at = index + 1;
        if (node->count == INNER_MAX) {
            split_inner(node, spare_inner[--inners], &above);
            if (at > node->count) {
                target = above.node;
                at -= node->count;
                above.size += split.size;
            }
        }
        inner_put(target, at, split.node, split.size, split.score, split.member);
        split = above;
    }
    if (split.node != NULL) {
        Inner *root = spare_inner[--inners];
        root->count = 2;
        root->child[0] = self->root;
        root->size[0] = self->length - split.size;
        root->child[1] = split.node;
        root->size[1] = split.size;
        root->score[1] = split.score;
        root->member[1] = split.member;
        self->root = root;
        self->height++;
    }
    return 0;
}

/* Joins the children ``index`` and ``index + 1`` of ``node``, two leaves, one of which has
 * fallen under LEAF_MIN: into one when they fit in three quarters of a leaf (so that the next
 * insert does not split them again), else by moving entries so that each holds half. */
static void
join_leaves(ZOrder *self, Inner *node, int index)
{
    Leaf *left = node->child[index], *right = node->child[index + 1];
    int total = left->count + right->count;
    if (total <= LEAF_MAX * 3 / 4) {
        move_entries(left, left->count, right, 0, right->count);
        left->count = total;
        left->next = right->next;
        if (right->next != NULL)
            right->next->prev = left;
        else
            self->last = left;
        node->size[index] = total;
        Py_DECREF(node->member[index + 1]);
        inner_take(node, index + 1);
        PyMem_Free(right);
        return;
    }
    int half = total / 2;
    if (left->count < half) { /* move right's first entries to the end of left */
        int moved = half - left->count;
        move_entries(left, left->count, right, 0, moved);
        move_entries(right, 0, right, moved, right->count - moved);
        left->count += moved;
        right->count -= moved;
    }
    else { /* move left's last entries to the start of right */
        int moved = left->count - half;
        move_entries(right, moved, right, 0, right->count);
        move_entries(right, 0, left, half, moved);
        left->count -= moved;
        right->count += moved;
    }
    node->size[index] = left->count;
    node->size[index + 1] = right->count;
    node->score[index + 1] = right->score[0];
    Py_SETREF(node->member[index + 1], Py_NewRef(right->member[0]));
}

/* Joins the children ``index`` and ``index + 1`` of ``node``, two inner nodes, as
 * join_leaves joins leaves; the separator between them comes down from ``node`` into the
 * joined children, and when they share out their children the new one goes up. */
static void
join_inners(Inner *node, int index)
{
    Inner *left = node->child[index], *right = node->child[index + 1];
    int total = left->count + right->count;
    /* the separator of right's first child is node's, between the two */
    right->score[0] = node->score[index + 1];
    right->member[0] = node->member[index + 1];
    if (total <= INNER_MAX * 3 / 4) {
        move_children(left, left->count, right, 0, right->count);
        left->count = total;
        node->size[index] += node->size[index + 1];
        inner_take(node, index + 1);
        PyMem_Free(right);
        return;
    }
    int half = total / 2;
    if (left->count < half) {
        int moved = half - left->count;
        move_children(left, left->count, right, 0, moved);
        move_children(right, 0, right, moved, right->count - moved);
        left->count += moved;
        right->count -= moved;
    }
    else {
        int moved = left->count - half;
        move_children(right, moved, right, 0, right->count);
        move_children(right, 0, left, half, moved);
        left->count = half;
        right->count += moved;
    }
    /* right's first separator goes up between the two */
    node->score[index + 1] = right->score[0];
    node->member[index + 1] = right->member[0];
    inner_sum(left, &node->size[index]);
    inner_sum(right, &node->size[index + 1]);
}

/* Takes ``count`` entries (at most those from ``position`` to the leaf's end) out of the leaf
 * ``path`` leads to, giving their references back, then joins what fell under its minimum
 * with a neighbour, from the leaf up. */
static void
remove_from_leaf(ZOrder *self, Path *path, Leaf *leaf, int position, int count)
{
    for (int i = position; i < position + count; i++)
        Py_DECREF(leaf->member[i]);
    move_entries(leaf, position, leaf, position + count, leaf->count - position - count);
    leaf->count -= count;
    self->length -= count;
    for (int depth = 0; depth < self->height; depth++)
        path->node[depth]->size[path->index[depth]] -= count;
    for (int depth = self->height - 1; depth >= 0; depth--) {
        Inner *node = path->node[depth];
        int index = path->index[depth];
        int lowest = depth == self->height - 1;
        int fill = lowest ? ((Leaf *)node->child[index])->count
                          : ((Inner *)node->child[index])->count;
        if (fill >= (lowest ? LEAF_MIN : INNER_MIN))
            return;
        int pair = index > 0 ? index - 1 : index; /* with the one before, or else after */
        if (lowest)
            join_leaves(self, node, pair);
        else
            join_inners(node, pair);
    }
    while (self->height > 0 && ((Inner *)self->root)->count == 1) {
        Inner *root = self->root;
        self->root = root->child[0];
        self->height--;
        PyMem_Free(root);
    }
}

static int
remove_entry(PyObject *order, double score, PyObject *member)
{
    ZOrder *self = (ZOrder *)order;
    Path path;
    Leaf *leaf = descend_to_key(self, score, member, &path, NULL);
    int position = leaf_search(leaf, score, member, 0);
    if (position == leaf->count || leaf->score[position] != score ||
        compare_members(leaf->member[position], member) != 0)
        return 0;
    remove_from_leaf(self, &path, leaf, position, 1);
    return 1;
}

static Py_ssize_t
rank_of(PyObject *order, double score, PyObject *member)
{
    ZOrder *self = (ZOrder *)order;
    Path path;
    Py_ssize_t rank = 0;
    Leaf *leaf = descend_to_key(self, score, member, &path, &rank);
    int position = leaf_search(leaf, score, member, 0);
    if (position == leaf->count || leaf->score[position] != score ||
        compare_members(leaf->member[position], member) != 0)
        return -1;
    return rank + position;
}

/* Removes the entries ranked start to stop - 1 (0 <= start <= stop <= length), a leaf's run
 * at a time. */
static void
delete_ranks(ZOrder *self, Py_ssize_t start, Py_ssize_t stop)
{
    Py_ssize_t left = stop - start;
    while (left > 0) {
        Path path;
        int position;
        Leaf *leaf = descend_to_rank(self, start, &path, &position);
        int count = (int)Py_MIN(left, (Py_ssize_t)(leaf->count - position));
        remove_from_leaf(self, &path, leaf, position, count);
        left -= count;
    }
}

static int
pop(PyObject *order, int highest, double *score, PyObject **member)
{
    ZOrder *self = (ZOrder *)order;
    if (self->length == 0)
        return 0;
    Path path;
    int position;
    Leaf *leaf = descend_to_rank(self, highest ? self->length - 1 : 0, &path, &position);
    *score = leaf->score[position];
    *member = Py_NewRef(leaf->member[position]);
    remove_from_leaf(self, &path, leaf, position, 1);
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
entry_tuple(double score, PyObject *member)
{
    PyObject *number = PyFloat_FromDouble(score);
    if (number == NULL)
        return NULL;
    PyObject *entry = PyTuple_Pack(2, number, member);
    Py_DECREF(number);
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
    Path path;
    int position;
    Leaf *leaf = descend_to_rank(self, start, &path, &position);
    for (Py_ssize_t i = 0; i < count; i++, position++) {
        if (position == leaf->count) {
            leaf = leaf->next;
            position = 0;
        }
        PyObject *entry = entry_tuple(leaf->score[position], leaf->member[position]);
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
    self->root = self->first = self->last = new_leaf();
    if (self->root == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->height = 0;
    self->length = 0;
    if (iterable != NULL && add_all(self, iterable) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
ZOrder_dealloc(ZOrder *self)
{
    if (self->root != NULL)
        free_tree(self->root, self->height);
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
    return PyLong_FromSsize_t(seek(self, score, member, right));
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
    Path path;
    int position;
    Leaf *leaf = descend_to_rank(self, start, &path, &position);
    return entry_tuple(leaf->score[position], leaf->member[position]);
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

/* -- the tree's invariants, for the tests ------------------------------------------------- */

/* Checks the subtree at ``node``: every entry in order and after *previous (NULL: none yet),
 * sizes, fill and separators right, leaves linked in order. Adds its entries to *total and
 * moves *leaf along the leaf list. 0, or -1 with AssertionError. */
static int
check_tree(ZOrder *self, void *node, int height, int is_root, Leaf **leaf, double *previous_score,
           PyObject **previous, Py_ssize_t *total)
{
    if (height == 0) {
        Leaf *this = node;
        if (this != *leaf)
            goto broken;
        if (!is_root && (this->count < LEAF_MIN || this->count > LEAF_MAX))
            goto broken;
        for (int i = 0; i < this->count; i++) {
            if (*previous != NULL &&
                !before(*previous_score, *previous, this->score[i], this->member[i], 0))
                goto broken;
            *previous_score = this->score[i];
            *previous = this->member[i];
        }
        *total += this->count;
        if (this->next != NULL && this->next->prev != this)
            goto broken;
        if (this->next == NULL && self->last != this)
            goto broken;
        *leaf = this->next;
        return 0;
    }
    Inner *inner = node;
    if (inner->count > INNER_MAX || inner->count < (is_root ? 2 : INNER_MIN))
        goto broken;
    for (int i = 0; i < inner->count; i++) {
        /* the separator is after everything before the child, at or before its first entry */
        if (i > 0 && *previous != NULL &&
            !before(*previous_score, *previous, inner->score[i], inner->member[i], 0))
            goto broken;
        Py_ssize_t before_child = *total;
        Leaf *first = *leaf;
        if (check_tree(self, inner->child[i], height - 1, 0, leaf, previous_score, previous,
                       total) < 0)
            return -1;
        if (*total - before_child != inner->size[i])
            goto broken;
        if (i > 0 && !before(inner->score[i], inner->member[i], first->score[0],
                             first->member[0], 1))
            goto broken;
    }
    return 0;
broken:
    PyErr_Format(PyExc_AssertionError, "ZOrder is broken at height %d", height);
    return -1;
}

static PyObject *
ZOrder_check(ZOrder *self, PyObject *Py_UNUSED(ignored))
{
    Leaf *leaf = self->first;
    double previous_score = 0.0;
    PyObject *previous = NULL;
    Py_ssize_t total = 0;
    if (check_tree(self, self->root, self->height, 1, &leaf, &previous_score, &previous,
                   &total) < 0)
        return NULL;
    if (leaf != NULL || total != self->length || self->first->prev != NULL) {
        PyErr_SetString(PyExc_AssertionError, "ZOrder's leaf list or length is broken");
        return NULL;
    }
    return PyLong_FromLong(self->height);
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
    {"_check", (PyCFunction)ZOrder_check, METH_NOARGS,
     "_check() -> int: the tree's height, after checking its invariants (AssertionError)."},
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
    .tp_doc = "ZOrder(iterable=()): (score, member) entries in order, in an order-statistic B+ tree.",
    .tp_methods = ZOrder_methods,
    .tp_new = ZOrder_new,
};

static ZOrderAPI api = {&ZOrderType, insert, remove_entry, rank_of, pop};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_zorder", "A sorted set's order: an order-statistic B+ tree.", -1, NULL,
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
