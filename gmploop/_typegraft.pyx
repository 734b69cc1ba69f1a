"""Make a compiled type an instance of asyncio's Python transport classes.

asyncio code and CPython's own tests check ``isinstance(tr, asyncio.Transport)``. A
Cython extension type cannot derive from ``asyncio.BaseTransport``: that class has
``__slots__ = ('_extra',)``, a memory layout of its own that no C struct can extend,
and a Python subclass of both would be refused by ``type()`` for the same reason
("multiple bases have instance lay-out conflict").

What ``isinstance`` and ``issubclass`` consult, though, is the type's method
resolution order (``tp_mro``), not its base-struct chain. ``graft_bases`` appends
asyncio's classes to the compiled type's MRO, after the compiled classes and before
``object``. Consequences, all intended:

* ``isinstance(tr, asyncio.Transport)`` (and ``ReadTransport``, ``WriteTransport``,
  ``BaseTransport``) is true.
* Attribute lookup finds the compiled methods first; asyncio's Python methods are
  reached only for names the compiled type does not define (its defaults, such as
  ``writelines`` on a transport that keeps the base behaviour).
* Memory layout, allocation and deallocation still follow the compiled base chain
  (``tp_base``), which is untouched. The grafted classes contribute no storage:
  the compiled type defines ``_extra`` itself, so BaseTransport's slot descriptor,
  which would refuse a foreign object, is never reached.

Rejected: wrapping the compiled transport in a Python subclass of asyncio.Transport
(a Python-level call on every ``write``), and registering with an ABC (asyncio's
transport classes are not ABCs).

Called once per type at import, before any instance exists.
"""

cdef extern from "Python.h":
    ctypedef struct PyObject
    ctypedef struct PyTypeObject:
        PyObject *tp_mro
    void PyType_Modified(PyTypeObject *)
    void Py_INCREF(object)
    void Py_XDECREF(PyObject *)


def graft_bases(type cls, *bases):
    """Append bases (and their MROs) to cls's MRO, before object."""
    mro = [c for c in cls.__mro__ if c is not object]
    for base in bases:
        for c in base.__mro__:
            if c is not object and c not in mro:
                mro.append(c)
    mro.append(object)
    new = tuple(mro)
    cdef PyTypeObject *tp = <PyTypeObject *>cls
    cdef PyObject *old = tp.tp_mro
    Py_INCREF(new)
    tp.tp_mro = <PyObject *>new
    Py_XDECREF(old)
    PyType_Modified(tp)
