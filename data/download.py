"""Download the named data sets and verify their sha256 sums.

    python data/download.py                 # all five into the data directory (data/ by default)
    python data/download.py ETTh1 ETTh2     # some of them
    python data/download.py --data_dir DIR  # somewhere else (made if it does not exist)

Sources:
- y_w, w_y, 4single: the research log's formaldehyde series, from the data/ folder of the public
  repository donglinkang2021/simple-sequence-prediction (MIT License), in which the log was written;
- ETTh1, ETTh2: the field's Electricity Transformer Temperature series (Zhou et al., Informer,
  AAAI 2021), from the folder ETT-small/ of the public repository zhouhaoyi/ETDataset (CC BY-ND
  4.0: redistributed unmodified, with credit to its authors).
A file whose checksum does not match is an error and is not kept. Standard library only, so it
runs before anything is installed.
"""
import argparse
import hashlib
import os
import sys
import tempfile
import urllib.parse
import urllib.request

LOG_URL = "https://raw.githubusercontent.com/donglinkang2021/simple-sequence-prediction/master/data/"
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/"

# name -> (file name, sha256, where it is published)
FILES = {
    "y_w": ("y+w.csv", "2629be5f09063be55d8a8e1762337018e079f92a12ecac0d871b55cafaa49cf5", LOG_URL),
    "w_y": ("w+y.csv", "273df1968bf424c427571daff9d73cb1a530e9c13cd5eaaa94e305ef0795084a", LOG_URL),
    "4single": ("4single.csv", "bc405f93002e8c447cf55cd073df7f2375113b7dc58ace4e88895e046deff199", LOG_URL),
    "ETTh1": ("ETTh1.csv", "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066", ETT_URL),
    "ETTh2": ("ETTh2.csv", "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b", ETT_URL),
}
LOG_SERIES = ("y_w", "w_y", "4single")  # the research log's
FIELD_SERIES = ("ETTh1", "ETTh2")       # the field's long-horizon benchmark
DATA_DIR_ENV = "VQSEQ_DATA_DIR"
DEFAULT_DATA_DIR = os.path.dirname(os.path.abspath(__file__))


def default_data_dir():
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def url_of(name, base_url=None):
    """Where one data set is fetched from: its publisher, or base_url (a mirror holding every file)."""
    filename, _, published = FILES[name]
    base = base_url or published
    return base + ("" if base.endswith("/") else "/") + urllib.parse.quote(filename)  # '+' travels as %2B


def fetch(name, data_dir, base_url=None):
    """Download one data set into data_dir; keep it only if its checksum matches."""
    filename, expected, _ = FILES[name]
    target = os.path.join(data_dir, filename)
    if os.path.exists(target) and sha256(target) == expected:
        return target, "already present"
    url = url_of(name, base_url)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            out.write(response.read())
        got = sha256(tmp)
        if got != expected:
            raise ValueError(f"checksum mismatch for {url}: got sha256 {got}, expected {expected}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as any file the user makes (mkstemp's are 0600)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target, "downloaded"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"data sets to fetch: {', '.join(FILES)} "
                        "(default: all)")
    parser.add_argument("--data_dir", default=None,
                        help=f"where to put the files, made if missing (default: ${DATA_DIR_ENV} or data/)")
    parser.add_argument("--base_url", default=None,
                        help="fetch every file from this address instead (a mirror; default: each publisher's)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in FILES]
    if unknown:
        parser.exit(2, f"download.py: error: unknown data set {unknown[0]!r}; choose among {', '.join(FILES)}\n")
    data_dir = args.data_dir or default_data_dir()
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        parser.exit(2, f"download.py: error: cannot make the data directory {data_dir!r}: {e.strerror}\n")
    for name in args.names or FILES:
        try:
            path, how = fetch(name, data_dir, args.base_url)
        except (OSError, ValueError) as e:
            print(f"download.py: error: {name}: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"{name:8s} {path} ({how}, sha256 ok)")


if __name__ == "__main__":
    main()
