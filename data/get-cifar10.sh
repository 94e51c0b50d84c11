#!/usr/bin/env bash
# get-cifar10.sh - fetch the official CIFAR-10 binary archive, check its md5
# and extract it into data/cifar-10-batches-bin/, where mtrain looks first.
#
# Test hook: MTRAIN_CIFAR10_MD5 replaces the expected md5 (the tests use it
# with a small fake archive; never set it for real data).
set -euo pipefail

URL="${MTRAIN_CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}"
MD5="${MTRAIN_CIFAR10_MD5:-c58f30108f718f92721af3b95e74349a}"
FOLDER="cifar-10-batches-bin"
FILES="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin
       test_batch.bin"

usage() {
    cat <<USAGE
Usage: $0 [--archive FILE] [--dest DIR] [--keep] [--force]

Download the official CIFAR-10 binary archive (about 163 MB) from
  $URL
check its md5 ($MD5) and extract it into DIR/$FOLDER/.

  --archive FILE  use an archive you already have (no download)
  --dest DIR      extract under DIR (default: the folder of this script, data/)
  --keep          keep the downloaded archive (default: delete it once extracted)
  --force         extract again even if DIR/$FOLDER/ is already complete
  -h, --help      show this help

Environment: MTRAIN_CIFAR10_URL replaces the download address (a mirror).
Without network: download the archive by other means, then run
  $0 --archive cifar-10-binary.tar.gz
USAGE
}

die() { echo "get-cifar10.sh: error: $*" >&2; exit 1; }
note() { echo "get-cifar10.sh: $*" >&2; }

archive=""
dest="$(cd "$(dirname "$0")" && pwd)"
keep=0
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --archive) [ $# -ge 2 ] || { echo "--archive needs a FILE" >&2; exit 2; }
                   archive="$2"; shift 2 ;;
        --dest) [ $# -ge 2 ] || { echo "--dest needs a DIR" >&2; exit 2; }
                dest="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "get-cifar10.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# 0 when DIR/FOLDER holds every file, each a whole number of 3073-byte records.
complete() {
    local f size
    for f in $FILES; do
        [ -f "$1/$f" ] || return 1
        size=$(wc -c < "$1/$f")
        [ "$size" -gt 0 ] && [ $((size % 3073)) -eq 0 ] || return 1
    done
}

md5_of() {
    if command -v md5sum > /dev/null; then md5sum "$1" | cut -d' ' -f1
    elif command -v md5 > /dev/null; then md5 -q "$1"
    elif command -v openssl > /dev/null; then openssl md5 -r "$1" | cut -d' ' -f1
    else die "no md5sum, md5 or openssl to check the archive with"
    fi
}

download() {
    local part="$1.part"
    note "downloading $URL"
    if command -v curl > /dev/null; then
        curl -fL --retry 2 --connect-timeout 20 -o "$part" "$URL" || { rm -f "$part"; return 1; }
    elif command -v wget > /dev/null; then
        wget -q -O "$part" "$URL" || { rm -f "$part"; return 1; }
    else
        die "neither curl nor wget is installed; download $URL by other means and run:" \
            "$0 --archive FILE"
    fi
    mv "$part" "$1"
}

mkdir -p "$dest" || die "cannot create $dest"
if [ "$force" = 0 ] && complete "$dest/$FOLDER"; then
    note "$dest/$FOLDER/ is already complete (use --force to extract again)"
    exit 0
fi

# ---- the archive: given, or downloaded into dest ----------------------------
downloaded=0
if [ -n "$archive" ]; then
    [ -f "$archive" ] || die "archive $archive not found"
else
    archive="$dest/cifar-10-binary.tar.gz"
    if ! download "$archive"; then
        die "download of $URL failed (no network?). Download the file by other means," \
            "then run: $0 --archive FILE"
    fi
    downloaded=1
fi

actual=$(md5_of "$archive")
if [ "$actual" != "$MD5" ]; then
    [ "$downloaded" = 1 ] && rm -f "$archive"
    die "md5 of $archive is $actual, expected $MD5: the archive is damaged or is not" \
        "cifar-10-binary.tar.gz; nothing was extracted"
fi

# ---- extract beside the target, check, then move into place -----------------
tmp=$(mktemp -d "$dest/.cifar10-extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$archive" -C "$tmp" || die "cannot extract $archive"
complete "$tmp/$FOLDER" || die "$archive does not hold $FOLDER/ with $(echo $FILES)"
rm -rf "${dest:?}/$FOLDER"
mv "$tmp/$FOLDER" "$dest/$FOLDER"
[ "$downloaded" = 1 ] && [ "$keep" = 0 ] && rm -f "$archive"
note "CIFAR-10 is in $dest/$FOLDER/"
