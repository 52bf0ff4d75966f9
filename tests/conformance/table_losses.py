"""Conformance entries of torch's losses, distances and the max-pool input gradient
(kiln.nn.losses_margin, losses_prob, distance, pool_backward and the modules of
kiln.nn.layers.loss_extra)."""

from __future__ import annotations

from harness import entry, f, t

E = ()  # a 0-d shape


def sign(*shape: int) -> object:
    return t(*shape, domain="sign")


def idx(*shape: int, high: int) -> object:
    return t(*shape, dtype="int64", domain="index", high=high)


def pos(*shape: int) -> object:
    return t(*shape, domain="positive")


ENTRIES = [
    entry("cdist", f(t(3, 4), t(5, 4)), f(t(2, 3, 4), t(2, 5, 4), 1.0),
          f(t(3, 2), t(4, 2), 0.0), f(t(3, 2), t(4, 2), float("inf")),
          f(t(2, 3, 4), t(5, 4), 3.0), f(t(0, 4), t(2, 4)),
          f(t(3, 4), t(5, 4), compute_mode="use_mm_for_euclid_dist")),
    entry("dist", f(t(2, 3), t(3)), f(t(2, 3), t(2, 3), 1), f(t(3), t(E), 4),
          f(t(2, 3), t(2, 3), float("inf"))),
    entry("F.pdist", f(t(4, 3)), f(t(5, 2), 1.0), f(t(4, 3), 3.0), f(t(1, 3)),
          f(t(4, 3), float("inf"))),
    entry("F.pairwise_distance", f(t(2, 3), t(2, 3)), f(t(3), t(3), keepdim=True),
          f(t(2, 3), t(3), 1.0), f(t(4, 3), t(4, 3), 3.0, 0.1)),
    entry("nn.PairwiseDistance", f(t(2, 3), t(2, 3)), init_kwargs={"p": 1.0}),
    entry("nn.CosineSimilarity", f(t(2, 3), t(2, 3)), init_kwargs={"dim": 1}),
    entry("max_pool2d_with_indices_backward",
          f(t(1, 2, 2, 2), t(1, 2, 4, 4), 2, 2, 0, 1, False,
            idx(1, 2, 2, 2, high=16)),
          f(t(2, 3, 3), t(2, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False,
            idx(2, 3, 3, high=36))),
    entry("F.margin_ranking_loss", f(t(4), t(4), sign(4)), f(t(4), t(4), sign(4), 0.5, None,
                                                            None, "sum"),
          f(t(2, 3), t(2, 3), sign(2, 3), reduction="none")),
    entry("F.hinge_embedding_loss", f(t(4), sign(4)), f(t(2, 3), sign(2, 3), 0.5),
          f(t(2, 3), sign(2, 3), reduction="none")),
    entry("F.soft_margin_loss", f(t(4), sign(4)), f(t(2, 3), sign(2, 3), reduction="none")),
    entry("F.multilabel_soft_margin_loss", f(t(2, 3), t(2, 3, domain="prob")),
          f(t(2, 3), t(2, 3, domain="prob"), t(3), reduction="none"), f(t(3), t(3))),
    entry("F.multi_margin_loss", f(t(3, 4), idx(3, high=4)), f(t(4), idx(E, high=4)),
          f(t(3, 4), idx(3, high=4), 2, 0.5, t(4, domain="positive")),
          f(t(3, 4), idx(3, high=4), reduction="none")),
    entry("F.multilabel_margin_loss", f(t(3, 4), idx(3, 4, high=4)), f(t(4), idx(4, high=4)),
          f(t(2, 4), idx(2, 4, high=4), reduction="none")),
    entry("F.cosine_embedding_loss", f(t(3, 4), t(3, 4), sign(3)),
          f(t(4), t(4), sign(E), 0.2), f(t(3, 4), t(3, 4), sign(3), reduction="none")),
    entry("F.triplet_margin_loss", f(t(3, 4), t(3, 4), t(3, 4)),
          f(t(3, 4), t(3, 4), t(3, 4), 0.5, 1.0, 1e-6, True),
          f(t(4), t(4), t(4), reduction="none")),
    entry("F.triplet_margin_with_distance_loss", f(t(3, 4), t(3, 4), t(3, 4)),
          f(t(3, 4), t(3, 4), t(3, 4), margin=0.5, swap=True, reduction="sum")),
    entry("F.gaussian_nll_loss", f(t(2, 3), t(2, 3), pos(2, 3)),
          f(t(2, 3), t(2, 3), pos(2), full=True), f(t(2, 3), t(2, 3), pos(2, 1),
                                                    reduction="none"),
          f(t(4), t(4), 0.5, eps=0.1, reduction="sum")),
    entry("F.poisson_nll_loss", f(t(2, 3), pos(2, 3)),
          f(pos(2, 3), t(2, 3, domain="positive"), False, True, reduction="none"),
          f(t(4), pos(4), True, True, None, 1e-8, None, "sum")),
    entry("F.linear_cross_entropy", f(t(3, 4), t(5, 4), idx(3, high=5)),
          f(t(4), t(5, 4), idx(E, high=5)),
          f(t(3, 4), t(5, 2, 4), idx(3, 2, high=5), linear_bias=t(5, 2), reduction="none"),
          f(t(3, 4), t(5, 4), t(3, 5, domain="prob"), label_smoothing=0.1),
          f(t(3, 4), t(5, 4), idx(3, high=5), weight=pos(5), ignore_index=1)),
    entry("nn.MarginRankingLoss", f(t(4), t(4), sign(4)), init_kwargs={"margin": 0.3}),
    entry("nn.HingeEmbeddingLoss", f(t(2, 3), sign(2, 3)), init_kwargs={"reduction": "sum"}),
    entry("nn.SoftMarginLoss", f(t(2, 3), sign(2, 3))),
    entry("nn.MultiLabelSoftMarginLoss", f(t(2, 3), t(2, 3, domain="prob"))),
    entry("nn.MultiMarginLoss", f(t(3, 4), idx(3, high=4)), init_kwargs={"p": 2}),
    entry("nn.MultiLabelMarginLoss", f(t(3, 4), idx(3, 4, high=4))),
    entry("nn.CosineEmbeddingLoss", f(t(3, 4), t(3, 4), sign(3)), init_kwargs={"margin": 0.1}),
    entry("nn.TripletMarginLoss", f(t(3, 4), t(3, 4), t(3, 4)),
          init_kwargs={"p": 1.0, "swap": True}),
    entry("nn.TripletMarginWithDistanceLoss", f(t(3, 4), t(3, 4), t(3, 4)),
          init_kwargs={"margin": 2.0}),
    entry("nn.GaussianNLLLoss", f(t(2, 3), t(2, 3), pos(2, 3)), init_kwargs={"full": True}),
    entry("nn.PoissonNLLLoss", f(t(2, 3), pos(2, 3)), init_kwargs={"log_input": True}),
    entry("nn.LinearCrossEntropyLoss", f(t(3, 4), idx(3, high=5)), init=(4, 5)),
    entry("nn.LinearCrossEntropyLoss", f(t(3, 4), idx(3, 2, high=5)), init=(4, 5),
          init_kwargs={"out_features": (2,), "bias": True}),
]

# F.multi_head_attention_forward: (query, key, value, embed_dim, num_heads, in_proj_weight,
# in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias)
_MHA = (4, 2, t(12, 4), t(12), None, None, False, 0.0, t(4, 4), t(4))
ENTRIES += [
    entry("F.multi_head_attention_forward",
          f(t(3, 2, 4), t(5, 2, 4), t(5, 2, 4), *_MHA, training=False),
          f(t(3, 4), t(5, 4), t(5, 4), *_MHA, training=False, attn_mask=t(3, 5)),
          f(t(3, 2, 4), t(5, 2, 4), t(5, 2, 4), 4, 2, t(12, 4), t(12), t(1, 1, 4), t(1, 1, 4),
            True, 0.0, t(4, 4), t(4), training=False, average_attn_weights=False),
          f(t(3, 2, 4), t(5, 2, 4), t(5, 2, 4), 4, 1, None, None, None, None, False, 0.0,
            t(4, 4), None, training=False, use_separate_proj_weight=True,
            q_proj_weight=t(4, 4), k_proj_weight=t(4, 4), v_proj_weight=t(4, 4),
            key_padding_mask=t(2, 5, const=True),
            need_weights=False),
          tol=(1e-4, 1e-5)),
]

# bags, unpooling and CTC (kiln.nn.bags, kiln.nn.ctc, kiln.nn.layers.bags)
_OFF = t(3, dtype="int64", domain="offsets", high=6)
ENTRIES += [
    entry("F.embedding_bag", f(idx(6, high=5), t(5, 3), _OFF, mode="sum"),
          f(idx(6, high=5), t(5, 3), _OFF), f(idx(2, 3, high=5), t(5, 3), mode="max"),
          f(idx(6, high=5), t(5, 3), _OFF, mode="sum", per_sample_weights=t(6)),
          f(idx(6, high=5), t(5, 3), _OFF, mode="mean", padding_idx=1),
          f(idx(2, 3, high=5), t(5, 3), padding_idx=2, mode="max")),
    entry("F.max_unpool1d", f(t(1, 2, 1), idx(1, 2, 1, high=3), 3, 2),
          f(t(2, 1), idx(2, 1, high=3), 2, output_size=(3,))),
    entry("F.max_unpool3d", f(t(1, 2, 1, 1, 1), idx(1, 2, 1, 1, 1, high=8), 2),
          f(t(2, 1, 1, 1), idx(2, 1, 1, 1, high=27), 3, 2, output_size=(3, 3, 3))),
    entry("F.ctc_loss", f(t(6, 2, 5), idx(2, 3, high=4), [6, 5], [3, 2], 4),
          f(t(6, 2, 5), idx(2, 3, high=4), [6, 6], [2, 3], 4, "sum"),
          f(t(5, 5), idx(2, high=4), [5], [2], 4, "none"),
          f(t(6, 2, 5), idx(2, 3, high=4), [4, 6], [3, 1], 4, "none", True),
          tol=(1e-4, 1e-5)),
    entry("nn.EmbeddingBag", f(idx(6, high=5), _OFF), init=(5, 3),
          init_kwargs={"mode": "sum"}),
    entry("nn.MaxUnpool1d", f(t(1, 2, 1), idx(1, 2, 1, high=2)), init=(2,)),
    entry("nn.MaxUnpool3d", f(t(1, 2, 1, 1, 1), idx(1, 2, 1, 1, 1, high=8)), init=(2,)),
    entry("nn.CTCLoss", f(t(6, 2, 5), idx(2, 3, high=4), [6, 5], [3, 2]),
          init_kwargs={"blank": 4}, tol=(1e-4, 1e-5)),
]
