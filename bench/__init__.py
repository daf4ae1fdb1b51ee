"""Benchmarks: ``make bench`` (``python -m bench``) measures Sluice and writes bench/results/.

Nothing here is imported by the app or the tests, and no test depends on a timing: these are
measurements on a shared machine, reported as ratios taken in the same run. Every load loop is
bounded in count and in time and talks only to 127.0.0.1.
"""
