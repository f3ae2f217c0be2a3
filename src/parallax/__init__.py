"""Parallax: a zero-copy dataflow runtime for Python on Linux."""
