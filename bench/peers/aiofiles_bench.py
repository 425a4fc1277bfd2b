"""The Python aiofiles peer for the file benchmarks (bench/file_bench.sh).

    aiofiles_bench.py read  DIR N CONC   read N files DIR/f%06d (4 KiB each), CONC tasks
    aiofiles_bench.py write DIR N CONC   write them (no fsync)

Each file holds its index's low byte repeated; reads are checked.  Runs on
/usr/bin/python3 with Debian's python3-aiofiles (a thread-pool wrapper).
"""
import asyncio
import sys

import aiofiles

SIZE = 4096


async def worker(mode, directory, indices):
    for i in indices:
        path = f"{directory}/f{i:06d}"
        if mode == "write":
            async with aiofiles.open(path, "wb") as f:
                await f.write(bytes([i & 0xFF]) * SIZE)
        else:
            async with aiofiles.open(path, "rb") as f:
                data = await f.read()
            if len(data) != SIZE or data != bytes([i & 0xFF]) * SIZE:
                raise SystemExit(f"aiofiles_bench: wrong content in {path}")


async def main():
    mode, directory, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    await asyncio.gather(*(worker(mode, directory, range(k, n, conc)) for k in range(conc)))
    print(f"files: {n}")


asyncio.run(main())
