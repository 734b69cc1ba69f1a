/* The layout of a contextvars.Context, for the shared run context of handles.
 *
 * See 'Contexts without copies' in _handles.pyx for what is done with it and why. A
 * Context is CPython's PyContext (Include/internal/pycore_context.h), whose fields are
 * not part of the C API; the same four fields follow PyObject_HEAD in CPython 3.11,
 * 3.12 and 3.13, the versions this layout is declared for. Elsewhere (and on
 * free-threaded builds, where a context shared between threads would need more than the
 * GIL) GP_CONTEXT_LAYOUT is 0 and handles copy the context as asyncio does. Where it is
 * 1, _handles.pyx still checks the layout against real contexts at import and copies if
 * the check fails.
 */
#ifndef GP_CONTEXT_H
#define GP_CONTEXT_H

#include <Python.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define GP_CONTEXT_LAYOUT 1
#else
#define GP_CONTEXT_LAYOUT 0
#endif

typedef struct {
    PyObject_HEAD
    PyObject *ctx_prev;        /* the context entered before this one, while entered */
    PyObject *ctx_vars;        /* the immutable mapping of variables (a HAMT) */
    PyObject *ctx_weakreflist;
    int ctx_entered;
} gp_context;

/* The running thread's current context, borrowed; NULL when the thread has none yet. */
static inline PyObject *gp_context_current(void)
{
#if GP_CONTEXT_LAYOUT
    return PyThreadState_Get()->context;
#else
    return NULL;
#endif
}

#endif
