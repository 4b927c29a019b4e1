"""The composition root: the ``jointbus`` command wires schemas, streams, agents and audit."""
