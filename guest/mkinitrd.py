#!/usr/bin/env python3
"""Writes the vx test guest's initramfs: an uncompressed newc cpio (the "new ASCII" format
the kernel's initramfs unpacker reads, see the kernel's Documentation/driver-api/early-userspace/
buffer-format.rst) holding busybox, /init, two device nodes and the virtio kernel modules.

Why a cpio writer of our own: the archive needs /dev/console and /dev/null character device
nodes (the kernel opens /dev/console for init's stdio before /init can mount devtmpfs), and the
`cpio` tool can only archive nodes that exist on disk, which needs root (mknod) or fakeroot.
Writing newc records directly lets an unprivileged user produce the same archive, with every
entry owned by root and a fixed mtime so the output is reproducible.

Why the module dependencies are derived here: Debian's linux-image .deb ships no modules.dep
(depmod runs in the package's postinst), and depmod itself (package kmod) is not on a minimal
Debian 12 machine. Every module records the modules it needs in the `depends=` entry of its
.modinfo ELF section (written by the kernel build's modpost from the symbols it imports), which
is the same information modules.dep holds. If the extracted tree does contain a modules.dep it
is used instead.

Usage: mkinitrd.py --kernel-root DIR --busybox FILE --init FILE --out FILE MODULE...
"""

import argparse
import lzma
import os
import struct
import subprocess
import sys

# newc header: magic then 13 eight-digit hex fields (ino, mode, uid, gid, nlink, mtime,
# filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check).
NEWC_MAGIC = b"070701"
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000
S_IFCHR = 0o020000


class BuildError(Exception):
    """A missing input; reported as one line and exit status 1."""


def pad4(n):
    """Bytes of zero padding that bring n up to a multiple of 4."""
    return (4 - n % 4) % 4


class NewcWriter:
    """Collects entries and writes them as a newc archive ending in TRAILER!!!."""

    def __init__(self):
        self.entries = {}  # path (no leading '/') -> (mode, data bytes, rdev major, rdev minor)

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def dir(self, path, perm=0o755):
        """Adds a directory (and its parents)."""
        path = path.strip("/")
        if path and path not in self.entries:
            self._parents(path)
            self.entries[path] = (S_IFDIR | perm, b"", 0, 0)

    def file(self, path, data, perm=0o644):
        """Adds a regular file with the given contents."""
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = (S_IFREG | perm, data, 0, 0)

    def symlink(self, path, target):
        """Adds a symbolic link; newc stores the target as the entry's data."""
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = (S_IFLNK | 0o777, target.encode(), 0, 0)

    def chardev(self, path, major, minor, perm):
        """Adds a character device node (no mknod needed: it is just a header)."""
        path = path.strip("/")
        self._parents(path)
        self.entries[path] = (S_IFCHR | perm, b"", major, minor)

    def write(self, out):
        """Writes all entries, parents before children, then the trailer."""
        ino = 1
        for path in sorted(self.entries):
            mode, data, rmaj, rmin = self.entries[path]
            self._record(out, ino, mode, path, data, rmaj, rmin)
            ino += 1
        self._record(out, 0, 0, "TRAILER!!!", b"", 0, 0)

    @staticmethod
    def _record(out, ino, mode, name, data, rmaj, rmin):
        name_bytes = name.encode() + b"\0"
        nlink = 2 if mode & 0o170000 == S_IFDIR else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name_bytes), 0)
        header = NEWC_MAGIC + b"".join(b"%08x" % f for f in fields)
        out.write(header + name_bytes + b"\0" * pad4(len(header) + len(name_bytes)))
        out.write(data + b"\0" * pad4(len(data)))


def module_name(filename):
    """Module name from a file name: basename without .ko/.ko.xz, '-' read as '_'."""
    base = os.path.basename(filename)
    for ext in (".ko.xz", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.replace("-", "_")


def read_module(path):
    """The module's ELF image, decompressed if the package ships it as .ko.xz."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        # busybox insmod hands the file to init_module() as is; only finit_module() with a
        # kernel built for compressed modules would accept xz, so decompress at build time.
        data = lzma.decompress(data)
    return data


def modinfo_depends(elf):
    """The module names in the `depends=` entry of the .modinfo section of an ELF64 file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise BuildError("not an ELF64 kernel module")
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i):
        base = shoff + i * shentsize
        name, _type = struct.unpack_from("<II", elf, base)
        offset, size = struct.unpack_from("<QQ", elf, base + 0x18)
        return name, offset, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, offset, size = section(i)
        end = elf.index(b"\0", stroff + name)
        if elf[stroff + name : end] == b".modinfo":
            for entry in elf[offset : offset + size].split(b"\0"):
                if entry.startswith(b"depends="):
                    deps = entry[len(b"depends=") :].decode()
                    return [d.replace("-", "_") for d in deps.split(",") if d]
            return []
    return []


class ModuleTree:
    """The modules of one kernel: where each file is, and what each one depends on."""

    def __init__(self, moddir):
        self.moddir = moddir
        self.paths = {}  # name -> path relative to moddir
        for root, _dirs, files in os.walk(os.path.join(moddir, "kernel")):
            for f in files:
                if f.endswith(".ko") or f.endswith(".ko.xz"):
                    rel = os.path.relpath(os.path.join(root, f), moddir)
                    self.paths[module_name(f)] = rel
        self.builtin = set()
        builtin = os.path.join(moddir, "modules.builtin")
        if os.path.exists(builtin):
            with open(builtin) as f:
                self.builtin = {module_name(line.strip()) for line in f if line.strip()}
        self.depmap = None
        dep = os.path.join(moddir, "modules.dep")
        if os.path.exists(dep):
            # "kernel/a.ko: kernel/b.ko kernel/c.ko" per line.
            self.depmap = {}
            with open(dep) as f:
                for line in f:
                    mod, _, deps = line.partition(":")
                    self.depmap[module_name(mod.strip())] = [module_name(d) for d in deps.split()]

    def depends(self, name):
        """Direct dependencies of a module (modules.dep if present, else .modinfo)."""
        if self.depmap is not None:
            return self.depmap.get(name, [])
        return modinfo_depends(read_module(os.path.join(self.moddir, self.paths[name])))

    def load_order(self, wanted):
        """Modules to insmod, dependencies first; built-in modules are left out."""
        order, seen = [], set()

        def visit(name, chain):
            if name in seen or name in self.builtin:
                return
            if name in chain:
                raise BuildError("module dependency cycle: " + " -> ".join(chain + [name]))
            if name not in self.paths:
                raise BuildError("module %s: neither a .ko file nor built in" % name)
            for dep in self.depends(name):
                visit(dep, chain + [name])
            seen.add(name)
            order.append(name)

        for name in wanted:
            visit(name.replace("-", "_"), [])
        return order


def busybox_applets(busybox):
    """Applet paths (e.g. "sbin/insmod") from the static busybox's own --list-full."""
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kernel-root", required=True, help="extracted linux-image .deb")
    p.add_argument("--busybox", required=True, help="static busybox binary")
    p.add_argument("--init", required=True, help="the /init script")
    p.add_argument("--out", required=True, help="output cpio")
    p.add_argument("modules", nargs="*", help="modules to load at boot, in any order")
    args = p.parse_args()

    moddirs = os.listdir(os.path.join(args.kernel_root, "lib/modules"))
    if len(moddirs) != 1:
        raise BuildError("expected one lib/modules/<version> in the kernel package")
    kver = moddirs[0]
    tree = ModuleTree(os.path.join(args.kernel_root, "lib/modules", kver))
    order = tree.load_order(args.modules)

    cpio = NewcWriter()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "tmp", "root", "run"):
        cpio.dir(d)
    cpio.dir("dev")
    # Fixed Linux device numbers (Documentation/admin-guide/devices.txt): mem 1,3 and tty 5,1.
    cpio.chardev("dev/console", 5, 1, 0o600)
    cpio.chardev("dev/null", 1, 3, 0o666)
    with open(args.busybox, "rb") as f:
        cpio.file("bin/busybox", f.read(), 0o755)
    for applet in busybox_applets(args.busybox):
        if applet != "bin/busybox":
            cpio.symlink(applet, "/bin/busybox")
    with open(args.init, "rb") as f:
        cpio.file("init", f.read(), 0o755)

    # Modules go in uncompressed under their usual path; modules.dep (for modprobe by hand)
    # and /etc/modules-order (what /init loads, one absolute path per line) list them.
    listed, dep_lines = [], []
    for name in order:
        rel = tree.paths[name]
        if rel.endswith(".xz"):
            rel = rel[: -len(".xz")]
        image = read_module(os.path.join(tree.moddir, tree.paths[name]))
        cpio.file("lib/modules/%s/%s" % (kver, rel), image)
        listed.append("/lib/modules/%s/%s" % (kver, rel))
        # Like depmod: every module's full dependency closure, listed so that loading from
        # the last entry to the first satisfies each module's own dependencies.
        closure = [d for d in tree.load_order([name]) if d != name]
        deps = [tree.paths[d].removesuffix(".xz") for d in reversed(closure)]
        dep_lines.append("%s: %s" % (rel, " ".join(deps)))
    dep_text = "".join(line.rstrip() + "\n" for line in dep_lines)
    cpio.file("lib/modules/%s/modules.dep" % kver, dep_text.encode())
    cpio.file("etc/modules-order", "".join(path + "\n" for path in listed).encode())

    tmp = args.out + ".tmp"
    with open(tmp, "wb") as out:
        cpio.write(out)
    os.replace(tmp, args.out)
    print("initrd: %s (%d modules: %s)" % (args.out, len(order), " ".join(order)))


if __name__ == "__main__":
    try:
        main()
    except BuildError as e:
        print("mkinitrd: error: %s" % e, file=sys.stderr)
        sys.exit(1)
