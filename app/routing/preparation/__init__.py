"""Preparing a catalog for routing: table cards, chunk plans, grants, the lexical index."""
