"""Every number kept: a fixed set of commands writes, bit for bit, what it wrote at 21dcabd.

The commands, what is compared and how the record was made: tests/golden.py. A difference names
the file and the first value that moved; where a change of a number is meant, say why in the
commit and record again (`python tests/golden.py --write --cases NAME`).
"""
import pytest

from conftest import formaldehyde_available
from golden import CASES, differences, needs_formaldehyde, run_case


@pytest.mark.parametrize("case", list(CASES))
def test_a_command_writes_the_recorded_numbers(case, tmp_path):
    if needs_formaldehyde(case) and not formaldehyde_available():
        pytest.skip("formaldehyde series not in the data directory")
    assert differences(case, run_case(case, str(tmp_path / case))) == []
