"""The ray backend's lines to its workers. Their calls, compiled or ordinary,
are exercised by every test of tests/test_ray_backend.py; this holds which
Ray versions get compiled graphs."""

import pytest

from mathy_a3c.ray_lines import compiled_graphs_supported


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("2.60.0", True),
        ("2.44.0", True),
        ("2.43.1", False),
        ("2.9.3", False),  # 9 < 44: compared as numbers, not as text
        ("2.100.0", True),
        ("3.0.0.dev0", True),
        ("2.44.0rc1", True),
    ],
)
def test_compiled_graphs_are_used_from_ray_2_44_on(version, supported):
    assert compiled_graphs_supported(version) is supported
