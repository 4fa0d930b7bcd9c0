"""Download the research log's three formaldehyde series and verify their sha256 sums.

    python data/download.py                 # into the data directory (data/ by default)
    python data/download.py --data_dir DIR  # somewhere else

Source: the data/ folder of the public repository donglinkang2021/simple-sequence-prediction
(MIT License), in which the research log was written. A file whose checksum does not match
is an error and is not kept. Standard library only, so it runs before anything is installed.
"""
import argparse
import hashlib
import os
import sys
import tempfile
import urllib.parse
import urllib.request

BASE_URL = "https://raw.githubusercontent.com/donglinkang2021/simple-sequence-prediction/master/data/"

# log name -> (file name, sha256)
FILES = {
    "y_w": ("y+w.csv", "2629be5f09063be55d8a8e1762337018e079f92a12ecac0d871b55cafaa49cf5"),
    "w_y": ("w+y.csv", "273df1968bf424c427571daff9d73cb1a530e9c13cd5eaaa94e305ef0795084a"),
    "4single": ("4single.csv", "bc405f93002e8c447cf55cd073df7f2375113b7dc58ace4e88895e046deff199"),
}
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


def fetch(name, data_dir, base_url=BASE_URL):
    """Download one series into data_dir; keep it only if its checksum matches."""
    filename, expected = FILES[name]
    target = os.path.join(data_dir, filename)
    if os.path.exists(target) and sha256(target) == expected:
        return target, "already present"
    url = base_url + urllib.parse.quote(filename)  # '+' must travel as %2B
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            out.write(response.read())
        got = sha256(tmp)
        if got != expected:
            raise ValueError(f"checksum mismatch for {url}: got sha256 {got}, expected {expected}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target, "downloaded"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=None,
                        help=f"where to put the files (default: ${DATA_DIR_ENV} or data/)")
    parser.add_argument("--base_url", default=BASE_URL, help="where to fetch from (a mirror)")
    args = parser.parse_args()
    data_dir = args.data_dir or default_data_dir()
    if not os.path.isdir(data_dir):
        print(f"download.py: error: data directory {data_dir!r} does not exist", file=sys.stderr)
        sys.exit(2)
    for name in FILES:
        try:
            path, how = fetch(name, data_dir, args.base_url)
        except (OSError, ValueError) as e:
            print(f"download.py: error: {name}: {e}", file=sys.stderr)
            sys.exit(1)
        print(f"{name:8s} {path} ({how}, sha256 ok)")


if __name__ == "__main__":
    main()
