"""NumPy float64 ports of Lai et al.'s evaluation (ECCV 2018): Resample2d, the occlusion check, the warping error.

Written from the paper's evaluation protocol with explicit index arithmetic, independently of the package's
``grid_sample`` implementation. Images are [H, W, C], flows [H, W, 2] with channel 0 the x displacement.
"""

import numpy as np


def resample2d(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` at ``x + flow(x)``: bilinear, neighbour indices clamped into the image (flownet2's Resample2d)."""
    height, width = image.shape[:2]
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    x, y = xs + flow[..., 0], ys + flow[..., 1]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    left, right = np.clip(x0, 0, width - 1), np.clip(x0 + 1, 0, width - 1)
    top, bottom = np.clip(y0, 0, height - 1), np.clip(y0 + 1, 0, height - 1)
    return (
        (1 - ax) * (1 - ay) * image[top, left]
        + ax * (1 - ay) * image[top, right]
        + (1 - ax) * ay * image[bottom, left]
        + ax * ay * image[bottom, right]
    )


def _magnitude(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def lai_occlusion(flow_fw: np.ndarray, flow_bw: np.ndarray) -> np.ndarray:
    """Lai et al.'s occlusion of frame t, True where occluded, from the flows t -> t+1 and t+1 -> t."""
    backward_warped = resample2d(flow_bw, flow_fw)
    inconsistent = (
        _magnitude(flow_fw + backward_warped) > 0.01 * (_magnitude(backward_warped) + _magnitude(flow_fw)) + 0.5
    )
    du = np.zeros(flow_fw.shape[:2] + (2,))
    dv = np.zeros(flow_fw.shape[:2] + (2,))
    du[:, :-1] = flow_fw[:, :-1] - flow_fw[:, 1:]
    dv[:-1, :] = flow_fw[:-1, :] - flow_fw[1:, :]
    gradient = du[..., 0] ** 2 + dv[..., 0] ** 2 + du[..., 1] ** 2 + dv[..., 1] ** 2
    boundary = gradient > 0.01 * _magnitude(flow_fw) + 0.002
    return inconsistent | boundary


def lai_warping_error(video: np.ndarray, flows_fw: np.ndarray, flows_bw=None) -> float:
    """Warping error of one video [T, H, W, C] in [0, 1]: the mean over pairs of the masked mean squared error.

    A pair whose every pixel is occluded is skipped (returns NaN when all are).
    """
    errors = []
    for t in range(video.shape[0] - 1):
        if flows_bw is None:
            visible = np.ones(video.shape[1:3], dtype=bool)
        else:
            visible = ~lai_occlusion(flows_fw[t], flows_bw[t])
        mask = np.repeat(visible[..., None], video.shape[3], axis=2)
        if mask.sum() == 0:
            continue
        diff = (video[t] - resample2d(video[t + 1], flows_fw[t])) * mask
        errors.append(np.square(diff).sum() / mask.sum())
    return float(np.mean(errors)) if errors else float("nan")
