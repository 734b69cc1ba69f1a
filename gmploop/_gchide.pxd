# Hiding a container's items from the cycle collector: the one mechanism RunQueue and
# TimerHeap share. See 'Hidden items' in _runq.pyx for the rule and why it is sound.
#
# A slot holding a hidden item stores its pointer with bit 0 set (objects are at least
# 8-byte aligned). A hidden item is untracked while it sits in its one slot; the
# container's tp_traverse shows the collector what the item references (show), and the
# item is tracked again as it leaves (reveal).

from cpython.object cimport PyObject
from libc.stdint cimport uintptr_t

cdef extern from "Python.h":
    ctypedef int (*gc_visitproc "visitproc")(PyObject *, void *) noexcept
    ctypedef int (*gc_traverseproc "traverseproc")(PyObject *, gc_visitproc, void *) noexcept
    ctypedef int (*gc_inquiry "inquiry")(PyObject *) noexcept
    ctypedef struct gc_TypeObject "PyTypeObject":
        gc_traverseproc tp_traverse
        gc_inquiry tp_clear
    gc_TypeObject *Py_TYPE(PyObject *o) noexcept
    bint PyObject_GC_IsTracked(PyObject *o) noexcept
    void PyObject_GC_Track(void *o) noexcept
    void PyObject_GC_UnTrack(void *o) noexcept


cdef inline PyObject *hide(PyObject *p) noexcept:
    """The slot value for p, now hidden: p untracked, bit 0 set."""
    PyObject_GC_UnTrack(p)
    return <PyObject *>(<uintptr_t>p | 1)

cdef inline PyObject *untag(PyObject *p) noexcept:
    """The object a slot value points to."""
    return <PyObject *>(<uintptr_t>p & ~<uintptr_t>1)

cdef inline PyObject *reveal(PyObject *p) noexcept:
    """A slot value's object as it leaves its slot: tracked again if it was hidden."""
    cdef PyObject *o = untag(p)
    if o != p and not PyObject_GC_IsTracked(o):
        PyObject_GC_Track(o)
    return o

cdef inline int show(PyObject *p, gc_visitproc visit, void *arg) noexcept:
    """tp_traverse's visit of one slot value: a hidden item's own referents, as if the
    container held them; any other item itself."""
    cdef PyObject *o = untag(p)
    if o != p:
        return Py_TYPE(o).tp_traverse(o, visit, arg)
    return visit(o, arg)
