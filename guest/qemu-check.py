#!/usr/bin/env python3
"""Boots a vx test guest under QEMU (the reference peer, not needed by the tests) and checks
the /init protocol of docs/guest.md: the VX-GUEST-READY marker appears, a shell command typed
on the serial console runs, and leaving the shell powers the machine off (QEMU exits).

Prints the seconds from starting QEMU to the marker for each run, then the median.

Usage: qemu-check.py [--runs N] [--accel tcg] [--timeout S] [--command C --expect T] KERNEL INITRD
"""

import argparse
import os
import select
import statistics
import subprocess
import sys
import time

MARKER = b"VX-GUEST-READY"


class CheckError(Exception):
    """The guest did not follow the protocol; the message says which step."""


class Console:
    """QEMU's serial console on its stdio, read with a deadline."""

    def __init__(self, proc, echo):
        self.proc = proc
        self.buf = b""
        self.echo = echo

    def expect(self, needle, deadline, what):
        """Reads until `needle` appears after what was already consumed; returns the time."""
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckError("timed out waiting for " + what)
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise CheckError("QEMU closed its output before " + what)
            if self.echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            self.buf += chunk
        at = time.monotonic()
        self.buf = self.buf[self.buf.index(needle) + len(needle) :]
        return at

    def send(self, line):
        """Types one line on the guest's console."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


def boot_once(args):
    """One boot; returns seconds from QEMU's start to the ready marker."""
    cmd = [
        args.qemu, "-accel", args.accel, "-m", "512", "-nographic", "-no-reboot",
        "-kernel", args.kernel, "-initrd", args.initrd, "-append", "console=ttyS0",
    ] + args.qemu_arg
    start = time.monotonic()
    deadline = start + args.timeout
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        con = Console(proc, args.verbose)
        ready = con.expect(MARKER, deadline, "the " + MARKER.decode() + " marker")
        # busybox sh's prompt for root ends in "# "; typing before it exists could be lost.
        con.expect(b"# ", deadline, "the shell prompt")
        # The command line echoes as typed, so the expected text must be something only the
        # command's output contains (the default uses the shell's arithmetic for that).
        con.send(args.command)
        con.expect(args.expect.encode(), deadline, "the output of `%s`" % args.command)
        con.send("exit")
        con.expect(b"shell exited, powering off", deadline, "/init's poweroff line after exit")
        left = max(deadline - time.monotonic(), 0.1)
        try:
            proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            raise CheckError("QEMU still running after the shell exited (no poweroff)") from None
        return ready - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kernel")
    p.add_argument("initrd")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--accel", default="tcg")
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeat)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per boot")
    p.add_argument("--command", default="echo vx-$((6*7))", help="shell command to type")
    p.add_argument("--expect", default="vx-42", help="text the command's output must contain")
    p.add_argument("--verbose", action="store_true", help="copy the console to stdout")
    args = p.parse_args()
    times = []
    for run in range(1, args.runs + 1):
        try:
            t = boot_once(args)
        except CheckError as e:
            print("qemu-check: run %d: FAILED: %s" % (run, e))
            return 1
        times.append(t)
        print(
            "qemu-check: run %d: ready after %.2f s; shell command ran; poweroff ended QEMU"
            % (run, t)
        )
    print("qemu-check: median %.2f s over %d runs" % (statistics.median(times), len(times)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
