/* The fast path's random numbers: xorshift64*, seeded from os.urandom when the module is
 * imported (random_seed). SPOP's member (_fast_sets.h) and KeyTable's random_key
 * (_keytable.h) are picked with it; neither needs more than a fair, fast generator.
 */

#ifndef RESIDENTD_RANDOM_H
#define RESIDENTD_RANDOM_H

#include "../../_speedups.h"

static uint64_t random_state;

static inline uint64_t
random_next(void)
{
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return random_state * 0x2545F4914F6CDD1DULL;
}

static int
random_seed(void)
{
    PyObject *urandom = import_attribute("os", "urandom");
    PyObject *bytes = urandom == NULL ? NULL : PyObject_CallFunction(urandom, "i", 8);
    Py_XDECREF(urandom);
    if (bytes == NULL)
        return -1;
    memcpy(&random_state, PyBytes_AS_STRING(bytes), sizeof(random_state));
    Py_DECREF(bytes);
    random_state |= 1; /* never zero */
    return 0;
}

#endif
