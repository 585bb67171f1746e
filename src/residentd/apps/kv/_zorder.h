/* The C interface of _zorder.c's order-statistic tree, for _fastpath.c: the fast path reaches it through
 * a capsule (ZORDER_CAPSULE) rather than through Python method calls. Entries are a double
 * score (never NaN) and a bytes member, ordered by score, then by the members' bytes. */

#ifndef RESIDENTD_KV_ZORDER_H
#define RESIDENTD_KV_ZORDER_H

#include <Python.h>

#define ZORDER_CAPSULE "residentd.apps.kv._zorder.API"

typedef struct {
    PyTypeObject *type; /* ZOrder: what a SortedSet's ``order`` must be for these to apply */
    /* Inserts (score, member): 0, or -1 with MemoryError. */
    int (*insert)(PyObject *order, double score, PyObject *member);
    /* Removes (score, member): 1, or 0 when it is not there. */
    int (*remove)(PyObject *order, double score, PyObject *member);
    /* The 0-based rank of (score, member), or -1 when it is not there. */
    Py_ssize_t (*rank)(PyObject *order, double score, PyObject *member);
    /* Removes the first (or last, ``highest``) entry: sets *score and *member (a new
     * reference) and returns 1, or returns 0 when the order is empty. */
    int (*pop)(PyObject *order, int highest, double *score, PyObject **member);
} ZOrderAPI;

#endif
