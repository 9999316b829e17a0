#!/usr/bin/env python3
"""A stand-in for a virtio-serial port in tests of the agent's --device channel.

Creates a pseudo-terminal in raw mode (no echo, no line editing, 8-bit clean), prints the
slave's path for the agent to open as its device, and relays the master end to a Unix socket
that a host (AgentClient) connects to, like QEMU's chardev socket. One host at a time.
Usage: pty-bridge.py SOCKET_PATH
"""
import os
import pty
import selectors
import socket
import sys
import tty

sock_path = sys.argv[1]
master, slave = pty.openpty()
tty.setraw(slave)
tty.setraw(master)
print(os.ttyname(slave), flush=True)

server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    os.unlink(sock_path)
except FileNotFoundError:
    pass
server.bind(sock_path)
server.listen(1)

sel = selectors.DefaultSelector()
sel.register(server, selectors.EVENT_READ, "accept")
sel.register(master, selectors.EVENT_READ, "pty")
client = None
while True:
    for key, _ in sel.select():
        if key.data == "accept":
            conn, _ = server.accept()
            if client is not None:
                sel.unregister(client)
                client.close()
            client = conn
            sel.register(client, selectors.EVENT_READ, "client")
        elif key.data == "pty":
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            # Guest bytes with no host attached are dropped, as virtio-serial does.
            if data and client is not None:
                try:
                    client.sendall(data)
                except OSError:
                    pass
        elif key.data == "client":
            # One select() can report an old connection after a newer one replaced it.
            if key.fileobj is not client:
                continue
            try:
                data = client.recv(65536)
            except OSError:
                # A host that closes with our bytes unread resets the connection: a disconnect.
                data = b""
            if not data:
                sel.unregister(client)
                client.close()
                client = None
                continue
            view = memoryview(data)
            while view:
                n = os.write(master, view)
                view = view[n:]
