"""GECO's loss on the raw plan, pinned by hand on a 3-token toy plan (official: reginehartwig/geco
src/losses/__init__.py; see geocorr.methods.geco.loss)."""
import math

import pytest
import torch

from geocorr.methods.geco.loss import GecoLossConfig, KeypointTokens, geco_loss, log1mexp, loss_entries

# A raw plan for 3 source and 3 target tokens, dustbin row/column last (entries need not be normalised).
PLAN = torch.tensor([[0.20, 0.05, 0.01, 0.02],
                     [0.04, 0.15, 0.02, 0.03],
                     [0.01, 0.02, 0.10, 0.06],
                     [0.03, 0.04, 0.05, 0.01]], dtype=torch.float64)
T, F = True, False


def _batch(fg_src1=(F, F, T)):
    """Pair 0: k0 0->1 and k1 1->0 visible in both (left/right twins), k2 only in the source.
    Pair 1: two keypoints both on token 2 -> token 2 (one M+ entry), no twins, third keypoint padding."""
    return {
        "log_p": PLAN.log().expand(2, 4, 4).clone(),
        "source_tokens": torch.tensor([[0, 1, 2], [2, 2, 0]]),
        "target_tokens": torch.tensor([[1, 0, 0], [2, 2, 0]]),
        "source_visible": torch.tensor([[T, T, T], [T, T, F]]),
        "target_visible": torch.tensor([[T, T, F], [T, T, F]]),
        "twin": torch.tensor([[1, 0, 2], [0, 1, 2]]),
        "keypoint_mask": torch.tensor([[T, T, T], [T, T, F]]),
        "source_foreground": torch.tensor([[T, T, F], list(fg_src1)]),
        "target_foreground": torch.tensor([[T, T, F], [T, F, T]]),
    }


def _loss(b, conf=None):
    return geco_loss(b["log_p"], KeypointTokens.from_batch(b), b["source_foreground"], b["target_foreground"], conf)


def test_toy_plan_by_hand():
    out = _loss(_batch())
    n1 = 4  # rows of the plan: 3 tokens + dustbin
    # pos entries (0,1), (1,0) of pair 0 and (2,2) of pair 1 (counted once), each -log P / (n + 1)
    pos = (-math.log(0.05) / n1 - math.log(0.04) / n1 - math.log(0.10) / n1) / 3
    # bin: k2 of pair 0 is visible in the source only -> (2, dustbin column 3)
    bins = -math.log(0.06) / n1
    # neg: k0 at source token 0 vs its twin k1 at target token 0 -> (0,0); k1 at 1 vs k0 at 1 -> (1,1)
    neg = 10 * (-math.log(1 - 0.20) - math.log(1 - 0.15)) / 2
    # fg×bg: pair 0 fg {0,1}, bg {2} in both: (0,2) (1,2) (2,0) (2,1);
    # pair 1 source fg {2}, target fg {0,2}: (2,1) and (0,0) (0,2) (1,0) (1,2)
    fgbg = 10 * -(math.log(1 - 0.01) + math.log(1 - 0.02) + math.log(1 - 0.01) + math.log(1 - 0.02)
                  + math.log(1 - 0.02) + math.log(1 - 0.20) + math.log(1 - 0.01) + math.log(1 - 0.04)
                  + math.log(1 - 0.02)) / 9
    assert out["loss_pos"].item() == pytest.approx(pos, rel=1e-12)
    assert out["loss_bin"].item() == pytest.approx(bins, rel=1e-12)
    assert out["loss_neg"].item() == pytest.approx(neg, rel=1e-12)
    assert out["loss_fgbg"].item() == pytest.approx(fgbg, rel=1e-12)
    assert out["loss"].item() == pytest.approx(pos + bins + neg + fgbg, rel=1e-12)
    counts = [out[f"num_{t}"].item() for t in ("pos", "bin", "neg", "fgbg", "skipped")]
    assert counts == [3, 1, 2, 9, 0]


def test_entry_sets():
    b = _batch()
    entries = loss_entries((2, 4, 4), KeypointTokens.from_batch(b))
    as_list = {k: sorted(zip(*(t.tolist() for t in v), strict=True)) for k, v in entries.items()}
    assert as_list == {"pos": [(0, 0, 1), (0, 1, 0), (1, 2, 2)], "bin": [(0, 2, 3)], "neg": [(0, 0, 0), (0, 1, 1)]}
    # a keypoint seen in the target only goes to the source dustbin row; M− ignores M+ (official sets overlap)
    only_target = loss_entries((1, 4, 4), KeypointTokens(
        torch.tensor([[0, 1]]), torch.tensor([[2, 2]]), torch.tensor([[F, T]]), torch.tensor([[T, T]]),
        torch.tensor([[1, 0]]), torch.tensor([[T, T]])))
    assert sorted(zip(*(t.tolist() for t in only_target["bin"]), strict=True)) == [(0, 3, 2)]
    assert sorted(zip(*(t.tolist() for t in only_target["neg"]), strict=True)) == [(0, 1, 2)]
    assert sorted(zip(*(t.tolist() for t in only_target["pos"]), strict=True)) == [(0, 1, 2)]


def test_pair_with_empty_mask_is_skipped_and_counted():
    out = _loss(_batch(fg_src1=(F, F, F)))
    assert out["num_skipped"].item() == 1 and out["num_pos"].item() == 2 and out["num_fgbg"].item() == 4
    assert out["loss_pos"].item() == pytest.approx((-math.log(0.05) - math.log(0.04)) / 4 / 2, rel=1e-12)


def test_no_invisible_keypoint_no_bin_term_still_finite():
    b = _batch()
    b["target_visible"] = b["source_visible"].clone()  # M0 empty: every keypoint visible in both
    out = _loss(b)
    assert out["num_bin"].item() == 0 and out["loss_bin"].item() == 0 and torch.isfinite(out["loss"])


def test_all_pairs_skipped_gives_zero_loss_that_backpropagates():
    b = _batch(fg_src1=(F, F, F))
    b["source_foreground"][0] = False
    logits = b["log_p"].clone().requires_grad_(True)
    b["log_p"] = logits
    out = _loss(b)
    assert out["loss"].item() == 0 and out["num_skipped"].item() == 2
    out["loss"].backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_weights_scale_their_terms():
    base = _loss(_batch())
    heavy = _loss(_batch(), GecoLossConfig(pos_weight=2, bin_weight=3, neg_weight=1, fgbg_weight=0))
    assert heavy["loss_pos"].item() == pytest.approx(2 * base["loss_pos"].item())
    assert heavy["loss_bin"].item() == pytest.approx(3 * base["loss_bin"].item())
    assert heavy["loss_neg"].item() == pytest.approx(base["loss_neg"].item() / 10)
    assert heavy["loss_fgbg"].item() == 0


def test_gradcheck():
    b = _batch()
    logits = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)

    def loss(x):
        log_p = torch.log_softmax(x.flatten(1), 1).view(2, 4, 4)  # a plan of total mass 1
        return _loss({**b, "log_p": log_p})["loss"]

    assert torch.autograd.gradcheck(loss, (logits,))


def test_log1mexp_is_accurate_at_both_ends():
    xs = [-1e-20, -1e-10, -0.5, -1.0, -50.0]
    expected = [math.log(-math.expm1(x)) for x in xs[:-1]] + [-math.exp(-50.0)]  # log(1 - e) = -e - e²/2 …
    torch.testing.assert_close(log1mexp(torch.tensor(xs, dtype=torch.float64)),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_bad_input():
    b = _batch()
    with pytest.raises(ValueError, match="target_tokens must have shape"):
        _loss({**b, "target_tokens": b["target_tokens"][:, :2]})
    with pytest.raises(ValueError, match="token indices"):
        _loss({**b, "source_tokens": torch.tensor([[0, 5, 2], [2, 2, 0]])})
    with pytest.raises(ValueError, match="twin"):
        _loss({**b, "twin": torch.tensor([[3, 0, 2], [0, 1, 2]])})
    with pytest.raises(ValueError, match="foreground"):
        _loss({**b, "source_foreground": b["source_foreground"][:, :2]})
    with pytest.raises(ValueError, match="log_p"):
        _loss({**b, "log_p": PLAN.log()})
