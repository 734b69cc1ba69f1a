"""gunicorn worker that serves an aiohttp application on gmploop.

    gunicorn 'aiohttp_hello:make_app()' --chdir examples --bind 127.0.0.1:8080 \\
        --worker-class gmploop.aiohttp_worker.GMPWebWorker

The worker is aiohttp's own ``GunicornWebWorker`` (aiohttp.worker) with one change: the
loop it runs is made by ``gmploop.new_event_loop()`` and set as the worker's current
loop. aiohttp's uvloop worker gets its loop by installing an event loop *policy*; policies
are deprecated from Python 3.14 and go away in 3.16, and a loop factory needs none, so
this worker keeps working where policies do not exist.

Importing this module imports gunicorn and aiohttp (the worker class derives from theirs);
importing ``gmploop`` alone imports neither.
"""
import asyncio

from aiohttp.worker import GunicornWebWorker
from gunicorn.workers.base import Worker

import gmploop

__all__ = ("GMPWebWorker",)


class GMPWebWorker(GunicornWebWorker):
    """aiohttp's gunicorn worker, running each worker process on a gmploop loop.

    Everything but the loop (signals, graceful shutdown, max-requests, access logs,
    TLS) is aiohttp's ``GunicornWebWorker``.
    """

    def init_process(self) -> None:
        # After the fork, in the worker process. GunicornWebWorker.init_process would
        # make its loop with asyncio.new_event_loop() (that is, through the policy);
        # make gmploop's instead and go on with gunicorn's own setup, which ends by
        # calling run() on this loop.
        self.loop = gmploop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        Worker.init_process(self)
