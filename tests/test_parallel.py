"""overview.parallel_map: what status uses to ask many worktrees at once."""

from __future__ import annotations

import pytest

from git_agents.tasks.status import parallel_map


def test_parallel_map_keeps_order_and_raises() -> None:
    assert parallel_map(lambda x: x * x, list(range(50))) == [x * x for x in range(50)]
    assert parallel_map(str, []) == []

    def boom(x: int) -> int:
        if x == 7:
            raise ValueError("seven")
        return x

    with pytest.raises(ValueError, match="seven"):
        parallel_map(boom, list(range(20)))
