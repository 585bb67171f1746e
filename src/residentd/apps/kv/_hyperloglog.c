/* The C version of the hot parts of kv's HyperLogLogs (apps/kv/hyperloglog.py, the Python
 * reference): PFADD's loop over its elements, and the registers PFCOUNT and PFMERGE read.
 *
 * add_all(hll, elements) -> bool raises each element's register in the bytearray ``hll``, a
 * valid HLL in Redis's layout, exactly as Redis's hllSparseSet/hllDenseSet do (splits and
 * merges of sparse opcodes, promotion to dense past 3000 bytes or a value over 32); it works
 * on a private copy and writes it back, resized, at the end. registers(hll) -> bytes gives the
 * 16384 register values, one byte each. Both raise ValueError for a sparse HLL whose opcodes
 * do not cover exactly 16384 registers (Redis's INVALIDOBJ); the caller checks the header.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define P 14
#define Q 50
#define REGISTERS 16384
#define HEADER 16
#define DENSE_SIZE (HEADER + REGISTERS * 6 / 8)
#define DENSE 0
#define SPARSE_MAX_BYTES 3000
#define VAL_MAX_VALUE 32
#define VAL_MAX_LEN 4
#define ZERO_MAX_LEN 64

#define IS_ZERO(p) (((*(p)) & 0xc0) == 0)
#define IS_XZERO(p) (((*(p)) & 0xc0) == 0x40)
#define IS_VAL(p) ((*(p)) & 0x80)
#define ZERO_LEN(p) (((*(p)) & 0x3f) + 1)
#define XZERO_LEN(p) (((((*(p)) & 0x3f) << 8) | (*((p) + 1))) + 1)
#define VAL_VALUE(p) ((((*(p)) >> 2) & 0x1f) + 1)
#define VAL_LEN(p) (((*(p)) & 0x3) + 1)
#define VAL_SET(p, val, len) (*(p) = (uint8_t)((((val) - 1) << 2 | ((len) - 1)) | 0x80))
#define ZERO_SET(p, len) (*(p) = (uint8_t)((len) - 1))
#define XZERO_SET(p, len)                          \
    do {                                           \
        int _l = (len) - 1;                        \
        *(p) = (uint8_t)((_l >> 8) | 0x40);        \
        *((p) + 1) = (uint8_t)(_l & 0xff);         \
    } while (0)

static uint64_t
murmurhash64a(const uint8_t *data, size_t len)
{
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    uint64_t h = 0xadc83b19ULL ^ (len * m);
    const uint8_t *end = data + (len - (len & 7));
    while (data != end) {
        uint64_t k = 0;
        for (int i = 7; i >= 0; i--)
            k = k << 8 | data[i];
        k *= m;
        k ^= k >> 47;
        k *= m;
        h ^= k;
        h *= m;
        data += 8;
    }
    switch (len & 7) {
    case 7: h ^= (uint64_t)data[6] << 48; /* fall through */
    case 6: h ^= (uint64_t)data[5] << 40; /* fall through */
    case 5: h ^= (uint64_t)data[4] << 32; /* fall through */
    case 4: h ^= (uint64_t)data[3] << 24; /* fall through */
    case 3: h ^= (uint64_t)data[2] << 16; /* fall through */
    case 2: h ^= (uint64_t)data[1] << 8; /* fall through */
    case 1: h ^= (uint64_t)data[0]; h *= m;
    }
    h ^= h >> 47;
    h *= m;
    h ^= h >> 47;
    return h;
}

static int
dense_get(const uint8_t *regs, long index)
{
    unsigned long byte = index * 6 / 8, shift = index * 6 & 7;
    unsigned long b0 = regs[byte], b1 = byte + 1 < REGISTERS * 6 / 8 ? regs[byte + 1] : 0;
    return (int)(((b0 >> shift) | (b1 << (8 - shift))) & 63);
}

static void
dense_set(uint8_t *regs, long index, unsigned long value)
{
    unsigned long byte = index * 6 / 8, shift = index * 6 & 7;
    regs[byte] &= (uint8_t)~(63UL << shift);
    regs[byte] |= (uint8_t)(value << shift);
    if (shift > 2) {
        regs[byte + 1] &= (uint8_t)~(63UL >> (8 - shift));
        regs[byte + 1] |= (uint8_t)(value >> (8 - shift));
    }
}

/* The 16384 registers of a sparse HLL into ``out``; -1 if they do not add up. */
static int
sparse_registers(const uint8_t *hll, size_t size, uint8_t *out)
{
    const uint8_t *p = hll + HEADER, *end = hll + size;
    long idx = 0;
    while (p < end) {
        if (IS_ZERO(p)) {
            long run = ZERO_LEN(p);
            if (idx + run > REGISTERS)
                return -1;
            memset(out + idx, 0, run);
            idx += run;
            p++;
        } else if (IS_XZERO(p)) {
            if (p + 1 >= end)
                return -1;
            long run = XZERO_LEN(p);
            if (idx + run > REGISTERS)
                return -1;
            memset(out + idx, 0, run);
            idx += run;
            p += 2;
        } else {
            long run = VAL_LEN(p);
            if (idx + run > REGISTERS)
                return -1;
            memset(out + idx, VAL_VALUE(p), run);
            idx += run;
            p++;
        }
    }
    return idx == REGISTERS ? 0 : -1;
}

/* hllSparseToDense, in ``buf`` (room for DENSE_SIZE bytes); the new size, or -1. */
static long
to_dense(uint8_t *buf, size_t size)
{
    uint8_t values[REGISTERS];
    if (sparse_registers(buf, size, values) < 0)
        return -1;
    buf[4] = DENSE;
    memset(buf + HEADER, 0, DENSE_SIZE - HEADER);
    for (long i = 0; i < REGISTERS; i++)
        if (values[i])
            dense_set(buf + HEADER, i, values[i]);
    return DENSE_SIZE;
}

/* A ZERO or XZERO opcode for ``len`` zero registers at ``n``; where the next one goes. */
static uint8_t *
zero_run(uint8_t *n, long len)
{
    if (len > ZERO_MAX_LEN) {
        XZERO_SET(n, len);
        return n + 2;
    }
    ZERO_SET(n, len);
    return n + 1;
}

/* hllSparseSet on ``buf`` of *size bytes (room for DENSE_SIZE): 1 if the register changed,
 * 0 if not, -1 if the HLL is corrupted. */
static int
sparse_set(uint8_t *buf, size_t *size, long index, uint8_t count)
{
    uint8_t *sparse, *end, *p, *prev, *next;
    long first = 0, span = 0, runlen;
    int is_zero = 0, is_xzero = 0, is_val = 0;

    if (count > VAL_MAX_VALUE)
        goto promote;
    sparse = p = buf + HEADER;
    end = buf + *size;
    prev = NULL;
    while (p < end) {
        long oplen = 1;
        if (IS_ZERO(p)) {
            span = ZERO_LEN(p);
        } else if (IS_VAL(p)) {
            span = VAL_LEN(p);
        } else {
            if (p + 1 >= end)
                return -1;
            span = XZERO_LEN(p);
            oplen = 2;
        }
        if (index <= first + span - 1)
            break;
        prev = p;
        p += oplen;
        first += span;
    }
    if (span == 0 || p >= end)
        return -1;
    next = IS_XZERO(p) ? p + 2 : p + 1;
    if (next >= end)
        next = NULL;
    if (IS_ZERO(p)) {
        is_zero = 1;
        runlen = ZERO_LEN(p);
    } else if (IS_XZERO(p)) {
        is_xzero = 1;
        runlen = XZERO_LEN(p);
    } else {
        is_val = 1;
        runlen = VAL_LEN(p);
    }
    if (is_val) {
        if (VAL_VALUE(p) >= count)
            return 0;
        if (runlen == 1) {
            VAL_SET(p, count, 1);
            goto updated;
        }
    }
    if (is_zero && runlen == 1) {
        VAL_SET(p, count, 1);
        goto updated;
    }
    {
        uint8_t seq[5], *n = seq;
        long last = first + span - 1;
        if (is_zero || is_xzero) {
            if (index != first)
                n = zero_run(n, index - first);
            VAL_SET(n, count, 1);
            n++;
            if (index != last)
                n = zero_run(n, last - index);
        } else {
            int current = VAL_VALUE(p);
            if (index != first) {
                VAL_SET(n, current, index - first);
                n++;
            }
            VAL_SET(n, count, 1);
            n++;
            if (index != last) {
                VAL_SET(n, current, last - index);
                n++;
            }
        }
        long seqlen = n - seq, oldlen = is_xzero ? 2 : 1, deltalen = seqlen - oldlen;
        if (deltalen > 0 && (long)*size + deltalen > SPARSE_MAX_BYTES)
            goto promote;
        if (deltalen && next)
            memmove(next + deltalen, next, end - next);
        *size += deltalen;
        memcpy(p, seq, seqlen);
        end += deltalen;
    }
updated:
    p = prev ? prev : sparse;
    int scanlen = 5;
    while (p < end && scanlen--) {
        if (IS_XZERO(p)) {
            p += 2;
            continue;
        } else if (IS_ZERO(p)) {
            p++;
            continue;
        }
        if (p + 1 < end && IS_VAL(p + 1)) {
            int v1 = VAL_VALUE(p), v2 = VAL_VALUE(p + 1);
            if (v1 == v2) {
                int len = VAL_LEN(p) + VAL_LEN(p + 1);
                if (len <= VAL_MAX_LEN) {
                    VAL_SET(p + 1, v1, len);
                    memmove(p, p + 1, end - p - 1);
                    (*size)--;
                    end--;
                    continue;
                }
            }
        }
        p++;
    }
    buf[15] |= 0x80;
    return 1;
promote: {
        long dense = to_dense(buf, *size);
        if (dense < 0)
            return -1;
        *size = (size_t)dense;
        dense_set(buf + HEADER, index, count);
        return 1;
    }
}

static PyObject *
add_all(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyByteArray_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "add_all(hll: bytearray, elements)");
        return NULL;
    }
    PyObject *target = args[0];
    PyObject *elements = PySequence_Fast(args[1], "elements must be a sequence");
    if (elements == NULL)
        return NULL;
    size_t size = (size_t)PyByteArray_GET_SIZE(target);
    if (size < HEADER) {
        Py_DECREF(elements);
        PyErr_SetString(PyExc_ValueError, "not an HLL");
        return NULL;
    }
    size_t room = (size > DENSE_SIZE ? size : DENSE_SIZE) + 8;
    uint8_t *buf = PyMem_Calloc(room, 1);
    if (buf == NULL) {
        Py_DECREF(elements);
        return PyErr_NoMemory();
    }
    memcpy(buf, PyByteArray_AS_STRING(target), size);
    int changed = 0, failed = 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(elements);
    PyObject **items = PySequence_Fast_ITEMS(elements);
    for (Py_ssize_t i = 0; i < count && !failed; i++) {
        char *data;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(items[i], &data, &len) < 0) {
            failed = 1;
            break;
        }
        uint64_t hash = murmurhash64a((const uint8_t *)data, (size_t)len);
        long index = (long)(hash & (REGISTERS - 1));
        hash >>= P;
        hash |= (uint64_t)1 << Q;
        uint8_t run = 1;
        while (!(hash & 1)) {
            run++;
            hash >>= 1;
        }
        int result;
        if (buf[4] == DENSE) {
            result = dense_get(buf + HEADER, index) < run;
            if (result)
                dense_set(buf + HEADER, index, run);
        } else {
            result = sparse_set(buf, &size, index, run);
        }
        if (result < 0) {
            PyErr_SetString(PyExc_ValueError, "corrupted sparse HLL");
            failed = 1;
        } else if (result) {
            changed = 1;
        }
    }
    Py_DECREF(elements);
    if (!failed && changed) {
        if (PyByteArray_Resize(target, (Py_ssize_t)size) < 0)
            failed = 1;
        else
            memcpy(PyByteArray_AS_STRING(target), buf, size);
    }
    PyMem_Free(buf);
    if (failed)
        return NULL;
    return PyBool_FromLong(changed);
}

static PyObject *
registers(PyObject *module, PyObject *arg)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *hll = view.buf;
    PyObject *out = NULL;
    if (view.len < HEADER) {
        PyErr_SetString(PyExc_ValueError, "not an HLL");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, REGISTERS);
    if (out == NULL)
        goto done;
    uint8_t *values = (uint8_t *)PyBytes_AS_STRING(out);
    if (hll[4] == DENSE) {
        if (view.len != DENSE_SIZE) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_ValueError, "dense HLL of the wrong size");
            goto done;
        }
        for (long i = 0; i < REGISTERS; i++)
            values[i] = (uint8_t)dense_get(hll + HEADER, i);
    } else if (sparse_registers(hll, (size_t)view.len, values) < 0) {
        Py_CLEAR(out);
        PyErr_SetString(PyExc_ValueError, "corrupted sparse HLL");
    }
done:
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"add_all", (PyCFunction)(void (*)(void))add_all, METH_FASTCALL,
     "add_all(hll, elements) -> bool: PFADD the elements to the bytearray hll."},
    {"registers", registers, METH_O,
     "registers(hll) -> bytes: the 16384 registers of an HLL, one byte each."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hyperloglog", "kv's HyperLogLog registers in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__hyperloglog(void)
{
    return PyModule_Create(&module);
}
