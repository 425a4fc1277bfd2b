#!/usr/bin/env python3
"""Socket activation without systemd: what systemd-socket-activate does.

    listen_fds_launch.py [--tcp N] [--unix PATH] [--bad pipe|udp|unlistened]
                         [--names A:B] [--wrong-pid] PORTFILE -- CMD [ARG...]

Opens the listening sockets (N TCP ones on 127.0.0.1, ephemeral ports;
then a Unix stream one at PATH), writes the TCP ports to PORTFILE (one a
line, written before the exec so the caller can wait for the file), puts
the sockets at fds 3, 4, ... and execs CMD with LISTEN_FDS set to their
count and LISTEN_PID to this process's pid, which the exec keeps: the
same contract sd_listen_fds(3) checks.  --bad puts an fd that is not a
listening stream socket first instead; --wrong-pid names another pid
(the target must then ignore the sockets); --names sets LISTEN_FDNAMES.
"""
import argparse
import fcntl
import os
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", type=int, default=1)
    ap.add_argument("--unix")
    ap.add_argument("--bad", choices=["pipe", "udp", "unlistened"])
    ap.add_argument("--names")
    ap.add_argument("--wrong-pid", action="store_true")
    ap.add_argument("portfile")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command")

    fds, ports, keep = [], [], []
    if a.bad == "pipe":
        r, w = os.pipe()
        fds.append(r)
        keep.append(w)
    elif a.bad == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        fds.append(s.detach())
    elif a.bad == "unlistened":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        fds.append(s.detach())
    for _ in range(a.tcp):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        ports.append(s.getsockname()[1])
        fds.append(s.detach())
    if a.unix:
        try:
            os.unlink(a.unix)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(a.unix)
        s.listen(128)
        fds.append(s.detach())

    # Move them out of the way first (above 100), then down to 3, 4, ...:
    # a plain dup2 in order could overwrite a socket not yet moved.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
    for fd in fds:
        os.close(fd)
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
        os.close(fd)

    tmp = a.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"{p}\n" for p in ports))
    os.rename(tmp, a.portfile)

    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(fds))
    env["LISTEN_PID"] = str(os.getpid() + (1 if a.wrong_pid else 0))
    if a.names:
        env["LISTEN_FDNAMES"] = a.names
    sys.stdout.flush()
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
