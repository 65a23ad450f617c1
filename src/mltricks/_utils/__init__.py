"""Private helpers shared by the families: argument checks (``checks``), a classifier's inputs,
targets and class scores with the rule that reads logits from a model's output (``classifier``),
hooks and modes undone on exit (``hooks``), model-state snapshots (``state``), the
``random_state`` argument turned into a generator (``randomness``), deprecations that keep an old
name or return type working for one release (``deprecation``) and the optional extras
(``extras``)."""
