"""What the result-table scripts share (honest.py, ett.py): trainings reused across calls, so a long
table can be made in parts; cells and tables in markdown; a marked section of docs/RESULTS.md replaced.

A script keeps its runs in one --out_dir with a stamp file (STAMP.json: the code digest and the
settings that shape a run). Called again with the same folder, it reuses every finished run there
when the stamp still holds, and refuses in one line when the code that trains them changed, so
one table never mixes two versions of a model.
"""
import glob
import hashlib
import json
import os
import re
import statistics

import numpy as np

import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_digest(extra=()):
    """sha256 over the files whose change changes a training's numbers: train.py, data/, models/
    (runs.py's names, messages and file writing do not), and the files in extra (paths from ROOT)."""
    h = hashlib.sha256()
    paths = [os.path.join(ROOT, "train.py")] + [os.path.join(ROOT, p) for p in extra]
    paths += sorted(glob.glob(os.path.join(ROOT, "data", "*.py")) + glob.glob(os.path.join(ROOT, "models", "*.py")))
    for path in paths:
        h.update(os.path.relpath(path, ROOT).encode() + b"\0")
        with open(path, "rb") as f:
            h.update(f.read() + b"\0")
    return h.hexdigest()


def finished_runs(out, key):
    """{key(config): run_dir} of the finished runs under out (runs/{name}/{time}/), the first of each key."""
    found = {}
    for config_path in sorted(glob.glob(os.path.join(out, "*", "*", "config.json"))):
        run_dir = os.path.dirname(config_path)
        if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
            continue
        config = runs.read_json(config_path)
        if config.get("interrupted"):
            continue
        found.setdefault(key(config), run_dir)
    return found


def reusable(out, stamp, key, script):
    """The finished runs in out ({key(config): run_dir}) of an earlier call of script, after checking
    that they were made by this code with the same settings (stamp, kept in out/{script}.json);
    writes the stamp into a new out and returns {}."""
    path = os.path.join(out, f"{os.path.splitext(script)[0]}.json")
    if os.path.isfile(path):
        before = runs.read_json(path)
        if before != stamp:
            what = "the code that trains them changed" if before.get("code") != stamp["code"] else \
                f"they were made with {before}, not {stamp}"
            runs.fail(script, f"--out_dir {out}: holds runs that cannot be reused ({what}); give a new --out_dir")
        return finished_runs(out, key)
    runs.make_folder(out, "--out_dir")
    runs.write_atomic(path, lambda tmp: open(tmp, "w").write(json.dumps(stamp, indent=1) + "\n"))
    return {}


def section_of(text, start, end):
    """The section of text between the markers start and end, markers included, or None."""
    if start in text and end in text:
        return start + text.split(start, 1)[1].split(end, 1)[0] + end
    return None


def place_section(text, section, start, end, before="\n## "):
    """text with its section between the markers replaced by section; where it has none, section goes
    before the first occurrence of `before` (a heading), or at the end."""
    if start in text and end in text:
        return text.split(start)[0] + section + text.split(end, 1)[1]
    first, found, rest = text.partition(before)
    return first.rstrip() + "\n\n" + section + ("\n\n" + before.lstrip("\n") + rest if found else "\n")


MARKED = re.compile(r"<!-- (\w+):start -->.*?<!-- \1:end -->", re.S)


def keep_sections(old, new):
    """new with every marked section of old (<!-- NAME:start --> ... <!-- NAME:end -->: the tables other
    scripts make in their own, longer runs) put back, in their order, before new's first "## " heading."""
    kept = "\n\n".join(m.group(0) for m in MARKED.finditer(old))
    if not kept:
        return new
    first, found, rest = new.partition("\n## ")
    return first.rstrip() + "\n\n" + kept + ("\n\n## " + rest if found else "\n")


def write_section(path, section, start, end, before="\n## "):
    """Replace (or place) a marked section of the markdown file at path, whole or not at all."""
    text = open(path).read() if os.path.isfile(path) else "# Results\n"
    text = place_section(text, section, start, end, before)
    runs.write_atomic(path, lambda tmp: open(tmp, "w").write(text))


def cell(values, digits=3):
    """mean ± sample standard deviation of the finite values (one value: itself; none: -)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}g}"
    return f"{statistics.mean(values):.{digits}g} ± {statistics.stdev(values):.2g}"


def table(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
                     + ["| " + " | ".join(r) + " |" for r in rows])
