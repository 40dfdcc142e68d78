"""Factor blurring (`fields.base.Blurrable`): separable blurs of the factors equal a 3D Gaussian
blur of the dense grid they factor, and cost nothing while off."""

from __future__ import annotations

import kornia
import pytest
import torch
import torch.nn.functional as F

from fields import Blurrable, CPField, TriVecField, VMField
from fields.factors import blur_factor, gaussian_blur_matrix

RESOLUTION = [9, 11, 13]
SIGMA = 1.3


def grid_points(field: VMField | CPField) -> torch.Tensor:
    """World positions of the field's grid points, `[X * Y * Z, 3]` in x-major order."""
    axes = [torch.linspace(float(lo), float(hi), r) for lo, hi, r in zip(field.aabb[0], field.aabb[1], field.resolution)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def blur_3d(grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """`grid [X, Y, Z, C]` blurred by an isotropic 3D Gaussian of `sigma` grid steps with replicated
    borders: one conv3d with the full kernel (kornia's 1D kernel, cut off at 3 sigma), not separable."""
    radius = int(torch.ceil(torch.tensor(3.0 * sigma)))
    k = kornia.filters.get_gaussian_kernel1d(2 * radius + 1, sigma)[0]
    kernel = k[:, None, None] * k[None, :, None] * k[None, None, :]
    channels = grid.permute(3, 0, 1, 2)[:, None]  # [C, 1, X, Y, Z]
    padded = F.pad(channels, [radius] * 6, mode="replicate")
    return F.conv3d(padded, kernel[None, None])[:, 0].permute(1, 2, 3, 0)


@pytest.mark.parametrize("cls", [VMField, CPField])
def test_factor_blur_is_the_3d_blur_of_the_dense_grid(cls: type) -> None:
    field = cls([[-1.0, -0.5, -1.5], [1.0, 1.5, 0.5]], RESOLUTION, density_components=3, appearance_components=4, init_scale=1.0)
    assert isinstance(field, Blurrable)
    x = grid_points(field)
    d = F.normalize(torch.ones_like(x), dim=-1)
    with torch.no_grad():
        feature = field._density_feature(field.normalize(x)).reshape(*RESOLUTION, 1)
        appearance = field.appearance_features(x).reshape(*RESOLUTION, -1)
        sharp_rgb = field.radiance(x, d)
        field.set_blur(SIGMA, density_scale=0.5)
        blurred_density = field.density(x)
        blurred_appearance = field.appearance_features(x).reshape(*RESOLUTION, -1)
        field.set_blur(None)
        assert torch.equal(field.radiance(x, d), sharp_rgb)  # off is off
    expected_density = field._activate_density(blur_3d(feature, 0.5 * SIGMA).reshape(-1))
    torch.testing.assert_close(blurred_density, expected_density, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(blurred_appearance, blur_3d(appearance, SIGMA), rtol=1e-4, atol=1e-5)
    assert (blurred_appearance - appearance).abs().max() > 0.1  # the blur does something


def test_trivec_blur_is_the_3d_blur_of_each_local_tensor() -> None:
    """One tensor covering the box: the field is that CP tensor, whose blur is the 3D blur of its
    dense grid (checked at interior grid points, where the lookup covers it)."""
    length = 11
    field = TriVecField([[-1.0] * 3, [1.0] * 3], scales=1, lengths=[length], num_tensors=[1], half_sizes=[1.0], spacings=[2.0],
                        density_components=3, appearance_components=2, init_scale=1.0)
    field._place([torch.zeros(1, 3)])
    lines = field.scales[0].density_lines.detach()[0]  # [3, R, L]
    dense = torch.einsum("rx,ry,rz->xyz", lines[0], lines[1], lines[2])[..., None]
    axis = torch.linspace(-1.0, 1.0, length)[1:-1]
    x = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    sigma_voxels = SIGMA * float(2.0 / (length - 1) / field.voxel_size[0])  # SIGMA line steps
    with torch.no_grad():
        sharp = field.density(x)
        field.set_blur(sigma_voxels)
        blurred = field.density(x)
    torch.testing.assert_close(sharp, field._activate_density(dense[1:-1, 1:-1, 1:-1].reshape(-1)), rtol=1e-4, atol=1e-5)
    expected = field._activate_density(blur_3d(dense, SIGMA)[1:-1, 1:-1, 1:-1].reshape(-1))
    torch.testing.assert_close(blurred, expected, rtol=1e-4, atol=1e-5)


def test_blur_matrix_rows_sum_to_one_and_match_a_padded_convolution() -> None:
    values = torch.randn(5, 17)
    matrix = gaussian_blur_matrix(17, 2.0)
    torch.testing.assert_close(matrix.sum(1), torch.ones(17))
    k = kornia.filters.get_gaussian_kernel1d(13, 2.0)
    convolved = F.conv1d(F.pad(values[:, None], (6, 6), mode="replicate"), k[None])[:, 0]
    torch.testing.assert_close(blur_factor(values, 2.0, (1,)), convolved)
