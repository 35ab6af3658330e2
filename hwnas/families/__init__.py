"""The built-in families, one folder each, and their registry (`hwnas.families.registry`).

Each family's folder registers it when imported; the registry imports them through the
`hwnas.families` entry points declared in pyproject.toml, as it imports the families of other
packages. A new family goes in a folder of its own here (or in a package of its own, declared
under the same entry-point group): see the guide on adding a family.
"""
