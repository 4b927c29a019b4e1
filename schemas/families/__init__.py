"""One module per aggregate kind; ``schemas.catalog`` finds them all (see ``schemas.family``).

A module here defines ``KIND``, a :class:`jointbus.schemas.family.Kind`. Nothing else
lists the modules: a new kind is a new file.
"""
