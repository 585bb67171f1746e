/* What the C speedups share: the steps that make a module exporting one type, that fetch a
 * Python class they raise or check (ProtocolError), that intern the attribute names a module
 * looks up, and a codec's slow path of encoding messages one by one. Included by the .c files; each is its own extension, so everything
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

/* An attribute name a module looks up, interned at import into ``*slot``. */
typedef struct {
    PyObject **slot;
    const char *text;
} InternedName;

/* Interns each of ``count`` names into its slot: 0, or -1 with an exception. */
static inline int
intern_all(const InternedName *names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL)
            return -1;
    }
    return 0;
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

/* One call site's memory of the function behind ``object.name`` for the last type it saw, so
 * that a hot call skips the attribute lookup. It is used only where that lookup cannot find
 * anything else: a type with the default attribute lookup, no instance __dict__, and a plain
 * function or method descriptor under that name (one that takes the object as its first
 * argument). It stays valid while the type's version tag is the same, which CPython changes
 * whenever the type or one of its bases is modified. Any other case makes the ordinary call. */
typedef struct {
    PyTypeObject *type;
    unsigned int version;
    PyObject *function; /* a strong reference, or NULL */
} MethodCache;

static inline PyObject *
cached_function(MethodCache *cache, PyObject *object, PyObject *name)
{
    PyTypeObject *type = Py_TYPE(object);
    if (cache->function != NULL && cache->type == type && type->tp_version_tag == cache->version &&
        PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG))
        return cache->function;
    Py_CLEAR(cache->function);
    if (type->tp_getattro != PyObject_GenericGetAttr || type->tp_dictoffset != 0)
        return NULL;
    PyObject *found = _PyType_Lookup(type, name); /* borrowed; tags the type with a version */
    if (found == NULL || !PyType_HasFeature(Py_TYPE(found), Py_TPFLAGS_METHOD_DESCRIPTOR) ||
        !PyType_HasFeature(type, Py_TPFLAGS_VALID_VERSION_TAG))
        return NULL;
    cache->type = type;
    cache->version = type->tp_version_tag;
    cache->function = Py_NewRef(found);
    return found;
}

/* function(object, argument), holding a reference to the function for the call: the call may
 * replace the method on the class, and a nested call through the same cache drop it. */
static inline PyObject *
call_function_held(PyObject *function, PyObject *object, PyObject *argument)
{
    PyObject *arguments[2] = {object, argument};
    Py_INCREF(function);
    PyObject *result = PyObject_Vectorcall(function, arguments, 2, NULL);
    Py_DECREF(function);
    return result;
}

/* object.name(argument), through ``cache``: a new reference, or NULL with an exception. */
static inline PyObject *
call_method_cached(MethodCache *cache, PyObject *object, PyObject *name, PyObject *argument)
{
    PyObject *function = cached_function(cache, object, name);
    if (function == NULL)
        return PyObject_CallMethodOneArg(object, name, argument);
    return call_function_held(function, object, argument);
}

/* object.name(), through ``cache``: a new reference, or NULL with an exception. */
static inline PyObject *
call_method_cached_noargs(MethodCache *cache, PyObject *object, PyObject *name)
{
    PyObject *function = cached_function(cache, object, name);
    if (function == NULL)
        return PyObject_CallMethodNoArgs(object, name);
    Py_INCREF(function);
    PyObject *result = PyObject_Vectorcall(function, &object, 1, NULL);
    Py_DECREF(function);
    return result;
}

#endif
