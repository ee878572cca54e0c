"""A TCP relay in front of one sshd: counts round trips, can add latency.

Used where ``tc qdisc ... netem`` is not available.  Every byte between the
client (hg envdeploy, ssh) and sshd goes through the relay, which sees the
conversation from the middle:

- a *round trip* is counted each time data flows server -> client after
  data flowed client -> server on the same connection: the client spoke,
  then the server answered.  That is the number of times a client that
  waits for answers pays the network's round-trip time.  TCP's own ACKs
  are not seen (the kernel sends them), nor counted.
- ``delay`` seconds are added to every chunk in each direction (as
  ``netem delay`` on ``lo`` would add to every packet), keeping order.

The relay runs an asyncio loop in a daemon thread of the benchmark process.
"""
import asyncio
import threading
import time


class Relay:
    def __init__(self, target_port, delay=0.0):
        self.target_port = target_port
        self.delay = delay
        self.port = None
        self._loop = None
        self._server = None
        self._ready = threading.Event()
        self.reset()

    def reset(self):
        self.connections = 0
        self.round_trips = 0
        self.bytes_up = 0
        self.bytes_down = 0

    # -- the loop thread

    def start(self):
        threading.Thread(target=self._thread, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("relay did not start")
        return self

    def _thread(self):
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    # -- one connection

    async def _handle(self, client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self.connections += 1
        last = [None]  # direction of the last chunk seen on this connection
        await asyncio.gather(
            self._pump(client_reader, server_writer, "up", last),
            self._pump(server_reader, client_writer, "down", last),
        )
        for writer in (client_writer, server_writer):
            writer.close()

    async def _pump(self, reader, writer, direction, last):
        queue = asyncio.Queue()
        sender = asyncio.ensure_future(self._deliver(queue, writer))
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if direction == "down":
                    self.bytes_down += len(data)
                    if last[0] == "up":
                        self.round_trips += 1
                else:
                    self.bytes_up += len(data)
                last[0] = direction
                queue.put_nowait((time.monotonic() + self.delay, data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((time.monotonic() + self.delay, None))
        await sender

    @staticmethod
    async def _deliver(queue, writer):
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return
