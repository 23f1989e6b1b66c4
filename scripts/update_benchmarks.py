#!/usr/bin/env python3
"""Replaces one section of BENCHMARKS.md with a bench command's Markdown output.

usage: update_benchmarks.py SECTION FILE [TARGET]
The section lives between <!-- bench:SECTION:start --> and <!-- bench:SECTION:end -->;
it is appended if absent. TARGET names another Markdown file of the repository to write
the section into (default BENCHMARKS.md; e.g. RELIABILITY.md for `bench/soak.sh`).
Figures are only ever written by this script, never by hand.
"""
import pathlib
import sys

section, src = sys.argv[1], pathlib.Path(sys.argv[2])
target = sys.argv[3] if len(sys.argv) > 3 else "BENCHMARKS.md"
body = src.read_text().strip()
path = pathlib.Path(__file__).resolve().parent.parent / target
text = path.read_text() if path.exists() else f"# {path.stem.capitalize()}\n"
start, end = f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"
block = f"{start}\n{body}\n{end}"
if start in text and end in text:
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    text = before + block + after
else:
    text = text.rstrip() + "\n\n" + block + "\n"
path.write_text(text)
print(f"updated section {section!r} of {path}")
