/* The plain RESP2 request reader shared by codecs/_resp_reader.c (the codec's fast path) and
 * apps/kv/_fastpath.c (kv's serve, which reads a chunk and runs it in one call).
 *
 * read_plain(start, end, max_bulk_len, commands) appends to ``commands`` the plainly written
 * commands at the start of [start, end): multibulk ones, and whole inline lines without
 * quotes, NULs, vertical tabs or form feeds (split at spaces, tabs and carriage returns, as
 * Redis's sdssplitargs splits such a line; a blank line is skipped, as Redis skips it). It
 * returns how many bytes it read, stopping without judging at the first thing that is not such
 * a command (codecs/_resp_reader.c says what), or -1 with an exception set.
 */

#ifndef RESIDENTD_RESP_READ_H
#define RESIDENTD_RESP_READ_H

#include <Python.h>
#include <limits.h>
#include <string.h>

#define MAX_COUNT_DIGITS 10 /* INT_MAX, Redis's multibulk limit, has ten digits */
#define MAX_LENGTH_DIGITS 18

/* A plain non-negative decimal (no sign, no leading zero) ending at a '\r' that has one byte
 * after it; returns its value and sets *next past the two bytes, or -1. */
static long long
read_number(const char *p, const char *end, int max_digits, const char **next)
{
    const char *start = p;
    long long value = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - start == max_digits)
            return -1;
        value = value * 10 + (*p - '0');
        p++;
    }
    if (p == start || (*start == '0' && p - start > 1))
        return -1;
    if (end - p < 2 || *p != '\r')
        return -1;
    *next = p + 2;
    return value;
}

/* Check the command at p: its argument count, and where it ends. Returns the count (0 for an
 * empty command, which Redis skips), or -1 when the reader must stop here. */
static long long
scan_command(const char *p, const char *end, long long max_bulk_len, const char **command_end)
{
    long long count = read_number(p + 1, end, MAX_COUNT_DIGITS, &p);
    if (count < 0 || count > INT_MAX)
        return -1;
    for (long long i = 0; i < count; i++) {
        if (p >= end || *p != '$')
            return -1;
        long long size = read_number(p + 1, end, MAX_LENGTH_DIGITS, &p);
        if (size < 0 || size > max_bulk_len || end - p < size + 2)
            return -1;
        p += size + 2;
    }
    *command_end = p;
    return count;
}

/* Command names repeat in almost every chunk: a small direct-mapped cache of the names seen
 * last hands out the same bytes object again instead of a new one (bytes are immutable, so
 * sharing them is safe). */
#define NAME_CACHE_SIZE 64
#define NAME_MAX_SIZE 16
static PyObject *name_cache[NAME_CACHE_SIZE];

static PyObject *
command_name(const char *p, Py_ssize_t size)
{
    if (size == 0 || size > NAME_MAX_SIZE)
        return PyBytes_FromStringAndSize(p, size);
    size_t slot = ((size_t)size * 31 + (unsigned char)p[0] * 7 + (unsigned char)p[size - 1]) %
                  NAME_CACHE_SIZE;
    PyObject *cached = name_cache[slot];
    if (cached != NULL && PyBytes_GET_SIZE(cached) == size &&
        memcmp(PyBytes_AS_STRING(cached), p, size) == 0) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *name = PyBytes_FromStringAndSize(p, size);
    if (name != NULL) {
        Py_INCREF(name);
        Py_XSETREF(name_cache[slot], name);
    }
    return name;
}

static PyObject *
build_command(const char *p, Py_ssize_t count)
{
    PyObject *argv = PyList_New(count);
    if (argv == NULL)
        return NULL;
    while (*p != '\r') /* past the count line, checked by scan_command */
        p++;
    p += 2;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t size = 0;
        p++; /* '$' */
        while (*p != '\r')
            size = size * 10 + (*p++ - '0');
        p += 2;
        PyObject *arg = i == 0 ? command_name(p, size) : PyBytes_FromStringAndSize(p, size);
        if (arg == NULL) {
            Py_DECREF(argv);
            return NULL;
        }
        PyList_SET_ITEM(argv, i, arg);
        p += size + 2;
    }
    return argv;
}

/* The inline command whose line starts at p, appended to commands unless it is blank (Redis
 * skips a blank line). Returns where the next command starts, or NULL when the reader must
 * stop here (the line is not complete, or not plain) or on an error (set). */
static const char *
read_inline(const char *p, const char *end, PyObject *commands, int *failed)
{
    const char *newline = memchr(p, '\n', (size_t)(end - p));
    if (newline == NULL)
        return NULL;
    const char *stop = newline > p && newline[-1] == '\r' ? newline - 1 : newline;
    Py_ssize_t count = 0;
    int in_word = 0;
    for (const char *c = p; c < stop; c++) {
        switch (*c) {
        case '"': case '\'': case '\v': case '\f': case '\0':
            return NULL; /* quotes and escapes: the Python split_args reads it */
        case ' ': case '\t': case '\r':
            in_word = 0;
            break;
        default:
            count += !in_word;
            in_word = 1;
        }
    }
    if (count == 0)
        return newline + 1;
    PyObject *argv = PyList_New(count);
    if (argv == NULL)
        goto fail;
    Py_ssize_t i = 0;
    const char *c = p;
    while (i < count) {
        while (*c == ' ' || *c == '\t' || *c == '\r')
            c++;
        const char *word = c;
        while (c < stop && *c != ' ' && *c != '\t' && *c != '\r')
            c++;
        PyObject *arg = i == 0 ? command_name(word, c - word) :
                                 PyBytes_FromStringAndSize(word, c - word);
        if (arg == NULL) {
            Py_DECREF(argv);
            goto fail;
        }
        PyList_SET_ITEM(argv, i++, arg);
    }
    int appended = PyList_Append(commands, argv);
    Py_DECREF(argv);
    if (appended == 0)
        return newline + 1;
fail:
    *failed = 1;
    return NULL;
}

static Py_ssize_t
read_plain(const char *start, const char *end, long long max_bulk_len, PyObject *commands)
{
    const char *p = start;
    while (p < end) {
        const char *next;
        if (*p != '*') {
            int failed = 0;
            next = read_inline(p, end, commands, &failed);
            if (failed)
                return -1;
            if (next == NULL)
                break;
            p = next;
            continue;
        }
        long long count = scan_command(p, end, max_bulk_len, &next);
        if (count < 0)
            break;
        if (count > 0) {
            PyObject *argv = build_command(p, (Py_ssize_t)count);
            if (argv == NULL)
                return -1;
            int failed = PyList_Append(commands, argv);
            Py_DECREF(argv);
            if (failed)
                return -1;
        }
        p = next;
    }
    return p - start;
}

#endif
