/* What the C speedups share: the steps that make a module exporting one type, that fetch a
 * Python class they raise or check (ProtocolError), and a codec's slow path of encoding
 * messages one by one. Included by the .c files; each is its own extension, so everything
 * here is static (inline: a file that does not use a piece is not warned about it). */

#ifndef RESIDENTD_SPEEDUPS_H
#define RESIDENTD_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* module.name, a new reference, or NULL with an exception. */
static inline PyObject *
import_attribute(const char *module, const char *name)
{
    PyObject *found = PyImport_ImportModule(module);
    if (found == NULL)
        return NULL;
    PyObject *attribute = PyObject_GetAttrString(found, name);
    Py_DECREF(found);
    return attribute;
}

/* A new module made from ``definition`` with ``type`` readied and added as ``name``. */
static inline PyObject *
module_with_type(PyModuleDef *definition, const char *name, PyTypeObject *type)
{
    if (PyType_Ready(type) < 0)
        return NULL;
    PyObject *module = PyModule_Create(definition);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, name, (PyObject *)type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

/* b"".join(map(codec.encode, messages)), for messages that are not all bytes. */
static inline PyObject *
encode_each(PyObject *codec, PyObject *messages)
{
    PyObject *encode = PyObject_GetAttrString(codec, "encode");
    if (encode == NULL)
        return NULL;
    PyObject *encoded = PyObject_CallFunctionObjArgs((PyObject *)&PyMap_Type, encode, messages,
                                                     NULL);
    Py_DECREF(encode);
    if (encoded == NULL)
        return NULL;
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    PyObject *data = empty ? PyObject_CallMethod(empty, "join", "O", encoded) : NULL;
    Py_XDECREF(empty);
    Py_DECREF(encoded);
    return data;
}

#endif
