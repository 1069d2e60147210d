"""The leaderboard: reads the results store and prints it. Never imports torch.

Example::

    from harness.store import open_store_readonly
    from leaderboard import leaderboard_rows, render
    rows = leaderboard_rows(open_store_readonly("drbench.db"), collection="beir/scifact/test")
    render(rows)
"""

from leaderboard.rows import LeaderboardRow, leaderboard_rows, rows_as_json
from leaderboard.table import render

__all__ = ["LeaderboardRow", "leaderboard_rows", "rows_as_json", "render"]
