#!/usr/bin/env python3
"""echo_asyncio.py: an asyncio echo server and a client process exchanging
numbered messages.

    echo_asyncio.py unix DIR COUNT     server on DIR/echo.sock (start_unix_server)
    echo_asyncio.py tcp DIR COUNT      server on 127.0.0.1, a free port (start_server)

The server starts the client as a second process (subprocess: fork and
exec). The client keeps WINDOW numbered messages in flight and checks that
every echo comes back exactly once and in order; it prints "got N" every
100 echoes and "done N" at the end, then the server exits. A lost or
duplicated message prints FAIL. Both event loops hold asyncio's own
socketpair (the loop's self-pipe).
"""
import asyncio
import subprocess
import sys

WINDOW = 8
PACE = 0.001


async def handle(reader, writer):
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line)
        await writer.drain()
    writer.close()


async def server(kind, where, count):
    if kind == "unix":
        path = f"{where}/echo.sock"
        srv = await asyncio.start_unix_server(handle, path=path)
        address = path
    else:
        srv = await asyncio.start_server(handle, host="127.0.0.1", port=0)
        address = str(srv.sockets[0].getsockname()[1])
    print(f"server listening ({kind})", flush=True)
    client = subprocess.Popen([sys.executable, __file__, "client", kind, address, str(count)])
    while client.poll() is None:
        await asyncio.sleep(0.02)
    srv.close()
    print(f"server: client exited with {client.returncode}", flush=True)
    return client.returncode


async def client(kind, address, count):
    if kind == "unix":
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(address))
    sent = 0
    for i in range(1, count + 1):
        while sent < count and sent < i + WINDOW - 1:
            sent += 1
            writer.write(f"msg {sent} {'x' * (sent % 50)}\n".encode())
        await writer.drain()
        line = (await reader.readline()).decode()
        want = f"msg {i} {'x' * (i % 50)}\n"
        if line != want:
            print(f"FAIL: expected {want!r}, got {line!r}", flush=True)
            return 1
        if i % 100 == 0:
            print(f"got {i}", flush=True)
        await asyncio.sleep(PACE)
    writer.close()
    print(f"done {count}", flush=True)
    return 0


def main():
    if sys.argv[1] == "client":
        sys.exit(asyncio.run(client(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
    sys.exit(asyncio.run(server(sys.argv[1], sys.argv[2], int(sys.argv[3]))))


if __name__ == "__main__":
    main()
