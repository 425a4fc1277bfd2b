"""spawn_asyncio -- the asyncio peer of bench/process_bench.c: spawn and wait
for /bin/true, CONC at a time, with asyncio.create_subprocess_exec.

Usage: spawn_asyncio.py [N [CONC]] (defaults 2000 and 8): an untimed warm-up
of N/10, then a timed pass; prints "spawn_wait WALL_NS CPU_NS CHILD_CPU_NS"
per child, as process_bench does.
"""
import asyncio
import resource
import sys
import time


async def worker(state):
    while state[0] > 0:
        state[0] -= 1
        p = await asyncio.create_subprocess_exec("/bin/true")
        if await p.wait() != 0:
            raise SystemExit("spawn_asyncio: /bin/true failed")


async def run_pass(n, conc):
    state = [n]
    await asyncio.gather(*(worker(state) for _ in range(conc)))


def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    conc = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    asyncio.run(run_pass(n // 10 + 1, conc))
    s0, c0, t0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.monotonic_ns()
    asyncio.run(run_pass(n, conc))
    t1, s1, c1 = time.monotonic_ns(), cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    print("spawn_wait %d %d %d" % ((t1 - t0) // n, (s1 - s0) * 1e9 // n, (c1 - c0) * 1e9 // n))


main()
