#!/usr/bin/env python3
"""Writes a stratified CIFAR-10 sample: the first PER_CLASS images of each class, in the
original order of the source batch. Usage: make_cifar_sample.py SRC.bin OUT.bin [PER_CLASS]"""
import sys

RECORD = 3073


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    per_class = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    data = open(src, "rb").read()
    if len(data) % RECORD:
        sys.exit(f"{src}: size {len(data)} is not a multiple of {RECORD}")
    taken = [0] * 10
    kept = []
    for i in range(len(data) // RECORD):
        label = data[i * RECORD]
        if taken[label] < per_class:
            taken[label] += 1
            kept.append(i)
    if min(taken) < per_class:
        sys.exit(f"{src}: not enough images for {per_class} per class")
    with open(out, "wb") as f:
        for i in kept:
            f.write(data[i * RECORD:(i + 1) * RECORD])
    print(f"{out}: {len(kept)} images, source indices {kept[0]}..{kept[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
