"""k-reciprocal re-ranking against a plain transcription of the authors' released algorithm
(Zhong et al., CVPR 2017; their re_ranking_feature.py, also used by torchreid and fast-reid).

The transcription below follows the released code step by step, with dense N × N matrices and one
Python loop per item; it departs from it only in precision (float64 everywhere, where the code
keeps V and the Jaccard distance in float16) so that the comparison can be tight (1e-5)."""
import numpy as np
import pytest

from adamixup.reid.rerank import re_ranking


def released_re_ranking(qf, gf, k1, k2, lambda_value, strict=True):
    """The released algorithm. ``strict=False`` swaps its ``>`` of the expansion for the paper's ``>=``."""
    feat = np.concatenate([qf, gf]).astype(np.float64)
    query_num = qf.shape[0]
    all_num = feat.shape[0]
    # squared Euclidean distance of every pair of the concatenated features
    sq = (feat ** 2).sum(axis=1, keepdims=True)
    original_dist = sq + sq.T - 2.0 * feat @ feat.T
    original_dist = np.maximum(original_dist, 0.0)
    # the code's normalization: divide by the column maximum, then transpose
    original_dist = np.transpose(original_dist / np.max(original_dist, axis=0))
    V = np.zeros_like(original_dist)
    initial_rank = np.argsort(original_dist, axis=1, kind="stable")
    half = int(np.around(k1 / 2))

    for i in range(all_num):
        # k-reciprocal neighbours
        forward_k_neigh_index = initial_rank[i, : k1 + 1]
        backward_k_neigh_index = initial_rank[forward_k_neigh_index, : k1 + 1]
        fi = np.where(backward_k_neigh_index == i)[0]
        k_reciprocal_index = forward_k_neigh_index[fi]
        k_reciprocal_expansion_index = k_reciprocal_index
        for j in range(len(k_reciprocal_index)):
            candidate = k_reciprocal_index[j]
            candidate_forward_k_neigh_index = initial_rank[candidate, : half + 1]
            candidate_backward_k_neigh_index = initial_rank[candidate_forward_k_neigh_index, : half + 1]
            fi_candidate = np.where(candidate_backward_k_neigh_index == candidate)[0]
            candidate_k_reciprocal_index = candidate_forward_k_neigh_index[fi_candidate]
            shared = len(np.intersect1d(candidate_k_reciprocal_index, k_reciprocal_index))
            bound = 2 / 3 * len(candidate_k_reciprocal_index)
            if (shared > bound) if strict else (shared >= bound):
                k_reciprocal_expansion_index = np.append(k_reciprocal_expansion_index, candidate_k_reciprocal_index)
        k_reciprocal_expansion_index = np.unique(k_reciprocal_expansion_index)
        weight = np.exp(-original_dist[i, k_reciprocal_expansion_index])
        V[i, k_reciprocal_expansion_index] = weight / np.sum(weight)

    original_dist = original_dist[:query_num]
    if k2 != 1:
        V_qe = np.zeros_like(V)
        for i in range(all_num):
            V_qe[i, :] = np.mean(V[initial_rank[i, :k2], :], axis=0)
        V = V_qe
    invIndex = [np.where(V[:, i] != 0)[0] for i in range(all_num)]

    jaccard_dist = np.zeros_like(original_dist)
    for i in range(query_num):
        temp_min = np.zeros(all_num)
        indNonZero = np.where(V[i, :] != 0)[0]
        indImages = [invIndex[ind] for ind in indNonZero]
        for j in range(len(indNonZero)):
            temp_min[indImages[j]] = temp_min[indImages[j]] + np.minimum(V[i, indNonZero[j]], V[indImages[j], indNonZero[j]])
        jaccard_dist[i] = 1 - temp_min / (2 - temp_min)

    final_dist = jaccard_dist * (1 - lambda_value) + original_dist * lambda_value
    return final_dist[:query_num, query_num:]


def features(seed, num_q, num_g, dim, ids):
    """Clustered random features (queries and gallery drawn around the same ``ids`` centres)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    qf = centres[rng.integers(0, ids, num_q)] + 1.0 * rng.normal(size=(num_q, dim))
    gf = centres[rng.integers(0, ids, num_g)] + 1.0 * rng.normal(size=(num_g, dim))
    return qf.astype(np.float32), gf.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_equal_the_released_code_small(seed):
    qf, gf = features(seed, 12, 40, 16, ids=8)
    got = re_ranking(qf, gf, k1=6, k2=3, lambda_value=0.3, chunk_size=7, pair_budget=50)
    np.testing.assert_allclose(got, released_re_ranking(qf, gf, 6, 3, 0.3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", [3, 4])
def test_defaults_equal_the_released_code_default_parameters(seed):
    qf, gf = features(seed, 30, 90, 16, ids=15)
    got = re_ranking(qf, gf)  # k1=20, k2=6, lambda 0.3
    np.testing.assert_allclose(got, released_re_ranking(qf, gf, 20, 6, 0.3), rtol=0, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_paper_option_is_the_at_least_two_thirds_rule(seed):
    qf, gf = features(seed, 12, 40, 16, ids=8)
    paper = re_ranking(qf, gf, k1=6, k2=3, expansion="paper", chunk_size=5)
    np.testing.assert_allclose(paper, released_re_ranking(qf, gf, 6, 3, 0.3, strict=False), rtol=0, atol=1e-5)


def test_the_rules_differ_where_the_two_thirds_boundary_is_hit():
    # k1 = 6: candidates' 3-reciprocal sets have up to 4 members; a set of 3 sharing exactly 2 with
    # R(p, 6) sits on the boundary, which these seeds hit (the references disagree too)
    differ = 0
    for seed in range(4):
        qf, gf = features(seed, 12, 40, 16, ids=8)
        released, paper = re_ranking(qf, gf, k1=6, k2=3), re_ranking(qf, gf, k1=6, k2=3, expansion="paper")
        reference_differs = not np.allclose(released_re_ranking(qf, gf, 6, 3, 0.3), released_re_ranking(qf, gf, 6, 3, 0.3, strict=False), atol=1e-6)
        assert reference_differs == (not np.allclose(released, paper, atol=1e-6))
        differ += reference_differs
    assert differ >= 1


def test_expansion_is_validated():
    qf, gf = features(0, 4, 10, 8, ids=3)
    with pytest.raises(ValueError, match="expansion must be 'released' .* or 'paper'"):
        re_ranking(qf, gf, k1=3, k2=2, expansion="strict")
