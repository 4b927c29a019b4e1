"""faust stream agents: router, deadlines (they call the rules of ``schemas``)."""
