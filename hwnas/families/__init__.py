"""The built-in families, one folder each; importing this package registers them (`hwnas.family`).

A new family goes in a folder of its own here (or in a package of its own, declared under the
`hwnas.families` entry-point group): see the README's checklist.
"""

from hwnas.families import autoformer, glit, resnas, vitas  # noqa: F401
