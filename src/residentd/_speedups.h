/* What the C speedups share: the steps that make a module exporting one type and that fetch
 * a Python class they raise or check (ProtocolError). Included by the .c files; each is its own
 * extension, so everything here is static. */

#ifndef RESIDENTD_SPEEDUPS_H
#define RESIDENTD_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* module.name, a new reference, or NULL with an exception. */
static PyObject *
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
static PyObject *
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

#endif
