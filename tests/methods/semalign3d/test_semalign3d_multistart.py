"""The multi-start of the alignment: successive halving keeps the right starts and their optimiser state."""
import pytest
import torch

from geocorr.methods.semalign3d.alignment import (
    AlignConfig,
    TargetBatch,
    _keep_best,
    align_many,
    alignment_loss,
    initial_guesses,
    prepare_target,
)

from .conftest import random_views


def test_successive_halving_keeps_the_starts_of_least_loss_with_their_moments(world, representation):
    conf = AlignConfig(steps=10, pixels=32, background_pixels=32, focals=(5.0, 2.0), samples_per_focal=2, oversample=3)
    gen = torch.Generator().manual_seed(0)
    views = random_views(world, 2, gen)
    targets = [prepare_target(representation, v.features, v.grid, v.mask, v.depth, conf, gen) for v in views]
    guesses = [initial_guesses(representation, t, conf, gen) for t in targets]
    sparse = torch.stack([g[0] for g in guesses]).requires_grad_(True)  # (2, 12, L, 3)
    log_focal = torch.stack([g[1] for g in guesses]).requires_grad_(True)
    depth = torch.stack([g[2] for g in guesses])
    assert sparse.shape[1] == 2 * 2 * 3
    batch = TargetBatch.stack(targets)
    opt = torch.optim.AdamW([sparse, log_focal], lr=0.01, weight_decay=0.0)
    alignment_loss(sparse, log_focal, depth, representation, batch, conf, 0.0)["total"].sum().backward()
    opt.step()  # AdamW moments now differ from start to start
    with torch.no_grad():
        sparse[0, 1] = float("nan")  # a diverged start is never kept
        loss = alignment_loss(sparse, log_focal, depth, representation, batch, conf, 0.1)["total"]
    moments = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in (sparse, log_focal)}
    old = (sparse.detach().clone(), log_focal.detach().clone())

    assert torch.isnan(loss[0, 1])
    new_sparse, new_focal, new_depth = _keep_best(opt, sparse, log_focal, depth, representation, batch, conf, 0.1)
    assert new_sparse.shape == (2, 4, *sparse.shape[2:]) and new_focal.shape == new_depth.shape == (2, 4)
    for n in range(2):
        finite = torch.where(loss[n].isnan(), torch.inf, loss[n])
        expected = torch.sort(torch.argsort(finite)[:4]).values  # the 4 least losses, in start order
        assert torch.equal(new_sparse[n].detach(), old[0][n, expected])
        assert torch.equal(new_focal[n].detach(), old[1][n, expected])
        assert torch.equal(new_depth[n], depth[n, expected])
        for param, fresh in ((sparse, new_sparse), (log_focal, new_focal)):
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(opt.state[fresh][key][n], moments[id(param)][key][n, expected])
    assert torch.isfinite(new_sparse).all()  # the diverged start was dropped
    # the optimiser now steps the kept starts only
    assert opt.param_groups[0]["params"][0] is new_sparse and opt.param_groups[0]["params"][1] is new_focal
    assert sparse not in opt.state
    alignment_loss(new_sparse, new_focal, new_depth, representation, batch, conf, 0.2)["total"].sum().backward()
    before = new_sparse.detach().clone()
    opt.step()
    assert not torch.equal(before, new_sparse.detach())


def test_oversampled_alignment_ends_with_the_published_number_of_starts(world, representation):
    conf = AlignConfig(steps=4, pixels=32, background_pixels=32, samples_per_focal=1, oversample=2, prune_at=0.5,
                       rotations="spread")
    gen = torch.Generator().manual_seed(0)
    view = random_views(world, 1, gen)[0]
    target = prepare_target(representation, view.features, view.grid, view.mask, view.depth, conf, gen)
    (aligned,) = align_many(representation, [target], conf, gen)
    assert aligned.candidates.shape == (len(conf.focals),) and not aligned.failed
    for bad, match in (({"oversample": 0}, "oversample"), ({"rotations": "grid"}, "rotations"),
                       ({"oversample": 2, "prune_at": 1.0}, "prune_at")):
        with pytest.raises(ValueError, match=match):
            align_many(representation, [target], AlignConfig(steps=1, **bad), gen)
