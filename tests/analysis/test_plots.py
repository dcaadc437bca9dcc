"""Figures are produced, in the requested order, and saved as PNG and SVG."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from protperf.analysis.blosum import blosum62, head_correlations
from protperf.analysis.plots import (
    clustered_order,
    plot_attention_grid,
    plot_head_correlations,
    plot_similarity_scatter,
    plot_similarity_vs_blosum,
    protein_label,
    residue_ticks,
    save_figure,
)
from protperf.analysis.residues import AMINO_ACIDS


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def check_saved(paths):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()


def tick_text(axis):
    return "".join(label.get_text() for label in axis.get_xticklabels())


@pytest.mark.parametrize("order", ["alphabet", "clustered"])
def test_similarity_heatmap_beside_blosum(tmp_path, order):
    similarity = blosum62().to_numpy() * 0.5
    similarity[0, 1] = np.nan
    figure = plot_similarity_vs_blosum(similarity, order=order)
    expected = AMINO_ACIDS if order == "alphabet" else clustered_order()
    assert tick_text(figure.axes[0]) == expected
    assert tick_text(figure.axes[1]) == expected or tick_text(figure.axes[2]) == expected
    check_saved(save_figure(figure, tmp_path / "sub" / "heatmap"))


def test_clustered_order_groups_similar_amino_acids():
    order = clustered_order()
    assert sorted(order) == sorted(AMINO_ACIDS)
    positions = [order.index(a) for a in "ILMV"]
    assert max(positions) - min(positions) == 3  # the aliphatic block stays together
    with pytest.raises(ValueError, match="order must be 'alphabet', 'clustered' or a permutation"):
        plot_similarity_vs_blosum(np.zeros((20, 20)), order="ACD")


def test_scatter_and_head_grid(tmp_path):
    reference = blosum62().to_numpy()
    noise = np.random.default_rng(0).normal(size=(2, 3, 20, 20))
    similarities = reference + noise
    check_saved(save_figure(plot_similarity_scatter(similarities[0, 0]), tmp_path / "scatter"))
    table = head_correlations(similarities, n_permutations=0)
    figure = plot_head_correlations(table)
    check_saved(save_figure(figure, tmp_path / "heads"))


def test_attention_grid(tmp_path):
    attention = np.random.default_rng(0).dirichlet(np.ones(6), size=(2, 3, 6))
    figure = plot_attention_grid(attention, residues="^MKTA$", title="toy")
    assert len(figure.axes) == 6 + 1  # 2 x 3 panels and the colour bar
    assert tick_text(figure.axes[3]) == "^MKTA$"  # bottom-left: labels on the outer axes only
    assert tick_text(figure.axes[0]) == "" and tick_text(figure.axes[4]) == "^MKTA$"
    check_saved(save_figure(figure, tmp_path / "grid"))
    with pytest.raises(ValueError, match="5 residue labels for attention of length 6"):
        plot_attention_grid(attention, residues="MKTA$")
    with pytest.raises(ValueError, match=r"attention must be \(layers, heads, L, L\)"):
        plot_attention_grid(attention[0])


def test_head_table_frame_type():
    table = head_correlations(np.zeros((1, 1, 20, 20)) + np.eye(20), n_permutations=0)
    assert isinstance(table, pd.DataFrame) and len(table) == 1


def test_attention_grid_has_colour_bar_axis_labels_readable_ticks_and_a_name():
    length = 150  # a long protein: every 3rd residue labelled, with its position
    attention = np.random.default_rng(0).dirichlet(np.ones(length), size=(2, 2, length))
    residues = "^" + ("MKTAYIAKQR" * 15)[: length - 2] + "$"
    figure = plot_attention_grid(attention, residues, title=protein_label("sp|P00974|BPT1_BOVIN"))
    assert figure.get_suptitle() == "BPT1_BOVIN"
    panels, colorbars = figure.axes[:4], figure.axes[4:]
    assert [axis.get_ylabel() for axis in colorbars] == ["attention weight"]
    assert [axis.get_xlabel() for axis in panels] == ["", "", "key", "key"]
    assert [axis.get_ylabel() for axis in panels] == ["query", "", "query", ""]
    labels = [label.get_text() for label in panels[2].get_xticklabels()]
    assert len(labels) == 50 and labels[:3] == ["^0", "T3", "I6"]
    assert [label.get_text() for label in panels[2].get_yticklabels()] == labels
    assert residue_ticks("^MKT$")[1] == list("^MKT$")


def test_protein_label_is_the_uniprot_entry_name():
    assert protein_label("sp|P00974|BPT1_BOVIN") == "BPT1_BOVIN"
    assert protein_label("tr|A0A0|A0A0_HUMAN") == "A0A0_HUMAN"
    assert protein_label("BPT1_BOVIN_mature") == "BPT1_BOVIN_mature"
    assert protein_label("gi|123") == "gi|123"
