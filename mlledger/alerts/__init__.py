"""Alerts: what happened that the team should hear about, and getting it to them.

``sinks`` checks a sink as the policy holds it; ``alert`` is the :class:`Alert`
value; ``send`` delivers one alert to one sink (standard library only);
``delivery`` makes each alert reach each sink once across every watcher (claims
in the store); ``judges`` turns the policy's check rules into ``check`` and
``monitor`` alerts; ``watch`` is the pass and the loop behind ``ledger.watch()``
and ``mlledger watch``.  Nothing is imported here: the policy reads ``sinks``
from a lower layer.
"""
