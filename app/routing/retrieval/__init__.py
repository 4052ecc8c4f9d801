"""The shortlist: which tables a route sends to the judge, and their prior."""
