"""A tiny ASGI application (no framework) to serve with uvicorn on gmploop.

    uvicorn asgi_app:app --app-dir examples --loop gmploop:new_event_loop

uvicorn takes ``--loop MODULE:CALLABLE`` as a zero-argument loop factory, and
``gmploop.new_event_loop`` is one. Every response names the loop that served it, so
``curl http://127.0.0.1:8000/`` shows whether gmploop is in charge:

    Hello from gmploop.Loop (request 1)

``/echo`` answers the request's body back; any other path is a 404.
``python examples/asgi_app.py [PORT]`` starts uvicorn on gmploop programmatically, the
equivalent of the command above.
"""
import asyncio
import sys

requests_served = 0


def loop_name():
    loop = type(asyncio.get_running_loop())
    return f"{loop.__module__}.{loop.__qualname__}"


async def read_body(receive):
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body


async def respond(send, status, body, content_type=b"text/plain; charset=utf-8"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    global requests_served
    if scope["type"] == "lifespan":
        # Startup and shutdown need nothing here; answer them so uvicorn does not log
        # that lifespan is unsupported.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    requests_served += 1
    if scope["path"] == "/":
        await respond(send, 200,
                      f"Hello from {loop_name()} (request {requests_served})\n".encode())
    elif scope["path"] == "/echo":
        await respond(send, 200, body, b"application/octet-stream")
    else:
        await respond(send, 404, b"not found\n")


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    uvicorn.run(app, host="127.0.0.1", port=port, loop="gmploop:new_event_loop")
