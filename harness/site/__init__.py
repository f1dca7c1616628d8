"""The published leaderboard site across runs: finding runs and machines (``runs``), per-run rows
and suite data (``data``), the HTML pages (``pages``, with ``assets/``) and ``publish`` itself."""
