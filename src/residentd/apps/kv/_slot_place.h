/* Attributes held in plain slots (``__slots__``), read and written where their type keeps
 * them: the C fast path's way to the session's, the state's and the keyspace's attributes
 * (included by _fastpath.c). */

#ifndef RESIDENTD_KV_SLOT_PLACE_H
#define RESIDENTD_KV_SLOT_PLACE_H

#include <Python.h>
#include <structmember.h>

/* Where one attribute held in a plain slot (``__slots__``) sits in instances of one type,
 * learnt on first use: reading or writing it there is what PyObject_GetAttr and
 * PyObject_SetAttr do for such an attribute (a member descriptor of the type, which wins
 * over an instance dict), without their lookups; this saves most of a chunk's cost in
 * attribute lookups at pipeline 1. A type changed since (its version tag) is learnt again;
 * an attribute that is not a plain slot goes through PyObject_GetAttr and PyObject_SetAttr. */
typedef struct {
    PyObject **name;
    PyTypeObject *type; /* NULL until learnt (a strong reference) */
    unsigned int version;
    Py_ssize_t offset; /* -1: not a plain slot on that type */
} SlotPlace;

/* The address of the slot in ``object``, or NULL when it must go through the attribute
 * protocol. */
static inline PyObject **
slot_at(PyObject *object, SlotPlace *place)
{
    PyTypeObject *type = Py_TYPE(object);
    if (type != place->type || type->tp_version_tag != place->version ||
        !PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG)) {
        PyObject *descriptor = _PyType_Lookup(type, *place->name); /* gives the type a tag */
        if (!PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG))
            return NULL;
        PyMemberDef *member = descriptor != NULL && Py_IS_TYPE(descriptor, &PyMemberDescr_Type)
                                  ? ((PyMemberDescrObject *)descriptor)->d_member
                                  : NULL;
        Py_XSETREF(place->type, (PyTypeObject *)Py_NewRef(type));
        place->version = type->tp_version_tag;
        place->offset = member != NULL && member->type == T_OBJECT_EX && !(member->flags & READONLY)
                            ? member->offset
                            : -1;
    }
    return place->offset < 0 ? NULL : (PyObject **)((char *)object + place->offset);
}

/* getattr(object, name): a new reference, or NULL with an exception. */
static inline PyObject *
get_attribute(PyObject *object, SlotPlace *place)
{
    PyObject **slot = slot_at(object, place);
    if (slot != NULL && *slot != NULL)
        return Py_NewRef(*slot);
    return PyObject_GetAttr(object, *place->name); /* an unset slot raises there */
}

/* setattr(object, name, value): 0, or -1 with an exception. */
static inline int
set_attribute(PyObject *object, SlotPlace *place, PyObject *value)
{
    PyObject **slot = slot_at(object, place);
    if (slot == NULL)
        return PyObject_SetAttr(object, *place->name, value);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

/* object.name += count, for a counter (a slot, or any attribute): 0, or -1 with an
 * exception. */
static int
add_to_slot(PyObject *object, SlotPlace *place, Py_ssize_t count)
{
    if (count == 0)
        return 0;
    PyObject *old = get_attribute(object, place);
    if (old == NULL)
        return -1;
    PyObject *increment = PyLong_FromSsize_t(count);
    PyObject *sum = increment == NULL ? NULL : PyNumber_Add(old, increment);
    Py_DECREF(old);
    Py_XDECREF(increment);
    if (sum == NULL)
        return -1;
    int failed = set_attribute(object, place, sum);
    Py_DECREF(sum);
    return failed;
}

#endif
