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
"""

cimport cython

import sys
from asyncio import format_helpers as aio_format_helpers

from ._timers cimport TimerHeap


cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    bint PyContext_CheckExact(object o)


cdef object _extract_stack = aio_format_helpers.extract_stack
cdef object _format_callback_source = aio_format_helpers._format_callback_source


@cython.freelist(256)
cdef class Handle:

    def __init__(self, callback, args, loop, context=None):
        if context is None:
            context = PyContext_CopyCurrent()
        self.callback = callback
        self.args = tuple(args) if args is not None else ()
        self.context = context
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

    def get_context(self):
        return self.context

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
        return self.context

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
    h.context = PyContext_CopyCurrent() if context is None else context
    h.loop = loop
    return h


cdef TimerHandle new_timer(double when, object callback, object args, object context,
                           object loop):
    cdef TimerHandle h = TimerHandle.__new__(TimerHandle)
    h.callback = callback
    h.args = args
    h.context = PyContext_CopyCurrent() if context is None else context
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
