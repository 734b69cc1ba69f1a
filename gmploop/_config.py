"""Tunables, and the ``GMPLOOP_DEBUG`` variable that sets some of them.

Every number the observability layer depends on lives here, with its reason, so that
changing one is a one-line diff that says why.

``GMPLOOP_DEBUG`` follows Go's ``GODEBUG``: comma-separated ``name=value`` pairs,
read once, when gmploop is imported::

    GMPLOOP_DEBUG=sysmon=250,schedtrace=1000 python app.py

=============  ======================================================================
name           meaning
=============  ======================================================================
``sysmon``     ms a callback may run before sysmon reports it (default 100; 0: off)
``schedtrace`` print one scheduler line to stderr every this many ms (default 0: off)
=============  ======================================================================

Names this module does not know are kept (``DebugOptions.extra``) and otherwise
ignored, as Go ignores unknown ``GODEBUG`` settings: another part of gmploop, or a later
version, may read them. A value that is not a non-negative integer is ignored with a
``RuntimeWarning`` naming it, and the default stays: a typo in an environment variable
must not keep a service from starting. ``python -E`` (``sys.flags.ignore_environment``)
makes gmploop ignore the variable, as asyncio ignores ``PYTHONASYNCIODEBUG`` then.
"""

import dataclasses
import os
import sys
import warnings

# Sysmon reports a callback that has run this long without returning. asyncio's
# slow_callback_duration is 0.1 s too: one threshold for "the loop was blocked" whichever
# loop a user has seen it on.
SYSMON_THRESHOLD_MS = 100

# Sysmon samples each loop this many times per threshold. A callback is noticed between
# 1x and 1.25x the threshold after it started, and durations are known to within half a
# sampling period (12.5 ms at the default). More samples cost the loop one GIL hand-over
# each (see 'Cost' in _sysmon.py); 4 keeps that to 40 a second at the default.
SYSMON_SAMPLES_PER_THRESHOLD = 4

# Sysmon never sleeps longer than this between samples, nor shorter: a threshold set to
# 1 ms must not turn sysmon into a busy loop that takes the GIL 4,000 times a second.
SYSMON_MIN_PERIOD_MS = 5
SYSMON_MAX_PERIOD_MS = 1000

# A slow callback's thread on CPU at least this share of the time is computing; below
# it, the thread waits (in a blocking call, or for a CPU). A computing thread on a
# machine with two runnable threads per core still gets about half a core; 0.25 leaves
# room for a busier machine, and a sleeping thread uses well under 1%.
SYSMON_CPU_BOUND_SHARE = 0.25

# Frames of the blocking code kept in a report: the innermost ones, where the blocking
# call is. Deep enough for aiohttp's handler and middleware chain, short enough to read.
SYSMON_STACK_LIMIT = 32

# Each P of the process runtime publishes its counters for the other Ps this often
# (gmploop.stats() in one P reads the others' last publication; see _statshm.py). A
# tenth of a second: fresh enough for a dashboard polled every second, and a publication
# costs a few microseconds of the P's GIL, 10 times a second. Schedtrace asks for more
# when its period is short (two publications per period).
STATS_PUBLISH_MS = 100

# Default for schedtrace: off. Go's schedtrace is off unless asked for, too.
SCHEDTRACE_MS = 0


@dataclasses.dataclass(frozen=True)
class DebugOptions:
    """What ``GMPLOOP_DEBUG`` asked for (defaults where it said nothing)."""
    sysmon_ms: int = SYSMON_THRESHOLD_MS
    schedtrace_ms: int = SCHEDTRACE_MS
    extra: tuple = ()            # (name, value) pairs of names not known here

    @property
    def sysmon_threshold(self):
        """The threshold in seconds (0.0: sysmon off), as Loop(sysmon=...) takes it."""
        return self.sysmon_ms / 1000.0


_KNOWN = {"sysmon": "sysmon_ms", "schedtrace": "schedtrace_ms"}


def sysmon_threshold(value):
    """Loop(sysmon=value) in seconds: None (or True) for GMPLOOP_DEBUG's, 0.1 s unless
    it says otherwise; 0 (or False) for off."""
    if value is None or value is True:
        return DEBUG.sysmon_threshold
    if value is False:
        return 0.0
    if not isinstance(value, (int, float)):
        raise TypeError(f"sysmon must be a number of seconds, not {type(value).__name__}")
    if not value >= 0:      # also rejects NaN
        raise ValueError(f"sysmon must be >= 0 seconds (0 turns it off), not {value!r}")
    return float(value)


def parse_debug(text):
    """DebugOptions from a GMPLOOP_DEBUG string ('' or None: all defaults)."""
    values = {}
    extra = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        value = value.strip()
        if name not in _KNOWN:
            extra.append((name, value))
            continue
        try:
            number = int(value) if sep else -1
        except ValueError:
            number = -1
        if number < 0:
            warnings.warn(f"GMPLOOP_DEBUG: {item!r} ignored: {name} takes a number of "
                          f"milliseconds >= 0", RuntimeWarning, stacklevel=2)
            continue
        values[_KNOWN[name]] = number
    return DebugOptions(extra=tuple(extra), **values)


def debug_options(environ=None):
    """DebugOptions from the environment (os.environ unless given)."""
    if environ is None:
        if sys.flags.ignore_environment:
            return DebugOptions()
        environ = os.environ
    return parse_debug(environ.get("GMPLOOP_DEBUG", ""))


# Read once, at import: the options of this process.
DEBUG = debug_options()
