"""Private helpers shared by the families: argument checks (``checks``), model-state snapshots
(``state``), the ``random_state`` argument turned into a generator (``randomness``) and
deprecations that keep an old name or return type working for one release (``deprecation``)."""
