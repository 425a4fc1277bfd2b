#!/usr/bin/env python3
"""coord_asyncio.py -- the asyncio / uvloop peer of bench/coord_bench.c.

Usage: coord_asyncio.py [--uvloop] METRIC N, METRIC one of

  queue_handoff     two tasks ping-pong an int through two asyncio.Queue(1),
                    N round trips; a handoff is one leg (2 N in all)
  queue_item        one task puts N ints into an asyncio.Queue(1024), the
                    other gets them
  lock_uncontended  N `async with lock` of an asyncio.Lock nobody else wants
  lock_handoff      two tasks, each N/2 times: async with lock: await
                    asyncio.sleep(0) (the other task runs and blocks on the
                    lock); the figure is per acquisition
  channel           a plain thread sends N ints to a task on the loop:
                    asyncio has no cross-thread channel, so this is the usual
                    hand-made one -- a threading.Semaphore(1024) for the
                    backpressure, loop.call_soon_threadsafe(queue.put_nowait)
                    to deliver, the task releasing the semaphore per item
  remote_call       a task runs a coroutine on a second loop in another
                    thread and awaits its answer, N times:
                    asyncio.run_coroutine_threadsafe + asyncio.wrap_future

Prints one line, "METRIC WALL_NS CPU_NS": wall-clock and process CPU time
(every thread) per operation of a timed pass that follows an untimed
warm-up pass of N/10.  --uvloop runs the same code on uvloop's loop.
bench/coord_bench.sh takes the medians.
"""
import asyncio
import sys
import threading
import time


async def queue_handoff(n):
    q1, q2 = asyncio.Queue(1), asyncio.Queue(1)

    async def echo():
        for _ in range(n):
            await q2.put(await q1.get())

    t = asyncio.create_task(echo())
    for i in range(n):
        await q1.put(i)
        await q2.get()
    await t
    return 2 * n


async def queue_item(n):
    q = asyncio.Queue(1024)

    async def produce():
        for i in range(n):
            await q.put(i)

    t = asyncio.create_task(produce())
    total = 0
    for _ in range(n):
        total += await q.get()
    await t
    assert total == n * (n - 1) // 2
    return n


async def lock_uncontended(n):
    lock = asyncio.Lock()
    count = 0
    for _ in range(n):
        async with lock:
            count += 1
    return n


async def lock_handoff(n):
    lock = asyncio.Lock()

    async def contend():
        for _ in range(n // 2):
            async with lock:
                await asyncio.sleep(0)

    await asyncio.gather(contend(), contend())
    return n // 2 * 2


async def channel(n):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()
    room = threading.Semaphore(1024)

    def produce():
        put = q.put_nowait
        for i in range(n):
            room.acquire()
            loop.call_soon_threadsafe(put, i)

    th = threading.Thread(target=produce)
    th.start()
    total = 0
    for _ in range(n):
        total += await q.get()
        room.release()
    th.join()
    assert total == n * (n - 1) // 2
    return n


async def add_one(x):
    return x + 1


async def remote_call(n):
    other = asyncio.new_event_loop()
    th = threading.Thread(target=other.run_forever)
    th.start()
    try:
        for i in range(n):
            fut = asyncio.run_coroutine_threadsafe(add_one(i), other)
            assert await asyncio.wrap_future(fut) == i + 1
    finally:
        other.call_soon_threadsafe(other.stop)
        th.join()
        other.close()
    return n


METRICS = {f.__name__: f for f in (queue_handoff, queue_item, lock_uncontended, lock_handoff, channel, remote_call)}


async def main(metric, n):
    f = METRICS[metric]
    await f(max(n // 10, 1))
    c0, t0 = time.process_time_ns(), time.perf_counter_ns()
    ops = await f(n)
    wall, cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
    print(f"{metric} {wall / ops:.2f} {cpu / ops:.2f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        args = args[1:]
    if len(args) != 2 or args[0] not in METRICS or not args[1].isdigit() or int(args[1]) < 10:
        sys.exit("usage: coord_asyncio.py [--uvloop] METRIC N (METRIC: %s; N >= 10)" % ", ".join(METRICS))
    asyncio.run(main(args[0], int(args[1])))
