"""`drbench report`: the store as one self-contained HTML page (see `build` and `page`).

Example::

    db = open_store_readonly("drbench.db")
    html = render_page(build_report(db, "drbench.db", ReportOptions(experiments=("star_adore",))))
"""

from leaderboard.report.build import ReportOptions, build_report
from leaderboard.report.page import render_page

__all__ = ["ReportOptions", "build_report", "render_page"]
