"""Handles: the unit of work on a P's run queue (Go's G, asyncio's Handle).

A ``Handle`` is asyncio's ``events.Handle`` in C: a callback, its argument tuple, the
``contextvars.Context`` to run it in, and a cancelled flag. ``TimerHandle`` adds a
deadline. Both keep asyncio's public surface (``cancel``, ``cancelled``,
``get_context``, ``when``, ordering of timer handles) so code that inspects handles
keeps working; they are not subclasses of asyncio's classes, which are Python classes
with ``__slots__`` that a C type cannot extend.

Running a handle enters its context with ``PyContext_Enter``/``PyContext_Exit``
rather than calling ``Context.run``: the same semantics (a context may be entered by
one thread at a time, and a re-entered context raises RuntimeError) without building a
bound method and an argument tuple per call. Calls with zero or one argument, the
overwhelming majority (Task steps, future callbacks), go through vectorcall directly.

Exceptions from the callback go to the loop's exception handler with asyncio's
context dict; ``SystemExit`` and ``KeyboardInterrupt`` propagate out of the loop, as in
asyncio. Handles are allocated from a free list: a busy loop creates one per callback.

Contexts without copies
-----------------------
asyncio's ``call_soon(cb)`` without a context copies the caller's context
(``contextvars.copy_context()``) and runs ``cb`` in the copy: ``cb`` sees the variables
as they were at ``call_soon``, and what it sets is seen by no other callback and not by
the caller. The copy is a new Context object per handle, tracked by the cycle
collector: in a loop that queues 300,000 callbacks it was a tenth of the instructions
per callback and as many objects again for the collector to walk. Yet a copy holds
nothing of its own but a pointer to the variables' mapping (a HAMT, immutable: ``set``
makes a new one), and almost no callback ever looks at its Context as an object.

So a handle made without a context keeps only that mapping (``_vars``), taken from the
thread's current context, and a Context is made only for what needs one:

* **Running.** The handle borrows the module's spare Context: its mapping becomes the
  handle's, the callback runs in it, and afterwards the handle takes back the mapping
  as the callback left it (a handle that runs again, an ``add_reader`` callback, sees
  its own earlier sets, as with asyncio's one Context per handle). The spare is lent
  only when nothing but the module holds it (reference count 1, no weak reference, not
  entered: a callback that runs a handle itself gets a fresh one). If, when the callback
  returns, anything else holds the spare (``get_context()`` during the run, the
  exception handler of 3.12, which runs in the handle's context, keeping it), it is no
  longer spare: the handle keeps it as its Context, as asyncio's would be, and the
  module makes a new spare when it next needs one.
* **Asked for** (``get_context()``, ``_context``) before or after a run: a new Context
  over the handle's mapping, kept by the handle from then on.

Observable behaviour is asyncio's: the variables a callback sees, where its sets go,
and the handle's Context, which is the one the callback ran in whenever anything could
have seen both. What is not reproduced is only what nobody can observe: that each
handle had a Context object of its own while nothing referred to it.

The Context's layout is not in CPython's C API (``includes/gp_context.h`` declares it
for 3.11 to 3.13); ``_check_context_layout`` verifies it against real contexts at
import, and anywhere it is not known or does not match (free-threaded builds
included), handles copy the context as asyncio does. Rejected: hiding the copies from
the collector as the run queue hides handles (the allocation stays, and a Context
shows the collector nothing through a handle's traverse that it could not find
anyway); one Context per loop reset between callbacks without checking who holds it
(``get_context()`` during a callback would then see later callbacks' variables).
"""

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF

import contextvars
import sys
from asyncio import format_helpers as aio_format_helpers

from ._timers cimport TimerHeap


cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    object PyContext_New()
    bint PyContext_CheckExact(object o)
    Py_ssize_t _refcnt "Py_REFCNT"(PyObject *o)


cdef extern from "gp_context.h":
    enum:
        GP_CONTEXT_LAYOUT
    ctypedef struct gp_context:
        PyObject *ctx_prev
        PyObject *ctx_vars
        PyObject *ctx_weakreflist
        int ctx_entered
    PyObject *gp_context_current()


# See 'Contexts without copies' above. _shared: whether handles keep only the mapping
# (the layout is known and checked); _spare: the Context lent to running handles.
cdef bint _shared = False
cdef object _spare = None
cdef object _empty_vars = None      # an empty mapping, what the spare holds between runs


cdef inline gp_context *_layout(object ctx) noexcept:
    return <gp_context *><PyObject *>ctx


cdef inline void _set_vars(object ctx, object vars) noexcept:
    """Make vars the mapping of ctx (which is not entered)."""
    cdef gp_context *c = _layout(ctx)
    cdef PyObject *old = c.ctx_vars
    Py_INCREF(vars)
    c.ctx_vars = <PyObject *>vars
    Py_DECREF(<object>old)


cdef inline int _init_context(Handle h, object context) except -1:
    """Give a new handle its context: the given one, or the caller's (a copy, or under
    'Contexts without copies' the current mapping only)."""
    cdef PyObject *cur
    if context is not None:
        h.context = context
        return 0
    if _shared:
        cur = gp_context_current()
        if cur is not NULL:
            h._vars = <object>_layout(<object>cur).ctx_vars
            return 0
    h.context = PyContext_CopyCurrent()
    return 0


cdef int _borrow_spare(Handle h) except -1:
    """Lend h the spare Context, holding h's mapping, for a run (see 'Contexts without
    copies'): h.context is the spare until _return_spare."""
    global _spare
    cdef PyObject *sp = <PyObject *>_spare
    # Lent only when the module's is the one reference: counting only references known
    # to exist, a miscount can only make a new spare, never share one.
    if (_spare is None or _refcnt(sp) != 1 or (<gp_context *>sp).ctx_entered or
            (<gp_context *>sp).ctx_weakreflist is not NULL):
        _spare = PyContext_New()
    _set_vars(_spare, h._vars)
    h._vars = None
    h.context = _spare
    return 0


cdef void _return_spare(Handle h) noexcept:
    """After h's run: take the mapping back into h and the spare back into the module,
    unless something else now holds the spare (then h keeps it as its Context)."""
    global _spare
    cdef PyObject *sp = <PyObject *>h.context
    cdef gp_context *c = <gp_context *>sp
    if sp != <PyObject *>_spare:
        return                       # replaced while running (a nested run): h keeps it
    # References: the module's and h.context's, and nothing else.
    if _refcnt(sp) == 2 and not c.ctx_entered and c.ctx_weakreflist is NULL:
        h._vars = <object>c.ctx_vars
        _set_vars(_spare, _empty_vars)
        h.context = None
    else:
        _spare = None                # seen by someone: h's Context now, not spare


def _check_context_layout():
    """True if gp_context.h's layout is the running Python's: checked on real contexts
    (a variable set in one is found through the declared fields)."""
    if not GP_CONTEXT_LAYOUT:
        return False
    var = contextvars.ContextVar("gmploop_layout_check")
    empty = PyContext_New()
    ctx = contextvars.copy_context()
    ctx.run(var.set, "seen")
    cdef gp_context *c = _layout(ctx)
    cdef gp_context *e = _layout(empty)
    if c.ctx_vars is NULL or e.ctx_vars is NULL or c.ctx_entered or e.ctx_entered:
        return False
    if c.ctx_prev is not NULL or c.ctx_weakreflist is not NULL:
        return False
    if type(<object>c.ctx_vars) is not type(<object>e.ctx_vars):
        return False
    # The mapping holds the variable; the empty one does not; swapping them moves it.
    probe = PyContext_New()
    _set_vars(probe, <object>c.ctx_vars)
    if probe.get(var) != "seen" or var in empty:
        return False
    # Entered, the flag and the thread's current context say so.
    seen = []
    def inside():
        seen.append(_layout(probe).ctx_entered == 1 and
                    gp_context_current() == <PyObject *>probe)
    probe.run(inside)
    return seen == [True] and not _layout(probe).ctx_entered


cdef object _extract_stack = aio_format_helpers.extract_stack
cdef object _format_callback_source = aio_format_helpers._format_callback_source


@cython.freelist(256)
cdef class Handle:

    def __init__(self, callback, args, loop, context=None):
        self.callback = callback
        self.args = tuple(args) if args is not None else ()
        _init_context(self, context)
        self.loop = loop
        self._cancelled = False
        if loop is not None and loop.get_debug():
            self._source_traceback = _extract_stack(sys._getframe(1))

    cdef int run(self) except -1:
        """Owner P only. Run the callback in its context; user errors go to the
        loop's exception handler."""
        cdef object callback = self.callback
        cdef object args = self.args
        cdef object context = self.context
        cdef Py_ssize_t nargs = len(<tuple>args)
        if context is None:
            _borrow_spare(self)
            try:
                self._run_in(callback, args, nargs, self.context)
            finally:
                _return_spare(self)
            return 0
        return self._run_in(callback, args, nargs, context)

    cdef int _run_in(self, object callback, object args, Py_ssize_t nargs,
                     object context) except -1:
        try:
            if not PyContext_CheckExact(context):
                # Not a contextvars.Context: asyncio calls context.run(callback,
                # *args), so an object with a run method is a context there, and one
                # without fails in the callback, reported, never out of the loop.
                context.run(callback, *args)
                return 0
            PyContext_Enter(context)
            try:
                if nargs == 0:
                    callback()
                elif nargs == 1:
                    callback((<tuple>args)[0])
                else:
                    callback(*args)
            finally:
                PyContext_Exit(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            cb = _format_callback_source(callback, args)
            ctx = {
                'message': f'Exception in callback {cb}',
                'exception': exc,
                'handle': self,
            }
            if self._source_traceback:
                ctx['source_traceback'] = self._source_traceback
            self.loop.call_exception_handler(ctx)
        return 0

    # Public API (asyncio.Handle)

    def cancel(self):
        if not self._cancelled:
            self._cancelled = True
            if self.loop is not None and self.loop.get_debug():
                # Freeze the repr before the callback is dropped.
                self._repr = repr(self)
            self.callback = None
            self.args = None

    def cancelled(self):
        return self._cancelled

    cdef object _own_context(self):
        """The handle's Context, made now if it holds only the mapping."""
        if self.context is None:
            ctx = PyContext_New()
            _set_vars(ctx, self._vars)
            self._vars = None
            self.context = ctx
        return self.context

    def get_context(self):
        return self._own_context()

    def _run(self):
        self.run()

    @property
    def _callback(self):
        return self.callback

    @property
    def _args(self):
        return self.args

    @property
    def _loop(self):
        return self.loop

    @property
    def _context(self):
        return self._own_context()

    def _repr_info(self):
        info = [type(self).__name__]
        if self._cancelled:
            info.append('cancelled')
        if self.callback is not None:
            info.append(_format_callback_source(self.callback, self.args))
        if self._source_traceback:
            frame = self._source_traceback[-1]
            info.append(f'created at {frame[0]}:{frame[1]}')
        return info

    def __repr__(self):
        if self._repr is not None:
            return self._repr
        return '<{}>'.format(' '.join(self._repr_info()))


@cython.freelist(256)
cdef class TimerHandle(Handle):

    def __init__(self, when, callback, args, loop, context=None):
        Handle.__init__(self, callback, args, loop, context)
        if self._source_traceback:
            del self._source_traceback[-1]
        self._when = when

    def when(self):
        """The loop.time() deadline at which the callback is due."""
        return self._when

    def cancel(self):
        if not self._cancelled and self._scheduled and self.heap is not None:
            self.heap.note_cancelled()
        Handle.cancel(self)

    def _repr_info(self):
        info = Handle._repr_info(self)
        info.insert(1 + self._cancelled, f'when={self._when}')
        return info

    def __hash__(self):
        return hash(self._when)

    def __richcmp__(self, other, int op):
        if not isinstance(other, TimerHandle):
            return NotImplemented
        cdef double a = self._when
        cdef double b = (<TimerHandle>other)._when
        if op == 0:
            return a < b
        if op == 1:
            return a <= b or self._eq(other)
        if op == 2:
            return self._eq(other)
        if op == 3:
            return not self._eq(other)
        if op == 4:
            return a > b
        return a >= b or self._eq(other)

    def _eq(self, other):
        cdef TimerHandle o = <TimerHandle>other
        return (self._when == o._when and self.callback == o.callback and
                self.args == o.args and self._cancelled == o._cancelled)


cdef Handle new_handle(object callback, object args, object context, object loop):
    """A Handle for callback(*args), without going through __init__ (hot path)."""
    cdef Handle h = Handle.__new__(Handle)
    h.callback = callback
    h.args = args
    _init_context(h, context)
    h.loop = loop
    return h


cdef TimerHandle new_timer(double when, object callback, object args, object context,
                           object loop):
    cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
    h.callback = callback
    h.args = args
    _init_context(h, context)
    h.loop = loop
    h._when = when
    return h


cdef bint reap_timer(object obj) noexcept:
    """TimerHeap.compact's predicate: a cancelled timer leaves the heap."""
    cdef TimerHandle h = <TimerHandle>obj
    if h._cancelled:
        h._scheduled = False
        return True
    return False


_shared = _check_context_layout()
if _shared:
    _empty_vars = <object>_layout(PyContext_New()).ctx_vars
