"""Tiny stand-in for packaging.version (only parse() + comparisons)."""
import re


class Version:
    def __init__(self, s):
        self.s = str(s)
        self.key = tuple(int(p) for p in re.findall(r'\d+', self.s)[:3])

    def __eq__(self, o): return self.key == o.key
    def __ne__(self, o): return self.key != o.key
    def __lt__(self, o): return self.key < o.key
    def __le__(self, o): return self.key <= o.key
    def __gt__(self, o): return self.key > o.key
    def __ge__(self, o): return self.key >= o.key
    def __repr__(self): return self.s


def parse(s):
    return Version(s)
