"""Conformance entries of torch's remaining normalization, dropout, shuffle and 3-D layers
(kiln.nn.norm_extra, dropout_shuffle and the modules of kiln.nn.layers.norm_extra). The
random dropouts run with p=0 or training=False (the identity; no torch twin of the draws)."""

from __future__ import annotations

from harness import D, entry, f, t

E = ()


def pos(*shape: int, const: bool = False) -> object:
    return t(*shape, domain="positive", const=const)


ENTRIES = [
    entry("F.instance_norm", f(t(2, 3, 4)), f(t(2, 3, 4, 5), weight=t(3), bias=t(3)),
          f(t(2, 3, 4), t(3, const=True), pos(3, const=True), use_input_stats=False),
          f(t(2, 3, 4), t(3, const=True), pos(3, const=True), momentum=0.5),
          f(t(1, 2, 3, 3, 3), eps=0.1), tol=(1e-4, 1e-5)),
    entry("F.local_response_norm", f(t(2, 5, 4), 3), f(t(1, 4, 3, 3), 2, 1e-2, 0.5, 2.0),
          f(t(1, 6, 2, 2, 2), 4, alpha=0.1)),
    entry("native_layer_norm", f(t(2, 3, 4), (3, 4), t(3, 4), t(3, 4), 1e-5),
          f(t(2, 3), (3,), None, None, 0.5), tol=(1e-4, 1e-5)),
    entry("native_group_norm", f(t(2, 6, 3), t(6), t(6), 2, 6, 3, 2, 1e-5),
          f(t(1, 4, 2), None, None, 1, 4, 2, 4, 0.5), tol=(1e-4, 1e-5)),
    entry("native_batch_norm", f(t(4, 3, 2), t(3), t(3), None, None, True, 0.1, 1e-5),
          f(t(4, 3), t(3), t(3), t(3, const=True), pos(3, const=True), False, 0.1, 1e-5),
          tol=(1e-4, 1e-5)),
    entry("_native_batch_norm_legit", f(t(4, 3, 2), None, None, True, 0.1, 1e-5),
          tol=(1e-4, 1e-5)),
    entry("F.dropout1d", f(t(2, 3, 4), 0.0), f(t(3, 4), 0.5, False)),
    entry("F.dropout2d", f(t(2, 3, 4, 4), 0.0), f(t(3, 4, 4), 0.5, False)),
    entry("F.dropout3d", f(t(1, 2, 2, 3, 3), 0.0), f(t(2, 2, 3, 3), 0.5, False)),
    entry("F.alpha_dropout", f(t(2, 3), 0.5), f(t(2, 3), 0.0, True)),
    entry("F.feature_alpha_dropout", f(t(2, 3, 4), 0.5), f(t(2, 3, 4), 0.0, True)),
    entry("F.pixel_shuffle", f(t(1, 8, 2, 3), 2), f(t(9, 1, 1), 3), f(t(2, 1, 4, 2, 2), 2)),
    entry("F.pixel_unshuffle", f(t(1, 2, 4, 6), 2), f(t(1, 3, 3), 3)),
    entry("F.channel_shuffle", f(t(2, 6, 3), 2), f(t(1, 6, 2, 2), 3)),
    entry("nn.BatchNorm3d", f(t(2, 3, 2, 2, 2)), init=(3,), tol=(1e-4, 1e-5)),
    entry("nn.InstanceNorm1d", f(t(2, 3, 5)), init=(3,), init_kwargs={"affine": True},
          tol=(1e-4, 1e-5)),
    entry("nn.InstanceNorm2d", f(t(3, 4, 4)), init=(3,), tol=(1e-4, 1e-5)),
    entry("nn.InstanceNorm3d", f(t(1, 2, 3, 3, 3)), init=(2,),
          init_kwargs={"track_running_stats": True}, tol=(1e-4, 1e-5)),
    entry("nn.LocalResponseNorm", f(t(2, 5, 4)), init=(3,)),
    entry("nn.Dropout1d", f(t(2, 3, 4))),
    entry("nn.Dropout2d", f(t(2, 3, 4, 4))),
    entry("nn.Dropout3d", f(t(1, 2, 2, 2, 2))),
    entry("nn.AlphaDropout", f(t(2, 3))),
    entry("nn.FeatureAlphaDropout", f(t(2, 3, 4))),
    entry("nn.PixelShuffle", f(t(1, 4, 2, 2)), init=(2,)),
    entry("nn.PixelUnshuffle", f(t(1, 1, 4, 4)), init=(2,)),
    entry("nn.ChannelShuffle", f(t(1, 4, 3, 3)), init=(2,)),
]

# 3-D convolution and adaptive pooling (kiln.nn.conv3d, kiln.nn.layers.conv3d)
ENTRIES += [
    entry("F.conv3d", f(t(1, 2, 4, 4, 4), t(3, 2, 2, 2, 2)),
          f(t(2, 4, 5, 4, 4), t(2, 2, 3, 2, 3), t(2), (2, 1, 2), 1, (1, 2, 1), 2),
          f(t(2, 4, 4, 4), t(1, 2, 3, 3, 3), None, 1, "same"),
          f(t(1, 1, 3, 3, 5), t(1, 1, 1, 1, 4), None, 1, "valid"), tol=(1e-4, 1e-5)),
    entry("F.conv_transpose3d", f(t(1, 2, 2, 3, 2), t(2, 3, 2, 2, 2)),
          f(t(1, 4, 2, 2, 3), t(4, 1, 3, 2, 2), t(2), (2, 1, 2), 1, (1, 0, 1), 2),
          f(t(2, 2, 2, 2), t(2, 1, 2, 3, 2), None, 2, (1, 0, 1), 1, 1, (2, 1, 1)),
          tol=(1e-4, 1e-5)),
    entry("F.adaptive_avg_pool3d", f(t(1, 2, 5, 4, 3), (2, 3, 2)), f(t(2, 4, 4, 4), 1),
          f(t(1, 2, 3, 4, 5), (None, 2, None))),
    entry("F.adaptive_max_pool3d", f(t(1, 2, 5, 4, 3, domain="distinct"), (2, 3, 2)),
          f(t(2, 4, 4, 4, domain="distinct"), 2, True),
          f(t(1, 2, 3, 4, 5, domain="distinct"), (None, 2, None), return_indices=True)),
    entry("nn.Conv3d", f(t(1, 2, 4, 4, 4)), init=(2, 3, 3), init_kwargs={"padding": 1},
          tol=(1e-4, 1e-5)),
    entry("nn.Conv3d", f(t(2, 4, 4, 4)), init=(2, 2, 2), init_kwargs={"stride": 2,
                                                                       "bias": False}),
    entry("nn.ConvTranspose3d", f(t(1, 2, 2, 2, 2)), init=(2, 3, 2),
          init_kwargs={"stride": 2}, tol=(1e-4, 1e-5)),
    entry("nn.AdaptiveAvgPool3d", f(t(1, 2, 4, 5, 3)), init=((2, 2, 1),)),
    entry("nn.AdaptiveMaxPool3d", f(t(1, 2, 4, 5, 3, domain="distinct")), init=((2, 3, 2),)),
]

# power-average pooling (kiln.nn.lp_pool)
ENTRIES += [
    entry("F.lp_pool1d", f(pos(2, 3, 6), 2, 3), f(pos(2, 3, 7), 1.5, 2, 2, True),
          f(t(1, 2, 6), float("inf"), 2)),
    entry("F.lp_pool2d", f(pos(1, 2, 4, 4), 2, 2), f(pos(1, 2, 5, 5), 3, (2, 3), 1)),
    entry("F.lp_pool3d", f(pos(1, 2, 4, 4, 4), 2, 2), f(pos(2, 3, 3, 3), 1, (2, 2, 1))),
    entry("nn.LPPool1d", f(pos(2, 3, 6)), init=(2, 3)),
    entry("nn.LPPool2d", f(pos(1, 2, 4, 4)), init=(2, 2)),
    entry("nn.LPPool3d", f(pos(1, 2, 2, 4, 4)), init=(2, 2)),
]

# sampling grids (kiln.nn.grid_sample)
ENTRIES += [
    entry("F.grid_sample", f(t(2, 3, 4, 5), t(2, 3, 2, 2)),
          f(t(1, 2, 4, 4), t(1, 3, 3, 2), "bilinear", "border", True),
          f(t(1, 2, 4, 4), t(1, 3, 3, 2), "bilinear", "reflection", False),
          f(t(1, 2, 4, 4), t(1, 2, 3, 2), "nearest", "zeros", False),
          f(t(1, 2, 4, 4), t(1, 2, 3, 2, domain="unit"), "bicubic", "zeros", True),
          f(t(1, 2, 4, 4), t(1, 2, 3, 2), "bicubic", "reflection", False),
          f(t(1, 2, 3, 3, 3), t(1, 2, 2, 2, 3), "bilinear", "zeros", False),
          f(t(1, 2, 3, 3, 3), t(1, 2, 2, 2, 3), "nearest", "border", True), tol=(1e-4, 1e-5)),
    entry("grid_sampler_2d", f(t(1, 2, 4, 5), t(1, 3, 2, 2), 0, 1, False),
          f(t(1, 2, 4, 5), t(1, 3, 2, 2), 2, 2, True), tol=(1e-4, 1e-5)),
    entry("grid_sampler_3d", f(t(1, 2, 3, 3, 3), t(1, 2, 2, 2, 3), 0, 2, False),
          tol=(1e-4, 1e-5)),
    entry("F.affine_grid", f(t(2, 2, 3), (2, 3, 4, 5)), f(t(1, 2, 3), (1, 1, 3, 3), True),
          f(t(1, 3, 4), (1, 2, 2, 3, 4), False)),
]

# the last activations and aten forms (kiln.nn.aten_extra)
ENTRIES += [
    entry("F.hardsigmoid", f(t(2, 3)), f(t(E)), f(t(0, 2))),
    entry("F.rrelu", f(t(2, 3)), f(t(4), 0.1, 0.3), f(t(3), 0.2, 0.2, True)),
    entry("constant_pad_nd", f(t(2, 3), [1, 2]), f(t(2, 3), [0, 1, 2, 0], 1.5),
          f(t(4, 3), [-1, 1, 1, -2])),
    entry("native_dropout_backward", f(t(2, 3), t(2, 3, dtype="bool"), 2.0)),
    entry("_softmax_backward_data", f(t(2, 3), t(2, 3, domain="prob"), 1, D("float32")),
          f(t(4), t(4, domain="prob"), 0, D("float32"))),
    entry("nn.Hardsigmoid", f(t(2, 3))),
    entry("nn.RReLU", f(t(2, 3)), init=(0.1, 0.4)),
]

# fractional max pooling with fixed samples (kiln.nn.fractional_pool)
ENTRIES += [
    entry("F.fractional_max_pool2d",
          f(t(1, 2, 7, 7, domain="distinct"), 2, 3, _random_samples=t(1, 2, 2, domain="prob")),
          f(t(2, 6, 5, domain="distinct"), (2, 1), output_ratio=(0.5, 0.5), return_indices=True,
            _random_samples=t(1, 2, 2, domain="prob"))),
    entry("F.fractional_max_pool3d",
          f(t(1, 2, 5, 5, 5, domain="distinct"), 2, (2, 3, 2),
            _random_samples=t(1, 2, 3, domain="prob")),
          f(t(1, 1, 4, 6, 5, domain="distinct"), 2, output_ratio=(0.5, 0.5, 0.5),
            return_indices=True, _random_samples=t(1, 1, 3, domain="prob"))),
]
