"""Private helpers shared by the families: argument checks and model-state snapshots."""
