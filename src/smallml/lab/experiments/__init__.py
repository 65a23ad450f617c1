"""One module per experiment; see ``smallml.lab.experiment`` for what a module defines."""
