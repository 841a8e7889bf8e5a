#!/usr/bin/env bash
# Builds the Linux test guests of vx (docs/guest.md) from Debian 12 packages only:
# for each kernel flavour, OUTDIR/FLAVOUR/{bzImage,initrd.cpio,versions.txt}.
#
# Usage: scripts/build-guest.sh [OUTDIR]      (default: target/guest under the repository root)
#
# Needs apt-get, apt-cache, dpkg-deb (all on any Debian) and python3 (guest/mkinitrd.py writes
# the cpio). Runs unprivileged: `apt-get download` and `dpkg-deb -x` need no root, and the cpio
# writer creates the device nodes itself. The package lists must exist (`apt-get update`).
#
# Caching: downloaded .debs stay in OUTDIR/cache/debs, and each flavour keeps a stamp naming the
# package versions and a hash of the inputs (this script, guest/init, guest/mkinitrd.py); when
# the stamp matches and the outputs exist, the flavour is skipped without downloading anything.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${1:-$repo/target/guest}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

flavours=(amd64 cloud-amd64)
# The virtio drivers the emulator's devices need; their dependencies are added from the
# modules' own dependency data (guest/mkinitrd.py explains why not depmod).
modules=(virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
    virtio_blk virtio_net net_failover failover)

step() {
    echo "build-guest: $*"
}

die() {
    echo "build-guest: error: $*" >&2
    exit 1
}

for tool in apt-get apt-cache dpkg-deb python3 sha256sum flock; do
    command -v "$tool" >/dev/null || die "$tool not found (on Debian 12: apt-get install python3)"
done

# One build per OUTDIR at a time: the test suite may start this script from several test
# threads at once, and two runs would race on the .deb cache and the outputs. The lock is
# held until the script exits (fd 9 stays open). flock is in util-linux (essential on Debian).
exec 9>"$outdir/.lock"
if ! flock -n 9; then
    step "waiting for another build-guest.sh using $outdir"
    flock 9
fi

# Each apt-cache run costs ~0.6 s (it reads all package lists), so packages are looked up in
# batches: one `policy` for the candidates, one `show` for the meta packages' Depends.
declare -A cand=()   # package -> candidate version
declare -A kernel=() # meta package -> first Depends entry

# Records the candidate version of each package apt can install.
lookup_candidates() {
    local pkg ver
    while read -r pkg ver; do
        cand[$pkg]=$ver
    done < <(apt-cache policy "$@" 2>/dev/null |
        awk '/^[^ ]/ { name = $0; sub(/:$/, "", name) }
             $1 == "Candidate:" && $2 != "(none)" { print name, $2 }')
}

metas=()
for flavour in "${flavours[@]}"; do
    metas+=("linux-image-$flavour")
done
step "resolving ${metas[*]} busybox-static"
lookup_candidates busybox-static "${metas[@]}"
# Without package lists apt-cache knows nothing; say so once instead of failing per package.
if [ -z "${cand[busybox-static]:-}" ]; then
    die "package lists missing (apt-cache knows no busybox-static): run apt-get update as root"
fi
for meta in "${metas[@]}"; do
    [ -n "${cand[$meta]:-}" ] ||
        die "no installable $meta (package lists missing: run apt-get update as root)"
done

# The first Depends entry of each meta package's candidate: the concrete kernel package
# (e.g. linux-image-amd64 -> linux-image-6.1.0-56-amd64).
while read -r meta dep; do
    kernel[$meta]=$dep
done < <(apt-cache show --no-all-versions "${metas[@]}" 2>/dev/null |
    awk -F': ' '$1 == "Package" { name = $2 }
                $1 == "Depends" { split($2, d, /[ ,|]/); print name, d[1] }')
kpkgs=()
for meta in "${metas[@]}"; do
    [ -n "${kernel[$meta]:-}" ] || die "$meta ${cand[$meta]} has no Depends naming a kernel package"
    # Where the signed kernel is not available, the same kernel is in the -unsigned package.
    kpkgs+=("${kernel[$meta]}" "${kernel[$meta]}-unsigned")
done
lookup_candidates "${kpkgs[@]}"

debs=$outdir/cache/debs
# As root, apt drops to its sandbox user _apt for downloads, which cannot write into a
# root-owned directory; apt then downloads as root anyway with a warning. Ask for that directly.
apt_opts=()
if [ "$(id -u)" -eq 0 ]; then
    apt_opts=(-o APT::Sandbox::User=root)
fi
mkdir -p "$debs"

# Path of the cached .deb of PACKAGE VERSION, downloading it when missing. apt-get download
# writes NAME_VERSION_ARCH.deb with the epoch colon escaped as %3a.
fetch() {
    local pkg=$1 ver=$2 file
    local pattern="${pkg}_${ver//:/%3a}_"
    for file in "$debs/$pattern"*.deb; do
        if [ -f "$file" ]; then
            echo "$file"
            return
        fi
    done
    step "downloading $pkg $ver" >&2
    # Older versions of the same package are dropped so the cache does not grow per update.
    rm -f "$debs/${pkg}_"*.deb
    if ! (cd "$debs" && apt-get -q "${apt_opts[@]}" download "$pkg=$ver" >&2); then
        die "apt-get download $pkg=$ver failed" \
            "(package lists missing or stale: run apt-get update as root)"
    fi
    for file in "$debs/$pattern"*.deb; do
        if [ -f "$file" ]; then
            echo "$file"
            return
        fi
    done
    die "apt-get download $pkg=$ver left no $pattern*.deb in $debs"
}

# Hash of everything besides the packages that shapes the outputs.
inputs_hash=$(cat "$repo/scripts/build-guest.sh" "$repo/guest/init" "$repo/guest/mkinitrd.py" |
    sha256sum | cut -d' ' -f1)

busybox_ver=${cand[busybox-static]}
work=$(mktemp -d "$outdir/cache/work.XXXXXX")
# Extracted packages are large (the amd64 kernel's modules are ~400 MB) and only needed while
# building, so the work tree always goes; the .debs stay for the next build.
trap 'rm -rf "$work"' EXIT

for flavour in "${flavours[@]}"; do
    meta=linux-image-$flavour
    meta_ver=${cand[$meta]}
    kpkg=${kernel[$meta]}
    if [ -z "${cand[$kpkg]:-}" ]; then
        [ -n "${cand[$kpkg-unsigned]:-}" ] ||
            die "$meta depends on $kpkg, which apt cannot install (nor $kpkg-unsigned)"
        kpkg=$kpkg-unsigned
    fi
    kver=${cand[$kpkg]}
    step "$flavour: $meta $meta_ver -> $kpkg $kver, busybox-static $busybox_ver"

    dest=$outdir/$flavour
    mkdir -p "$dest"
    stamp=$(printf '%s %s\n' "$meta" "$meta_ver" "$kpkg" "$kver" busybox-static "$busybox_ver")
    stamp_full=$(printf '%s\ninputs %s\nmodules %s\n' "$stamp" "$inputs_hash" "${modules[*]}")
    if [ -f "$dest/bzImage" ] && [ -f "$dest/initrd.cpio" ] && [ -f "$dest/versions.txt" ] &&
        [ "$(cat "$dest/stamp" 2>/dev/null)" = "$stamp_full" ]; then
        step "$flavour: up to date ($dest)"
        continue
    fi
    # A stale stamp must not survive a half-finished rebuild.
    rm -f "$dest/stamp"

    kdeb=$(fetch "$kpkg" "$kver")
    bdeb=$(fetch busybox-static "$busybox_ver")

    step "$flavour: extracting $(basename "$kdeb")"
    kroot=$work/$flavour-kernel
    dpkg-deb -x "$kdeb" "$kroot"
    broot=$work/busybox
    if [ ! -d "$broot" ]; then
        step "extracting $(basename "$bdeb")"
        dpkg-deb -x "$bdeb" "$broot"
    fi
    [ -x "$broot/bin/busybox" ] || die "$(basename "$bdeb") has no bin/busybox"

    vmlinuz=("$kroot"/boot/vmlinuz-*)
    if [ "${#vmlinuz[@]}" -ne 1 ] || [ ! -f "${vmlinuz[0]}" ]; then
        die "$(basename "$kdeb") does not hold exactly one /boot/vmlinuz-*"
    fi
    step "$flavour: bzImage <- /boot/$(basename "${vmlinuz[0]}")"
    cp "${vmlinuz[0]}" "$dest/bzImage.tmp"
    mv "$dest/bzImage.tmp" "$dest/bzImage"

    step "$flavour: writing initrd.cpio"
    python3 "$repo/guest/mkinitrd.py" --kernel-root "$kroot" --busybox "$broot/bin/busybox" \
        --init "$repo/guest/init" --out "$dest/initrd.cpio" "${modules[@]}" |
        sed 's/^/build-guest: '"$flavour"': /'

    echo "$stamp" >"$dest/versions.txt"
    step "$flavour: versions.txt"
    rm -rf "$kroot"
    # Written last: its presence says every output above is complete.
    echo "$stamp_full" >"$dest/stamp"
    step "$flavour: done ($dest)"
done
