"""Trains a tiny model through engine.fit and saves each process's final weights.

Run directly (one process) or under ``accelerate launch --num_processes 2 --cpu`` by
``test_engine_distributed.py``. Usage: ``python distributed_worker.py OUT_DIR``.
"""

import sys
from pathlib import Path

import torch
from torch import nn

from mltricks.lab import engine


def main(out_dir: Path) -> None:
    engine.set_device("cpu")
    engine.seed_everything(0)
    inputs = torch.randn(64, 5)
    targets = (inputs[:, 0] + inputs[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loader = engine.make_loader(inputs, targets, batch_size=16, shuffle=True, random_state=1)
    engine.fit(model, loader, optimizer, epochs=3)
    acc = engine.accelerator()
    weights = {k: v.detach().cpu() for k, v in engine.unwrap(model).state_dict().items()}
    torch.save(
        {"weights": weights, "num_processes": acc.num_processes},
        out_dir / f"rank{acc.process_index}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
