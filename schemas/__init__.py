"""The jointbus wire contract and domain rules: pure code, no I/O.

Envelope, event catalog, canonical bytes, signatures, sealing, the agency registry
and the lifecycle rules shared by the live router and by auditors' replay.
"""
