"""L_background beyond the image frame: the fix of the alignment's degenerate minimum on real images.

With only the image's own background pixels (Eq. 11 as published), a class cloud blown up so that
most of its points project outside the frame has a *lower* background penalty than one lying on
the object: that is how alignments diverged on real features
(benchmarks/semalign3d_real_diagnosis.py). Counting what falls outside the frame as background
removes the reward for leaving the image.
"""
import math

import torch

from geocorr.methods.semalign3d.alignment import TargetBatch, _background

H, W = 40, 60  # frame half extents 0.5 × 1/3 (normalised by the longer side)


def batch_of(background: torch.Tensor, area: float) -> TargetBatch:
    """A one-target batch holding only background points (the other fields are not read)."""
    return TargetBatch(torch.zeros(1, 1, 2), torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), background[None],
                       torch.ones(1, len(background), dtype=torch.bool),
                       torch.tensor([[W / (2 * W), H / (2 * W)]]), torch.tensor([area]))


def centre_square_background(gen: torch.Generator, count: int = 3000) -> tuple[torch.Tensor, float]:
    """Uniform samples of the 60×40 frame minus a central 16×16 object square, and their area."""
    pts = (torch.rand(4 * count, 2, generator=gen) - 0.5) * torch.tensor([1.0, H / W])
    pts = pts[(pts.abs() > 8 / W).any(-1)][:count]
    return pts, (H * W - 16 * 16) / W**2


def test_a_point_far_outside_costs_what_a_point_deep_in_the_background_costs():
    sigma, area = 0.02, 0.4
    empty = batch_of(torch.zeros(0, 2), area)
    far = _background(empty, torch.tensor([[[[5.0, 5.0]]]]), sigma)
    assert torch.allclose(far, torch.tensor([[2 * math.pi * sigma**2 / area]]))  # its whole Gaussian outside
    centre = _background(empty, torch.tensor([[[[0.0, 0.0]]]]), sigma)
    assert float(centre) < 1e-12  # its Gaussian inside the frame: nothing added
    # on the frame's edge half the Gaussian is outside
    edge = _background(empty, torch.tensor([[[[0.5, 0.0]]]]), sigma)
    assert torch.allclose(edge, far / 2, rtol=1e-4)


def test_equals_eq_11_while_the_cloud_stays_inside_the_frame():
    gen = torch.Generator().manual_seed(0)
    background, area = centre_square_background(gen)
    cloud = (torch.rand(50, 2, generator=gen) - 0.5) * 0.2  # well inside, σ small
    batch = batch_of(background, area)
    published = _background(batch, cloud[None, None], 0.02, beyond_frame=False)
    ours = _background(batch, cloud[None, None], 0.02, beyond_frame=True)
    assert float(published) > 0 and torch.allclose(ours, published, rtol=1e-6)


def test_the_added_share_matches_eq_11_sampled_over_the_outside():
    """A point just past the right edge: its outside share, in Eq. 11's units, equals the mean of
    exp(−d²/2σ²) over uniform samples of a strip beyond the frame, scaled by that strip's area."""
    sigma = 0.05
    point = torch.tensor([[[[0.52, 0.0]]]])
    added = float(_background(batch_of(torch.zeros(0, 2), 1.0), point, sigma))
    gen = torch.Generator().manual_seed(0)
    strip = torch.rand(400_000, 2, generator=gen) * torch.tensor([1.0, 4.0]) + torch.tensor([0.5, -2.0])
    # everything outside within reach of the Gaussian: the strip right of the frame (the frame is
    # 2/3 high, so the parts above/below it within reach are added by symmetry of a second strip)
    like = torch.exp(-((strip - point[0, 0]).pow(2).sum(-1)) / (2 * sigma**2))
    right = float(like.mean()) * 4.0
    above = torch.rand(400_000, 2, generator=gen) * torch.tensor([1.0, 1.0]) + torch.tensor([-0.5, 1 / 3])
    like_above = torch.exp(-((above - point[0, 0]).pow(2).sum(-1)) / (2 * sigma**2))
    expected = right + 2 * float(like_above.mean()) * 1.0
    assert abs(added - expected) < 0.02 * expected


def test_leaving_the_frame_no_longer_lowers_the_background_penalty():
    gen = torch.Generator().manual_seed(1)
    background, area = centre_square_background(gen)
    batch = batch_of(background, area)
    on_object = (torch.rand(200, 2, generator=gen) - 0.5) * (16 / W)
    blown_up = on_object * 8  # most points project outside the 60×40 frame
    sigma = 0.25  # early in the schedule: a quarter of the longer side
    on, off = (float(_background(batch, c[None, None], sigma, beyond_frame=False)) for c in (on_object, blown_up))
    assert off < on  # Eq. 11 alone: leaving the image is rewarded (the degenerate minimum)
    on, off = (float(_background(batch, c[None, None], sigma)) for c in (on_object, blown_up))
    assert off > on  # counted beyond the frame: leaving the image costs


def test_gradient_pulls_an_outside_point_back_into_the_frame():
    point = torch.tensor([[[[0.6, 0.1]]]], dtype=torch.float64, requires_grad=True)
    batch = batch_of(torch.zeros(0, 2, dtype=torch.float64), 0.5)
    batch.frame = batch.frame.double()
    _background(batch, point, 0.1).sum().backward()
    assert point.grad[0, 0, 0, 0] > 0  # the penalty grows with x: descent moves x back towards the frame
    assert torch.autograd.gradcheck(lambda p: _background(batch, p, 0.1), (point.detach().requires_grad_(),))
