import numpy as np
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import Dataset

from mltricks.ensembles import MIMOBatchSampler, mimo_loader


def _data(n=24):
    # input k holds the value k everywhere, label k: a batch can be checked pair by pair
    inputs = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 2, 2).clone()
    return inputs, torch.arange(n)


def test_member_labels_belong_to_member_inputs():
    inputs, targets = _data()
    loader = mimo_loader(inputs, targets, num_members=3, batch_size=8, batch_repetitions=2)
    for x, y in loader:
        assert x.shape == (3, 16, 1, 2, 2) and y.shape == (3, 16)
        assert torch.equal(x[:, :, 0, 0, 0].long(), y)
    assert len(loader) == 3


def test_a_generic_dataset_is_read_pair_by_pair():
    class Pairs(Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return torch.full((2,), float(i)), 100 + i

    x, y = next(iter(mimo_loader(Pairs(), num_members=2, batch_size=5, rho=0.4)))
    assert x.shape == (2, 5, 2) and y.shape == (2, 5)
    assert torch.equal(x[..., 0].long() + 100, y)


def test_every_member_sees_each_example_once_per_repetition_in_its_own_order():
    sampler = MIMOBatchSampler(12, num_members=3, batch_size=4, batch_repetitions=3, random_state=5)
    batches = sampler.epoch_indices(0)
    assert len(batches) == 3 and all(b.shape == (3, 12) for b in batches)
    members = torch.cat(batches, dim=1)  # (M, N * r)
    for member in members:
        assert torch.equal(member.sort().values, torch.arange(12).repeat_interleave(3))
    for batch in batches:  # repetition happens inside a batch: r copies of batch_size examples
        assert len(batch[0].unique()) == 4
        assert torch.equal(batch[0].sort().values, batch[1].sort().values)
    # independent permutations: members differ from each other
    assert not torch.equal(members[0], members[1]) and not torch.equal(members[1], members[2])


def test_permutations_are_refreshed_every_epoch_and_seeded():
    sampler = MIMOBatchSampler(32, num_members=2, batch_size=8, random_state=1)
    first, second = list(sampler), list(sampler)
    assert sampler.epoch == 2 and first != second
    again = MIMOBatchSampler(32, num_members=2, batch_size=8, random_state=1)
    assert list(again) == first
    other = MIMOBatchSampler(32, num_members=2, batch_size=8, random_state=2)
    assert list(other) != first
    # the member pairing itself changes: pairs (member 0, member 1) of epoch 0 vs epoch 1
    pairs = [{row for batch in epoch for row in batch} for epoch in (first, second)]
    assert len(pairs[0] & pairs[1]) < len(pairs[0]) // 2


@pytest.mark.parametrize(("rho", "shared"), [(0.0, 0), (0.25, 4), (1.0, 16)])
def test_input_repetition_shares_rows_between_members(rho, shared):
    sampler = MIMOBatchSampler(64, num_members=3, batch_size=16, rho=rho, random_state=0)
    for batch in sampler.epoch_indices(0):
        same = (batch[0] == batch[1]) & (batch[1] == batch[2])
        assert bool(same[16 - shared :].all())  # the shared tail is the same for everyone
        if rho == 0.0:
            assert same.float().mean() < 0.5  # equal only by chance
        if rho == 1.0:
            assert bool(same.all())


def test_drop_last_and_length():
    assert len(MIMOBatchSampler(10, num_members=2, batch_size=4)) == 2
    sampler = MIMOBatchSampler(10, num_members=2, batch_size=4, drop_last=False)
    assert len(sampler) == 3 and [b.shape[1] for b in sampler.epoch_indices(0)] == [4, 4, 2]


def test_distributed_split_keeps_member_pairs():
    """Accelerate splits a batch by rows, so each process gets (M, B / 2) consistent pairs."""
    inputs, targets = _data(16)
    loader = mimo_loader(inputs, targets, num_members=2, batch_size=8, random_state=3)
    rows = next(iter(MIMOBatchSampler(16, num_members=2, batch_size=8, random_state=3)))
    parts = []
    for process in (0, 1):
        shard = BatchSamplerShard(
            loader.batch_sampler.__class__(16, num_members=2, batch_size=8, random_state=3),
            num_processes=2,
            process_index=process,
            split_batches=True,
        )
        part = next(iter(shard))
        x, y = loader.dataset.__getitems__(part)
        assert x.shape == (2, 4, 1, 2, 2) and torch.equal(x[:, :, 0, 0, 0].long(), y)
        parts += part
    assert parts == rows


def test_bad_arguments():
    inputs, targets = _data()
    with pytest.raises(ValueError, match="num_members must be an integer >= 1; got 0"):
        mimo_loader(inputs, targets, num_members=0, batch_size=4)
    with pytest.raises(ValueError, match="rho"):
        mimo_loader(inputs, targets, num_members=2, batch_size=4, rho=1.5)
    with pytest.raises(ValueError, match="batch_repetitions"):
        mimo_loader(inputs, targets, num_members=2, batch_size=4, batch_repetitions=0)
    with pytest.raises(ValueError, match="same length"):
        mimo_loader(inputs, targets[:3], num_members=2, batch_size=4)
    with pytest.raises(ValueError, match="batch_size=50 is larger"):
        mimo_loader(inputs, targets, num_members=2, batch_size=50)


def test_engine_fit_sees_fresh_pairings_every_epoch():
    from mltricks.lab import engine

    inputs, targets = _data(16)
    loader = mimo_loader(inputs, targets, num_members=2, batch_size=8, random_state=0)
    model = torch.nn.Linear(1, 1)
    seen = []

    def step(model, batch):
        x, y = batch
        assert torch.equal(x[:, :, 0, 0, 0].long(), y)  # pairs survive Accelerate's loader
        seen.append(y.clone())
        return model(x[:, :, 0, 0, :1]).sum() * 0.0

    engine.fit(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, step_fn=step)
    assert len(seen) == 4
    first, second = torch.cat(seen[:2], 1), torch.cat(seen[2:], 1)
    assert not torch.equal(first, second)
    assert torch.equal(first[0].sort().values, torch.arange(16))  # an epoch covers the data


def test_random_state_takes_generators_and_the_old_name_still_works():
    first = MIMOBatchSampler(16, num_members=2, batch_size=4, random_state=3).epoch_indices(0)
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated; use 'random_state'"):
        old = MIMOBatchSampler(16, num_members=2, batch_size=4, seed=3).epoch_indices(0)
    assert all(torch.equal(a, b) for a, b in zip(first, old))
    # a generator gives one seed drawn from it: the same generator state, the same batches
    drawn = [
        MIMOBatchSampler(
            16, num_members=2, batch_size=4, random_state=np.random.default_rng(9)
        ).epoch_indices(0)
        for _ in range(2)
    ]
    assert all(torch.equal(a, b) for a, b in zip(*drawn))
    fresh = [
        MIMOBatchSampler(16, num_members=2, batch_size=4, random_state=None).seed for _ in range(2)
    ]
    assert fresh[0] != fresh[1]
    with pytest.raises(ValueError, match="random_state"):
        MIMOBatchSampler(16, num_members=2, batch_size=4, random_state=-1)
