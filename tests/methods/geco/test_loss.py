import math

import pytest
import torch

from geocorr.methods.geco.loss import GecoLossConfig, geco_loss, log1mexp

PAPER = GecoLossConfig(pos_weight=1, bin_weight=1, neg_weight=1, fgbg_weight=0, scale_by_keypoints=False)

# P̂ for 2 source tokens, 2 target tokens (+ dustbins): rows 0-1 per row, the dustbin row per column.
PHAT = torch.tensor([[0.7, 0.2, 0.1],
                     [0.3, 0.6, 0.1],
                     [0.25, 0.5, 0.0]], dtype=torch.float64)


def _call(src_tok, tgt_tok, src_vis, tgt_vis, twin, conf=PAPER, phat=PHAT, **kw):
    def t(v, dt=torch.long):
        return torch.tensor([v], dtype=dt)

    mask = torch.ones(1, len(src_tok), dtype=torch.bool)
    return geco_loss(phat.log()[None], t(src_tok), t(tgt_tok), t(src_vis, torch.bool), t(tgt_vis, torch.bool),
                     t(twin), mask, conf=conf, **kw)


def test_paper_formula_by_hand():
    # k0 in both images (M+: 0->0); k1 only in the source (M0: 1->dustbin); k1's twin k0 is at
    # target token 0, so M− holds (1, 0).
    out = _call([0, 1], [0, 0], [True, True], [True, False], [1, 0])
    expected = -math.log(0.7) - math.log(0.1) - math.log(1 - 0.3)
    assert out["loss"].item() == pytest.approx(expected)
    assert (out["num_pos"].item(), out["num_bin"].item(), out["num_neg"].item()) == (1, 1, 1)


def test_target_only_keypoint_goes_to_source_dustbin():
    out = _call([0, 0], [0, 1], [True, False], [True, True], [0, 1])  # no twins
    assert out["loss"].item() == pytest.approx(-math.log(0.7) - math.log(0.5))
    assert out["num_neg"].item() == 0


def test_both_negatives_of_a_twin_pair():
    # both keypoints matched, left<->right twins: M− = {(0, 1), (1, 0)}
    out = _call([0, 1], [0, 1], [True, True], [True, True], [1, 0])
    expected = -math.log(0.7) - math.log(0.6) - math.log(1 - 0.2) - math.log(1 - 0.3)
    assert out["loss"].item() == pytest.approx(expected)


def test_twins_on_one_token_give_no_negative():
    out = _call([0, 1], [1, 1], [True, True], [True, True], [1, 0])
    assert out["num_neg"].item() == 0
    assert out["loss"].item() == pytest.approx(-math.log(0.2) - math.log(0.6))


def test_published_weights_and_fgbg_term():
    conf = GecoLossConfig()  # pos 1, bin 1, neg 10, fg×bg 10, pos/bin / (K + 1)
    fg_src, fg_tgt = torch.tensor([[True, False]]), torch.tensor([[True, False]])
    out = _call([0, 1], [0, 0], [True, True], [True, False], [1, 0], conf=conf,
                source_foreground=fg_src, target_foreground=fg_tgt)
    # fg×bg entries: (0, 1) source fg -> target bg and (1, 0) source bg -> target fg
    fgbg = -(math.log(1 - 0.2) + math.log(1 - 0.3)) / 2
    assert out["loss_pos"].item() == pytest.approx(-math.log(0.7) / 3)
    assert out["loss_bin"].item() == pytest.approx(-math.log(0.1) / 3)
    assert out["loss_neg"].item() == pytest.approx(-10 * math.log(1 - 0.3))
    assert out["loss_fgbg"].item() == pytest.approx(10 * fgbg)
    assert out["loss"].item() == pytest.approx((-math.log(0.7) - math.log(0.1)) / 3 - 10 * math.log(0.7) + 10 * fgbg)


def test_padding_equals_separate_pairs():
    a = _call([0, 1], [0, 0], [True, True], [True, False], [1, 0])
    b = _call([1], [1], [True], [True], [0])
    log_phat = PHAT.log()[None].repeat(2, 1, 1)
    batch = geco_loss(log_phat, torch.tensor([[0, 1], [1, 5]]), torch.tensor([[0, 0], [1, 7]]),
                      torch.tensor([[True, True], [True, True]]), torch.tensor([[True, False], [True, True]]),
                      torch.tensor([[1, 0], [0, 1]]), torch.tensor([[True, True], [True, False]]), conf=PAPER)
    assert batch["loss"].item() == pytest.approx((a["loss"].item() + b["loss"].item()) / 2)


def test_gradcheck():
    logits = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)

    def loss(x):
        log_phat = torch.log_softmax(x, 2)
        return geco_loss(log_phat, torch.tensor([[0, 1], [1, 0]]), torch.tensor([[2, 0], [1, 1]]),
                         torch.tensor([[True, True], [True, False]]), torch.tensor([[True, True], [False, True]]),
                         torch.tensor([[1, 0], [1, 0]]), torch.ones(2, 2, dtype=torch.bool),
                         torch.tensor([[True, False], [False, True]]), torch.tensor([[True, False, True]] * 2))["loss"]

    assert torch.autograd.gradcheck(loss, (logits,))


def test_log1mexp_is_accurate_at_both_ends():
    xs = [-1e-20, -1e-10, -0.5, -1.0, -50.0]
    expected = [math.log(-math.expm1(x)) for x in xs[:-1]] + [-math.exp(-50.0)]  # log(1 - e) = -e - e²/2 …
    torch.testing.assert_close(log1mexp(torch.tensor(xs, dtype=torch.float64)),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="no keypoint visible"):
        _call([0, 1], [0, 1], [False, False], [False, False], [0, 1])
    with pytest.raises(ValueError, match="target_tokens must have shape"):
        geco_loss(PHAT.log()[None], torch.tensor([[0, 1]]), torch.tensor([[0]]), torch.tensor([[True, True]]),
                  torch.tensor([[True]]), torch.tensor([[0, 1]]), torch.tensor([[True, True]]), conf=PAPER)
    with pytest.raises(ValueError, match="no keypoint"):
        geco_loss(PHAT.log()[None], torch.tensor([[0]]), torch.tensor([[0]]), torch.tensor([[True]]),
                  torch.tensor([[True]]), torch.tensor([[0]]), torch.tensor([[False]]), conf=PAPER)
    with pytest.raises(ValueError, match="token indices"):
        _call([0, 5], [0, 1], [True, True], [True, True], [0, 1])
    with pytest.raises(ValueError, match="foreground"):
        _call([0, 1], [0, 1], [True, True], [True, True], [0, 1], conf=GecoLossConfig())
