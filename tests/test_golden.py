"""Every number kept: a fixed set of commands writes, bit for bit, what it wrote at 21dcabd.

The commands, what is compared and how the record was made: tests/golden.py. A difference names
the file and the first value that moved; where a change of a number is meant, say why in the
commit and record again (`python tests/golden.py --write --cases NAME`).
"""
import pytest

from conftest import ROOT, formaldehyde_available, run_main
from golden import CASES, RTOL, close, differences, machine, needs_formaldehyde, record, run_case


@pytest.mark.parametrize("case", list(CASES))
def test_a_command_writes_the_recorded_numbers(case, tmp_path, monkeypatch):
    """Bit for bit against the record of this kind of machine; to RTOL where none is recorded. The
    commands run as main(argv) in this process (`python tests/golden.py` runs them as processes)."""
    if needs_formaldehyde(case) and not formaldehyde_available():
        pytest.skip("formaldehyde series not in the data directory")
    monkeypatch.setenv("VQSEQ_PROGRESS_SECONDS", "0")
    monkeypatch.chdir(ROOT)

    def here(argv):  # `python SCRIPT ...` as main(argv) in this process, one thread
        r = run_main(*argv, threads=1)
        return r.returncode, r.stderr

    folder, exact = record()
    how = "bit for bit" if exact else f"to {RTOL:g} relative (no record for {'-'.join(machine())})"
    assert differences(case, run_case(case, str(tmp_path / case), here), (folder, exact)) == [], f"{folder}, {how}"


def test_the_tolerant_comparison_can_fail():
    """close(): a number off by 2 RTOL, a changed word, a missing row each differ; written rounding does not."""
    assert close({"a": [["1.0", "2.000001"]]}, {"a": [["1.0", "2.0"]]})
    assert close([["2.9000009197"]], [["2.9"]]) and close({"x": 3.0}, {"x": 3.0 * (1 + RTOL / 2)})
    assert not close({"x": 3.0}, {"x": 3.0 * (1 + 2 * RTOL)})
    assert not close([["a", "1"]], [["b", "1"]]) and not close([["1"], ["2"]], [["1"]])
    assert not close({"x": 1.0}, {"y": 1.0})
