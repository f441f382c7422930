"""A small TCP fault proxy on loopback (asyncio, standard library only).

    p = FaultProxy(upstream_port)          # listens on 127.0.0.1:p.port
    p.set_mode("pass")                     # forward everything (default)
    p.set_mode("refuse")                   # partition: new connections are
                                           # reset at once, existing ones cut
    p.set_mode("blackhole")                # partition: connections are accepted
                                           # and held, nothing is forwarded
    p.set_mode("stall")                    # existing and new connections stay
                                           # open, no byte moves either way
    p.set_mode("latency", ms=200)          # every chunk is delayed by ms
    p.set_mode("cut", after=N)             # each new connection is cut (RST)
                                           # after N bytes of the response
    p.set_mode("drop", every=K, nbytes=B)  # every K-th upstream->client chunk
                                           # loses B bytes (corrupt stream)
    p.cut_all()                            # reset every open connection now
    p.stats                                # dict of counters
    p.close()

It runs its own event loop in a daemon thread, so tests drive it from
synchronous code. Chunks are read 1 KiB at a time so that cuts land in the
middle of responses (headers, bodies, SSE frames). Used by the fault suites
(tests/fault/test_*.py) and the soak (tests/fault/soak.py) to sit between
the bridge and a node. Can also run stand-alone:

    python3 tests/fault/faultproxy.py UPSTREAM_PORT [LISTEN_PORT]
"""

import asyncio
import socket
import struct
import sys
import threading

CHUNK = 1024


class _Conn:
    __slots__ = ("cr", "cw", "ur", "uw", "down_bytes", "tasks", "dead")

    def __init__(self, cr, cw):
        self.cr, self.cw = cr, cw
        self.ur = self.uw = None
        self.down_bytes = 0
        self.tasks = []
        self.dead = False


def _rst(writer):
    """Abort a connection with a TCP RST (SO_LINGER 0), not a FIN."""
    if writer is None:
        return
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        writer.transport.abort()
    except Exception:
        pass


class FaultProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1", listen_port=0):
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.params = {}
        self.stats = {"accepted": 0, "refused": 0, "cut": 0, "dropped_bytes": 0,
                      "bytes_down": 0, "bytes_up": 0}
        self._conns = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._server = None
        self._unstall = None
        self._listen_port = listen_port
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fault proxy did not start")
        self.port = self._server.sockets[0].getsockname()[1]

    # -- control (thread-safe) ---------------------------------------------
    def _call(self, fn, *a):
        fut = asyncio.run_coroutine_threadsafe(fn(*a), self._loop)
        return fut.result(10)

    def set_mode(self, mode, **params):
        assert mode in ("pass", "refuse", "blackhole", "stall", "latency", "cut",
                        "drop"), mode
        self._call(self._set_mode, mode, params)

    def set_upstream(self, port, host="127.0.0.1"):
        """Point new connections at another port (a restarted node)."""
        self.upstream = (host, port)

    def cut_all(self):
        return self._call(self._cut_all)

    def open_connections(self):
        return len(self._conns)

    def close(self):
        try:
            self._call(self._shutdown)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- loop side ----------------------------------------------------------
    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(lambda loop, ctx: None)
        self._unstall = asyncio.Event()
        self._unstall.set()
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._handle, "127.0.0.1", self._listen_port, reuse_address=True))
        self._started.set()
        self._loop.run_forever()
        try:
            self._loop.close()
        except Exception:
            pass

    async def _set_mode(self, mode, params):
        self.mode, self.params = mode, dict(params)
        if mode == "stall":
            self._unstall.clear()
        else:
            self._unstall.set()
        if mode == "refuse":
            await self._cut_all()

    async def _cut_all(self):
        n = 0
        for c in list(self._conns):
            n += 1
            self._kill(c)
        self.stats["cut"] += n
        return n

    async def _shutdown(self):
        self._server.close()
        await self._cut_all()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _kill(self, c):
        if c.dead:
            return
        c.dead = True
        _rst(c.cw)
        _rst(c.uw)
        self._conns.discard(c)

    async def _handle(self, cr, cw):
        c = _Conn(cr, cw)
        try:
            await self._serve(c, cr, cw)
        except (asyncio.CancelledError, Exception):
            self._kill(c)
            for t in c.tasks:
                t.cancel()

    async def _serve(self, c, cr, cw):
        mode = self.mode
        if mode == "refuse":
            self.stats["refused"] += 1
            _rst(cw)
            return
        self.stats["accepted"] += 1
        self._conns.add(c)
        if mode == "blackhole":
            # hold the client, never connect upstream; wait for a cut
            try:
                while not c.dead and self.mode == "blackhole":
                    if await cr.read(CHUNK) == b"":
                        break
            except Exception:
                pass
            if self.mode != "blackhole" and not c.dead:
                pass  # the client sent bytes into the void: just cut it
            self._kill(c)
            return
        try:
            c.ur, c.uw = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._kill(c)
            return
        cut_after = self.params.get("after") if mode == "cut" else None
        t1 = asyncio.ensure_future(self._pump(c, cr, c.uw, up=True))
        t2 = asyncio.ensure_future(self._pump(c, c.ur, cw, up=False,
                                              cut_after=cut_after))
        c.tasks = [t1, t2]
        await asyncio.wait(c.tasks, return_when=asyncio.FIRST_COMPLETED)
        self._kill(c)
        for t in c.tasks:
            t.cancel()

    async def _pump(self, c, r, w, up, cut_after=None):
        nchunk = 0
        try:
            while not c.dead:
                data = await r.read(CHUNK)
                if not data:
                    # half-close: pass the FIN on
                    try:
                        w.write_eof()
                    except Exception:
                        pass
                    # keep the other direction alive until it ends
                    while not c.dead:
                        await asyncio.sleep(0.05)
                        if w.is_closing():
                            break
                    return
                await self._unstall.wait()
                if c.dead:
                    return
                mode, p = self.mode, self.params
                if mode == "refuse":
                    return
                if mode == "latency":
                    await asyncio.sleep(p.get("ms", 100) / 1000.0)
                if not up:
                    nchunk += 1
                    if mode == "drop" and nchunk % max(1, p.get("every", 5)) == 0:
                        nb = min(len(data), p.get("nbytes", 7))
                        off = len(data) // 2
                        data = data[:off] + data[off + nb:]
                        self.stats["dropped_bytes"] += nb
                    if cut_after is not None and c.down_bytes + len(data) >= cut_after:
                        keep = max(0, cut_after - c.down_bytes)
                        if keep:
                            w.write(data[:keep])
                            await w.drain()
                        self.stats["cut"] += 1
                        return
                    c.down_bytes += len(data)
                    self.stats["bytes_down"] += len(data)
                else:
                    self.stats["bytes_up"] += len(data)
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            return


if __name__ == "__main__":
    up = int(sys.argv[1])
    lp = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    p = FaultProxy(up, listen_port=lp)
    print("fault proxy 127.0.0.1:%d -> 127.0.0.1:%d; commands: pass | refuse | "
          "blackhole | stall | latency MS | cut BYTES | drop EVERY NBYTES | "
          "cutall | stats | quit" % (p.port, up), flush=True)
    for line in sys.stdin:
        w = line.split()
        if not w:
            continue
        if w[0] == "quit":
            break
        if w[0] == "cutall":
            print(p.cut_all())
        elif w[0] == "stats":
            print(p.stats)
        elif w[0] == "latency":
            p.set_mode("latency", ms=int(w[1]))
        elif w[0] == "cut":
            p.set_mode("cut", after=int(w[1]))
        elif w[0] == "drop":
            p.set_mode("drop", every=int(w[1]), nbytes=int(w[2]))
        else:
            p.set_mode(w[0])
        sys.stdout.flush()
    p.close()
