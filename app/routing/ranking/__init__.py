"""Votes merged into a ranking, cut, and completed with join paths."""
