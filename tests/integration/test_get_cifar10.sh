#!/usr/bin/env bash
# test_get_cifar10.sh - data/get-cifar10.sh without any network: argument
# handling, a failing download (curl and wget replaced by stubs that fail),
# an archive with the wrong md5, and extraction of a small fake archive whose
# md5 is passed through the MTRAIN_CIFAR10_MD5 test hook.
set -uo pipefail

src="${MTRAIN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
script="$src/data/get-cifar10.sh"
tmp=$(mktemp -d /tmp/mtrain-test-get-cifar10.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0

# check NAME WANT_STATUS PATTERN -- command...: status and a line of output.
check() {
    local name="$1" want="$2" pattern="$3" out status
    shift 4
    out=$("$@" 2>&1)
    status=$?
    if [ "$status" -ne "$want" ] || ! grep -q -- "$pattern" <<< "$out"; then
        echo "FAIL $name: status $status (want $want), output:"
        echo "$out" | sed 's/^/    /'
        fails=$((fails + 1))
    else
        echo "ok   $name"
    fi
}

check "help" 0 "--archive FILE" -- bash "$script" --help
check "unknown option" 2 "unknown option '--bogus'" -- bash "$script" --bogus
check "--archive without a file" 2 "needs a FILE" -- bash "$script" --archive
check "missing archive" 1 "archive $tmp/nope.tar.gz not found" -- \
    bash "$script" --dest "$tmp/d0" --archive "$tmp/nope.tar.gz"

# A wrong archive: the md5 check refuses it and nothing is extracted.
head -c 5000 /dev/zero > "$tmp/fake.tar.gz"
check "md5 mismatch" 1 "expected c58f30108f718f92721af3b95e74349a" -- \
    bash "$script" --dest "$tmp/d1" --archive "$tmp/fake.tar.gz"
[ ! -e "$tmp/d1/cifar-10-batches-bin" ] ||
    { echo "FAIL md5 mismatch extracted"; fails=$((fails + 1)); }

# No network: stub curl and wget fail the way curl does offline.
mkdir -p "$tmp/bin"
printf '#!/bin/sh\necho "curl: (6) Could not resolve host" >&2\nexit 6\n' > "$tmp/bin/curl"
cp "$tmp/bin/curl" "$tmp/bin/wget"
chmod +x "$tmp/bin/curl" "$tmp/bin/wget"
check "download fails offline" 1 "failed (no network?)" -- \
    env PATH="$tmp/bin:$PATH" bash "$script" --dest "$tmp/d2"
[ -z "$(ls -A "$tmp/d2")" ] ||
    { echo "FAIL offline run left files in $tmp/d2"; fails=$((fails + 1)); }

# A small archive in the official layout extracts into place (md5 via the hook).
mkdir -p "$tmp/src/cifar-10-batches-bin"
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    head -c 6146 /dev/zero > "$tmp/src/cifar-10-batches-bin/$f.bin"
done
tar -czf "$tmp/small.tar.gz" -C "$tmp/src" cifar-10-batches-bin
sum=$(md5sum "$tmp/small.tar.gz" | cut -d' ' -f1)
check "extract" 0 "CIFAR-10 is in $tmp/d3/cifar-10-batches-bin/" -- \
    env MTRAIN_CIFAR10_MD5="$sum" bash "$script" --dest "$tmp/d3" --archive "$tmp/small.tar.gz"
[ "$(wc -c < "$tmp/d3/cifar-10-batches-bin/test_batch.bin")" -eq 6146 ] ||
    { echo "FAIL extract: test_batch.bin missing or wrong size"; fails=$((fails + 1)); }
check "already complete" 0 "already complete" -- bash "$script" --dest "$tmp/d3"

# An archive without the test file is refused and leaves no folder behind.
rm "$tmp/src/cifar-10-batches-bin/test_batch.bin"
tar -czf "$tmp/partial.tar.gz" -C "$tmp/src" cifar-10-batches-bin
sum=$(md5sum "$tmp/partial.tar.gz" | cut -d' ' -f1)
check "incomplete archive" 1 "does not hold cifar-10-batches-bin/" -- \
    env MTRAIN_CIFAR10_MD5="$sum" bash "$script" --dest "$tmp/d4" --archive "$tmp/partial.tar.gz"
[ -z "$(ls -A "$tmp/d4")" ] || { echo "FAIL incomplete archive left files"; fails=$((fails + 1)); }

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
