"""One module per experiment; see ``mltricks.lab.experiment`` for what a module defines."""
