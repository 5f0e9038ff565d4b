"""Stand-in for kornia.filters.gaussian_blur2d, written from kornia's documented math
(kornia >= 0.5.4, border_type='reflect', separable=True):

  1-D kernel per axis: x = arange(k) - k // 2 (+0.5 if k even); g = exp(-x^2 / (2 sigma^2)); g /= g.sum()
  the image is reflect-padded ('same' output size) and correlated depthwise with the
  horizontal kernel, then with the vertical kernel (kernel_size / sigma tuples are (y, x)).
"""
import torch
import torch.nn.functional as F


def _gaussian_1d(k, sigma, dtype, device):
    x = torch.arange(k, dtype=dtype, device=device) - k // 2
    if k % 2 == 0:
        x = x + 0.5
    g = torch.exp(-x.pow(2.0) / (2.0 * float(sigma) ** 2))
    return g / g.sum()


def gaussian_blur2d(input, kernel_size, sigma, border_type='reflect', separable=True):
    ky, kx = kernel_size
    sy, sx = sigma
    b, c, h, w = input.shape
    gx = _gaussian_1d(kx, sx, input.dtype, input.device)
    gy = _gaussian_1d(ky, sy, input.dtype, input.device)
    # kornia's 'same' padding: [(k - 1) // 2, k - 1 - (k - 1) // 2] on each axis
    px = ((kx - 1) // 2, kx - 1 - (kx - 1) // 2)
    py = ((ky - 1) // 2, ky - 1 - (ky - 1) // 2)
    out = F.pad(input, (px[0], px[1], 0, 0), mode=border_type)
    out = F.conv2d(out, gx.view(1, 1, 1, kx).expand(c, 1, 1, kx), groups=c)
    out = F.pad(out, (0, 0, py[0], py[1]), mode=border_type)
    out = F.conv2d(out, gy.view(1, 1, ky, 1).expand(c, 1, ky, 1), groups=c)
    return out
