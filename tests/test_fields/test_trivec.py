"""The Strivec tri-vector field: placement and pruning, covering-tensor lookup, density and colour,
checkpoints, slimming, upsampling and shrinking, and training (coarse VM, placement, pruning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import FERN, assert_native_matches_reference, brute_force_neighbors, requires_fern
from conftest import TRIVEC_GRID as GRID
from conftest import UNIT_BOX as BOX
from conftest import cell_centers, small_config, unit_dirs
from conftest import make_trivec_field as make_field
from conftest import trivec_blob as blob

from apps.cli import main
from apps.evaluate import evaluate_views
from apps.training import Trainer
from apps.training.strategies import SETTLE_UPSAMPLES
from data import load_scene
from fields import FIELDS, TriVecField, VMField, field_from_config
from fields.base import Slimmable, Upsampleable
from fields.strivec.index import cubes_meet_box



def points_in(n: int, box: torch.Tensor = BOX) -> torch.Tensor:
    return torch.rand(n, 3) * (box[1] - box[0]) + box[0]


def covering(points: torch.Tensor, centers: torch.Tensor, half_size: float) -> torch.Tensor:
    """Cubes covering each point `[N]`."""
    return ((points[:, None] - centers[None]).abs() <= half_size).all(dim=-1).sum(dim=1)


# --- Field interface ---------------------------------------------------------------------------


def test_registered_with_capabilities_and_shapes() -> None:
    assert FIELDS["trivec"] is TriVecField
    field = make_field()
    assert isinstance(field, Upsampleable) and isinstance(field, Slimmable)
    x, d = points_in(500), unit_dirs(500)
    sigma, rgb = field.query(x, d)
    assert sigma.shape == (500,) and rgb.shape == (500, 3) and sigma.dtype == torch.float32
    assert (sigma >= 0).all() and (rgb >= 0).all() and (rgb <= 1).all()
    assert torch.equal(sigma, field.density(x)) and torch.equal(rgb, field.radiance(x, d))
    assert field.appearance_features(x).shape == (500, 12)


def test_lookup_matches_brute_force() -> None:
    """Each scale's table + kernel find what testing every tensor finds, for points covered by
    more than K tensors, by fewer, and by none."""
    field = make_field()
    x = torch.cat([points_in(300), points_in(300, torch.tensor([[-0.6, -0.3, -0.4], [0.2, 0.5, 0.4]]))])
    for scale in field.scales:
        counts = covering(x, scale.centers, scale.half_size)
        assert (counts > 4).any() and ((counts > 0) & (counts < 4)).any() and (counts == 0).any()
        index, weights, local = scale.neighbors(x, 4)
        want_index, want_weights, want_local = brute_force_neighbors(x, scale.centers, scale.half_size, 4)
        assert torch.equal(index, want_index)
        torch.testing.assert_close(weights, want_weights, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(local, want_local, rtol=0, atol=0)


def test_density_zero_where_no_tensor_covers_and_outside_box() -> None:
    field = make_field()
    x = points_in(4000)
    sigma = field.density(x)
    covered = torch.stack([covering(x, s.centers, s.half_size) > 0 for s in field.scales]).any(dim=0)
    assert (~covered).sum() > 100 and covered.sum() > 100
    assert torch.equal(sigma[~covered], torch.zeros(int((~covered).sum())))
    assert (sigma[covered] > 0).all()  # softplus(.) > 0 wherever a tensor covers
    # just outside the +x face, inside the cubes of the slab there: still zero
    outside = torch.tensor([[1.01, 0.0, 0.0], [1.05, 0.1, -0.1], [0.0, 0.0, -1.2], [10.0, 0.0, 0.0]])
    assert (covering(outside[:2], field.scales[0].centers, field.scales[0].half_size) > 0).all()
    assert torch.equal(field.density(outside), torch.zeros(4))


# --- placement and pruning ---------------------------------------------------------------------


def test_placement_from_a_known_occupancy() -> None:
    """Occupancy cells of 0.5 over [0, 3]^3; lattice spacings 1.0 and 0.5 (cells (0,0,0), (5,5,5),
    (2,3,1) occupied): the coarse scale gets the three lattice cells holding them, the fine one a
    tensor on each occupied cell."""
    box = torch.tensor([[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
    occupied = torch.zeros(6, 6, 6, dtype=torch.bool)
    occupied[0, 0, 0] = occupied[5, 5, 5] = occupied[2, 3, 1] = True
    field = TriVecField.from_occupancy(occupied, box, scales=2, half_sizes=[0.75, 0.375], spacings=[1.0, 0.5], lengths=3)
    coarse, fine = (s.centers.tolist() for s in field.scales)
    assert coarse == [[0.5, 0.5, 0.5], [1.5, 1.5, 0.5], [2.5, 2.5, 2.5]]
    assert fine == [[0.25, 0.25, 0.25], [1.25, 1.75, 0.75], [2.75, 2.75, 2.75]]
    assert field.config()["num_tensors"] == [3, 3]


@pytest.mark.parametrize("scales", [1, 3])
def test_placement_only_where_occupied_and_covering_every_occupied_cell(scales: int) -> None:
    occupied = blob()
    field = TriVecField.from_occupancy(occupied, BOX, scales=scales, lengths=3, density_components=2, appearance_components=2)
    occupied_centers = cell_centers()[occupied]
    longest = 2.0
    for s, scale in enumerate(field.scales):
        assert scale.half_size == pytest.approx(longest * 0.1 / 2**s) and scale.spacing == pytest.approx(longest * 0.4 / 3 / 2**s)
        holds = covering(scale.centers, occupied_centers, scale.spacing / 2)  # occupied cells in each lattice cell
        assert (holds > 0).all()
        assert (covering(occupied_centers, scale.centers, scale.half_size) > 0).all()
    with pytest.raises(ValueError, match="empty occupancy"):
        TriVecField.from_occupancy(torch.zeros(4, 4, 4, dtype=torch.bool), BOX)


def test_prune_removes_exactly_the_empty_tensors() -> None:
    field = make_field()
    occupied = blob() & (cell_centers()[..., 0] < -0.1)
    occupied_centers = cell_centers()[occupied]
    expected = [s.centers[covering(s.centers, occupied_centers, s.half_size) > 0] for s in field.scales]
    kept_lines = [s.density_lines.detach()[covering(s.centers, occupied_centers, s.half_size) > 0] for s in field.scales]
    before = sum(s.num_tensors for s in field.scales)
    removed = field.prune(occupied, BOX)
    assert removed == before - sum(len(c) for c in expected) > 0
    for scale, centers, lines in zip(field.scales, expected, kept_lines):
        assert torch.equal(scale.centers, centers) and torch.equal(scale.density_lines.detach(), lines)
    assert field.prune(occupied, BOX) == 0


def test_prune_keeps_a_tensor_per_scale_and_rejects_an_empty_grid() -> None:
    field = make_field()
    far = torch.zeros(GRID, GRID, GRID, dtype=torch.bool)
    far[0, GRID - 1, 0] = True  # a corner cell no tensor covers
    field.prune(far, BOX)
    assert [s.num_tensors for s in field.scales] == [1, 1]
    with pytest.raises(ValueError, match="empty occupancy grid"):
        field.prune(torch.zeros_like(far), BOX)


# --- checkpoints, slimming -----------------------------------------------------------------


def test_config_round_trip() -> None:
    field = make_field()
    field.upsample([21, 21, 21])
    field.shrink(torch.tensor([[-0.9, -0.8, -0.7], [0.9, 0.6, 0.5]]))
    field.prune(blob(), BOX)
    cfg = json.loads(json.dumps(field.config()))  # JSON-able
    assert "centers" not in json.dumps(cfg) and cfg["num_tensors"] == [s.num_tensors for s in field.scales]
    rebuilt = field_from_config("trivec", cfg)
    assert type(rebuilt) is TriVecField and rebuilt.config() == cfg
    rebuilt.load_state_dict(field.state_dict())
    x, d = points_in(1000, field.aabb), unit_dirs(1000)
    sigma, rgb = field.query(x, d)
    sigma2, rgb2 = rebuilt.query(x, d)
    assert torch.equal(sigma, sigma2) and torch.equal(rgb, rgb2)
    assert (sigma > 0).any()
    assert not any("table" in name for name in field.state_dict())
    assert field.nbytes() == sum(t.numel() * t.element_size() for t in field.state_dict().values())


@pytest.mark.parametrize("decoder", ["mlp", "sh"])
def test_slim_renders_as_the_rank_masked_field(decoder: str) -> None:
    field = make_field(decoder=decoder, appearance_dim=27 if decoder == "sh" else 12, density_components=[4, 2], appearance_components=[6, 3])
    assert field.ranks == 4
    x, d = points_in(1500), unit_dirs(1500)
    for rank in (1, 2, 3):
        field.set_active_rank(rank)
        sigma, rgb = field.query(x, d)
        slim = field.slim(rank)
        assert slim.ranks == rank and slim.config()["active_rank"] is None
        sigma2, rgb2 = slim.query(x, d)
        assert (sigma2 - sigma).abs().max() < 1e-5 and (rgb2 - rgb).abs().max() < 1e-5
        assert slim.num_parameters() < field.num_parameters() and slim.nbytes() < field.nbytes()
        assert [s.density_lines.shape[2] for s in slim.scales] == [rank, -(-rank * 2 // 4)]
    field.set_active_rank(4)
    assert field.slim(4).num_parameters() == field.num_parameters()


# --- upsample, shrink, training hooks ------------------------------------------------------


def test_upsample_refinement_is_exact() -> None:
    """Lines of L -> 2L - 1 grid points keep every old point and add midpoints: exact."""
    field = make_field(half_sizes=[0.4, 0.2], lengths=[5, 3])  # both scales at voxel 0.2
    torch.testing.assert_close(field.voxel_size, torch.full((3,), 0.2))
    x, d = points_in(2000), unit_dirs(2000)
    sigma, rgb = field.query(x, d)
    field.upsample([21, 21, 21])  # voxel 2 / 20 = 0.1
    assert field.resolution == [9, 5] and field.config()["lengths"] == [9, 5]
    torch.testing.assert_close(field.voxel_size, torch.full((3,), 0.1))
    sigma2, rgb2 = field.query(x, d)
    torch.testing.assert_close(sigma2, sigma, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rgb2, rgb, atol=1e-5, rtol=1e-5)


def test_upsample_of_smooth_lines_changes_little() -> None:
    field = make_field(half_sizes=[0.4, 0.2], lengths=[5, 3])
    with torch.no_grad():
        for p in field.factor_parameters():
            u = torch.linspace(-1, 1, p.shape[3])
            comp = torch.arange(p.shape[2], dtype=torch.float32)[:, None]
            p.copy_((0.5 * torch.cos(0.8 * u + 0.5 * comp) + 0.6).expand_as(p))
    x, d = points_in(2000), unit_dirs(2000)
    sigma, rgb = field.query(x, d)
    field.upsample([33, 33, 33])  # voxel 1 / 16: 2 h / v = 12.8 and 6.4
    assert field.resolution == [14, 7]
    sigma2, rgb2 = field.query(x, d)
    assert ((sigma2 - sigma).abs().max() / sigma.abs().max()) < 2e-2
    assert (rgb2 - rgb).abs().max() < 2e-2


def test_shrink_drops_tensors_outside_and_keeps_the_field_inside() -> None:
    field = make_field()
    box = torch.tensor([[-0.5, -0.6, -5.0], [0.1, 5.0, 0.2]])  # clipped to BOX where it reaches out
    clipped = torch.tensor([[-0.5, -0.6, -1.0], [0.1, 1.0, 0.2]])
    kept = [s.centers[cubes_meet_box(s.centers, s.half_size, clipped)] for s in field.scales]
    x, d = points_in(3000, clipped), unit_dirs(3000)
    sigma, rgb = field.query(x, d)
    before = [s.num_tensors for s in field.scales]
    field.shrink(box)
    torch.testing.assert_close(field.aabb, clipped)
    assert [s.num_tensors for s in field.scales] == [len(c) for c in kept] and [len(c) for c in kept] < before
    for scale, centers in zip(field.scales, kept):
        assert torch.equal(scale.centers, centers)
    sigma2, rgb2 = field.query(x, d)
    assert torch.equal(sigma2, sigma) and torch.equal(rgb2, rgb)
    assert torch.equal(field.density(torch.tensor([[0.5, 0.0, 0.0]])), torch.zeros(1))  # outside the new box
    with pytest.raises(ValueError, match="does not overlap"):
        field.shrink(torch.tensor([[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]))


def test_param_groups_partition_parameters() -> None:
    field = make_field()
    for _ in range(2):  # still a partition after upsample / prune replace the lines
        groups = field.param_groups()
        assert [g["name"] for g in groups] == ["factors", "network"] and [g["lr"] for g in groups] == [0.02, 1e-3]
        ids = [{id(p) for p in g["params"]} for g in groups]
        assert ids[0].isdisjoint(ids[1]) and ids[0] | ids[1] == {id(p) for p in field.parameters()}
        assert ids[0] == {id(p) for s in field.scales for p in (s.density_lines, s.app_lines)}
        field.upsample([9, 9, 9])
        field.prune(blob(), BOX)


def test_regularization_l1_on_masked_density_lines() -> None:
    field = make_field(density_components=[4, 2])
    assert field.regularization() == {}
    field.reg_weights.update({"l1": 0.5, "tv_density": 1.0, "tv_appearance": 1.0})  # TV: accepted, adds nothing
    lines = [s.density_lines.detach() for s in field.scales]
    losses = field.regularization()
    assert set(losses) == {"l1"}
    assert losses["l1"].item() == pytest.approx(0.5 * sum(line.abs().mean().item() for line in lines), rel=1e-5)
    field.set_active_rank(2)  # scale 0 keeps components 0, 1; scale 1 keeps component 0: on all three lines
    masked = [lines[0].clone(), lines[1].clone()]
    masked[0][:, :, 2:] = 0
    masked[1][:, :, 1:] = 0
    assert field.regularization()["l1"].item() == pytest.approx(0.5 * sum(m.abs().mean().item() for m in masked), rel=1e-5)
    field.rank_epsilon = 1e-6  # as TRaIn trains: waiting components are barely pulled to zero, on every line
    field.regularization()["l1"].backward()
    grad = field.scales[0].density_lines.grad
    assert grad[:, :, 2:].abs().max() < 1e-5 * grad[:, :, :2].abs().max()


def test_full_lattice_by_default_and_argument_checks() -> None:
    field = TriVecField(BOX, resolution=[17, 17, 17], scales=1, density_components=2, appearance_components=2)
    assert field.config()["num_tensors"] == [8**3]  # ceil(2 / (2 * 0.4 / 3)) per axis
    assert field.resolution == [4]  # round(2 * 0.2 / (2 / 16)) + 1
    assert (field.density(points_in(500)) > 0).all()
    with pytest.raises(ValueError, match="one value per scale"):
        TriVecField(BOX, scales=2, lengths=[3, 3, 3])
    with pytest.raises(ValueError, match="lengths >= 2"):
        TriVecField(BOX, scales=1, lengths=1)


def test_native_and_reference_render_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    field = make_field()
    x, d = points_in(800), unit_dirs(800)
    assert_native_matches_reference(field, x, d, monkeypatch)


# --- training --------------------------------------------------------------------------------


def test_training_places_tensors_after_a_coarse_vm(sphere_scene: Path, tmp_path: Path) -> None:
    """A trivec run starts as a coarse VM, places tensors from its occupancy grid at the first
    upsample, keeps that grid until the second, then shrinks and prunes; the run folder holds a
    trivec checkpoint that evaluates, resumes and slims."""
    scene = load_scene(sphere_scene)
    config = small_config(sphere_scene, tmp_path / "run", iters=120, field="trivec", slimmable=True)
    trainer = Trainer(config, scene)
    placement, rank_incrementation = trainer.strategy("strivec"), trainer.strategy("train")
    assert isinstance(trainer.field, VMField) and not placement.placed and not rank_incrementation.active
    events: list[tuple[int, str]] = []
    while not isinstance(trainer.field, TriVecField):
        events += [(trainer.state.iteration, e) for e in trainer.step()["events"]]
    assert placement.upsamples_done == 1 and trainer.field.active_rank == 1 and rank_incrementation.active  # TRaIn starts with the placed field
    placed_grid = trainer.grid.occupied.clone()
    assert placed_grid.any() and not placed_grid.all()
    while placement.upsamples_done < SETTLE_UPSAMPLES:
        trainer.step()
        assert torch.equal(trainer.grid.occupied, placed_grid), "the coarse VM's grid must stay while the field settles"
    while not trainer.done:
        events += [(trainer.state.iteration, e) for e in trainer.step()["events"]]
    assert any("coarse stage done: trivec placed" in e for _, e in events)
    trainer.save()
    resumed = Trainer(config, scene, resume=True)
    assert isinstance(resumed.field, TriVecField) and resumed.strategy("strivec").placed
    x = torch.rand(500, 3) * (trainer.field.aabb[1] - trainer.field.aabb[0]) + trainer.field.aabb[0]
    assert torch.equal(resumed.field.density(x), trainer.field.density(x))

    report = tmp_path / "ranks.json"
    ranks = trainer.field.ranks
    assert main(["eval", str(tmp_path / "run"), "--ranks", f"1,{ranks}", "--split", "val", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["ranks"]
    assert rows[0]["nbytes"] < rows[1]["nbytes"] and rows[1]["psnr"] > 12.0


def test_placed_field_starts_from_the_coarse_vm(sphere_scene: Path, tmp_path: Path) -> None:
    """Placement distills the coarse VM into the new tensors: the field renders about as well
    right after placement as the VM did just before (not the blank image of fresh tensors)."""
    scene = load_scene(sphere_scene)
    trainer = Trainer(small_config(sphere_scene, tmp_path / "run", iters=900, field="trivec"), scene)  # placed at 60
    while not isinstance(trainer.field, TriVecField):
        coarse = trainer.field
        trainer.step()
    views = scene.split("val")
    before = evaluate_views(trainer.model.with_field(coarse), scene, views, with_ssim=False)["psnr"]
    after = evaluate_views(trainer.model, scene, views, with_ssim=False)["psnr"]
    empty = evaluate_views(trainer.model.with_field(make_field(density_shift=-100.0)), scene, views, with_ssim=False)["psnr"]
    assert before > empty + 5.0 and after > before - 2.0, (empty, before, after)


@requires_fern
def test_forward_facing_scene_trains_through_placement(tmp_path: Path) -> None:
    """On an NDC scene the coarse VM has no positional encoding in its decoder; the placed field
    takes the same decoder, so distillation can copy it."""
    scene = load_scene(FERN, downsample=32)
    trainer = Trainer(small_config(FERN, tmp_path / "run", iters=60, downsample=32, field="trivec"), scene)
    while not trainer.done:
        trainer.step()
    assert isinstance(trainer.field, TriVecField) and trainer.field.config()["decoder_pe"] == 0
    assert bool(torch.isfinite(trainer.field.density(torch.zeros(1, 3))).all())
