"""Token-level reward scoring, heatmaps (HTML, PNG) and trade-off plots."""

import ast
import math
import pathlib
import re
import struct

import numpy
import pytest
import torch

import hf_genarm
from hf_genarm import AutoregressiveRewardModel
from hf_genarm.testing import make_tiny_causal_lm
from hf_genarm.visualize import (
    _pareto_front,
    plot_tradeoff,
    save_token_reward_heatmap_png,
    score_text,
    token_reward_heatmap_html,
)

PROMPT = "Question: how do I bake bread? Answer:"
RESPONSE = " mix flour, water, salt and yeast, then wait."


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    # Tiny models on a shared CPU: one intra-op thread avoids oversubscription that makes these tests 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reward_model(tokenizer):
    return AutoregressiveRewardModel(make_tiny_causal_lm(seed=1), beta_r=0.1, tokenizer=tokenizer)


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


# ------------------------------------------------------------------------------------------ score_text
def test_score_text_matches_sequence_reward_with_the_prompt_masked(reward_model, tokenizer):
    tokens, rewards = score_text(reward_model, tokenizer, PROMPT, RESPONSE)
    assert "".join(tokens) == RESPONSE + tokenizer.eos_token
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    ids = torch.tensor([prompt_ids + tokenizer(RESPONSE)["input_ids"] + [tokenizer.eos_token_id]])
    expected = reward_model.token_rewards(ids, prompt_length=len(prompt_ids))[0, len(prompt_ids) :]
    torch.testing.assert_close(torch.tensor(rewards), expected, atol=1e-6, rtol=0)
    assert sum(rewards) == pytest.approx(reward_model.sequence_rewards(ids, prompt_length=len(prompt_ids)).item())


def test_score_text_options(reward_model, tokenizer):
    tokens, rewards = score_text(reward_model, tokenizer, PROMPT, RESPONSE, add_eos=False, include_prompt=True)
    assert "".join(tokens) == PROMPT + RESPONSE
    prompt_length = len(tokenizer(PROMPT)["input_ids"])
    assert all(math.isnan(value) for value in rewards[:prompt_length])
    assert all(value < 0 for value in rewards[prompt_length:])
    # An empty prompt conditions on BOS, as the trainer does.
    tokens, rewards = score_text(reward_model, tokenizer, "", "Life is short")
    assert "".join(tokens) == "Life is short" + tokenizer.eos_token and all(value < 0 for value in rewards)


def test_score_text_scores_the_joint_tokenization_when_tokens_merge_across_the_boundary(reward_model, tokenizer):
    tokens, _ = score_text(reward_model, tokenizer, "Life i", "s short")
    full = tokenizer("Life is short")["input_ids"]
    start = len(full) - (len(tokens) - 1)
    assert tokens == [tokenizer.decode([token]) for token in full[start:]] + [tokenizer.eos_token]
    assert "Life i".startswith(tokenizer.decode(full[:start]))


def test_score_text_rejects_bad_inputs(reward_model, tokenizer):
    with pytest.raises(TypeError, match="AutoregressiveRewardModel"):
        score_text(make_tiny_causal_lm(), tokenizer, PROMPT, RESPONSE)
    with pytest.raises(ValueError, match="response"):
        score_text(reward_model, tokenizer, PROMPT, "")


def test_score_text_is_one_function_under_its_three_names():
    import hf_genarm.scoring
    import hf_genarm.visualize

    assert hf_genarm.score_text is hf_genarm.scoring.score_text is hf_genarm.visualize.score_text


def test_score_text_refuses_a_response_that_adds_no_token_instead_of_scoring_eos_alone():
    from hf_genarm.cross_tokenizer_testing import make_tiny_wordpiece_tokenizer

    # The WordPiece normaliser drops a zero-width space: the response adds no token to the prompt's tokenization.
    wordpiece = make_tiny_wordpiece_tokenizer()
    reward_model = AutoregressiveRewardModel(make_tiny_causal_lm(vocab_size=len(wordpiece)), tokenizer=wordpiece)
    assert wordpiece("Hello\u200b", add_special_tokens=False) == wordpiece("Hello", add_special_tokens=False)
    with pytest.raises(ValueError, match="adds no token to the prompt's tokenization"):
        score_text(reward_model, wordpiece, "Hello", "\u200b")
    tokens, _ = score_text(reward_model, wordpiece, "Hello", " the\u200b")
    assert tokens[-1] == wordpiece.eos_token and len(tokens) > 1


# ------------------------------------------------------------------------------------------ HTML
def background(html_text, index):
    styles = re.findall(r'<span style="([^"]*)" title="reward', html_text)
    match = re.search(r"background-color:rgb\((\d+),(\d+),(\d+)\)", styles[index])
    return tuple(int(channel) for channel in match.groups())


def test_html_colours_tokens_on_a_diverging_scale_with_hover_values():
    html_text = token_reward_heatmap_html(["bad", " ok", " good", " fine"], [-2.0, 0.0, 2.0, 1.0], center=0.0)
    red, white, green, light_green = (background(html_text, index) for index in range(4))
    assert red[0] > red[1] and white == (255, 255, 255) and green[1] > green[0]
    assert light_green[0] > green[0], "half the reward is a lighter green"
    assert 'title="reward -2.0000 (token 0: &#x27;bad&#x27;)"' in html_text
    assert "+2.0000" in html_text and "-2.0000" in html_text, "the legend gives the scale"
    assert not html_text.startswith("<!DOCTYPE")


def test_html_centres_the_scale_on_the_median_reward_by_default_since_arm_rewards_are_all_negative():
    rewards = [-9.0, -1.0, -2.0, -1.5, -1.2, float("nan")]
    html_text = token_reward_heatmap_html(["eos", " best", " worse", " typical", " good", " prompt"], rewards)
    outlier, best, worse, typical = (background(html_text, index) for index in range(4))
    assert outlier == (215, 48, 39) and best == (26, 152, 80), "each side reaches full colour at its extreme"
    assert worse[0] > worse[1] and worse[1] > 200, "below the median is red, pale when far from the outlier"
    assert typical == (255, 255, 255), "the median token reward is white"
    assert "white: this response&#x27;s median, -1.5000" in html_text
    assert "-9.0000" in html_text and "-1.0000" in html_text, "the legend runs from the lowest to the highest"
    mean_centred = token_reward_heatmap_html(["a", "b", "c"], [-3.0, -1.0, -2.0], center="mean")
    assert background(mean_centred, 2) == (255, 255, 255) and "mean, -2.0000" in mean_centred
    assert background(token_reward_heatmap_html(["a", "b"], [-3.0, -1.0], center=0.0), 1)[1] < 255, (
        "centred on zero, every negative reward is red"
    )


def test_heatmaps_reject_a_bad_center(tmp_path):
    with pytest.raises(ValueError, match="center"):
        token_reward_heatmap_html(["a"], [1.0], center="mode")
    with pytest.raises(ValueError, match="center"):
        save_token_reward_heatmap_png(["a"], [1.0], tmp_path / "a.png", center=float("inf"))


def test_html_escapes_tokens_marks_unscored_ones_and_shows_line_breaks():
    html_text = token_reward_heatmap_html(
        ["<script>", "\n", " x"], [float("nan"), 0.5, -0.5], vmax=1.0, title="A & B", full_page=True
    )
    assert html_text.startswith("<!DOCTYPE html>") and "<title>A &amp; B</title>" in html_text
    assert "<script>" not in html_text and "&lt;script&gt;" in html_text
    assert "not scored" in html_text
    assert "\u21b5\n" in html_text


def test_html_rejects_bad_inputs():
    with pytest.raises(ValueError, match="one per token"):
        token_reward_heatmap_html(["a", "b"], [1.0])
    with pytest.raises(ValueError, match="vmax"):
        token_reward_heatmap_html(["a"], [1.0], vmax=0)
    with pytest.raises(TypeError, match="tokens"):
        token_reward_heatmap_html("ab", [1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        token_reward_heatmap_html(["a"], torch.ones(1, 1))
    with pytest.raises(ValueError, match="empty"):
        token_reward_heatmap_html([], [])


# ------------------------------------------------------------------------------------------ PNG
def test_png_heatmap_wraps_long_texts_into_more_rows(tmp_path):
    short = save_token_reward_heatmap_png(["Good", " day"], [0.5, -0.5], tmp_path / "short.png")
    tokens = [f" word{index}" for index in range(80)] + ["\n", "$x$ costs 50%"]
    rewards = torch.linspace(-1, 1, len(tokens))
    rewards[0] = float("nan")
    long = save_token_reward_heatmap_png(tokens, rewards, tmp_path / "long.png", title="Rewards", dpi=50)
    short_width, short_height = png_size(short)
    long_width, long_height = png_size(long)
    assert short_width == 8 * 150 and long_width == 8 * 50
    assert long_height / 50 > 2 * short_height / 150, "80 tokens need several rows"


def test_png_heatmap_wraps_a_long_title_instead_of_clipping_it(tmp_path):
    import matplotlib.image

    tokens, rewards = ["Good", " day"], [-0.5, -1.5]
    untitled = save_token_reward_heatmap_png(tokens, rewards, tmp_path / "untitled.png", dpi=50)
    short = save_token_reward_heatmap_png(tokens, rewards, tmp_path / "short.png", title="arm-sentiment", dpi=50)
    long_title = "/home/someone/checkpoints/" + "very-long-folder-name/" * 8 + "arm: total reward -9.2900"
    long = save_token_reward_heatmap_png(tokens, rewards, tmp_path / "long.png", title=long_title, dpi=50)
    heights = [png_size(path)[1] for path in (untitled, short, long)]
    assert heights[0] < heights[1] < heights[2], "a title takes room, and a long one wraps onto more lines"
    pixels = matplotlib.image.imread(long)
    title_band = pixels[: (heights[2] - heights[1]) + 20]
    edges = numpy.concatenate([title_band[:, :8, :3], title_band[:, -8:, :3]], axis=1)
    assert edges.min() > 0.99, "no title text reaches the left or right edge"


def test_png_heatmap_rejects_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_token_reward_heatmap_png(["a"], [1.0], tmp_path / "missing" / "rewards.png")


# ------------------------------------------------------------------------------------------ trade-off
def test_plot_tradeoff_writes_a_figure_with_series(tmp_path):
    points = [(0.1, 0.9), (0.5, 0.6), (0.8, 0.2), (0.3, 0.3), (0.4, 0.5)]
    series = ["GenARM"] * 3 + ["best-of-N"] * 2
    path = plot_tradeoff(points, ["α=0", "α=0.5", "α=1", "N=4", "N=16"], tmp_path / "front.png", series=series)
    assert png_size(path) == (6 * 150, int(4.5 * 150))
    assert plot_tradeoff(points, None, tmp_path / "front.svg", show_front=False).read_text().startswith("<?xml")


def test_pareto_front_keeps_points_no_other_beats_on_both_scores():
    points = [(0.1, 0.9), (0.5, 0.6), (0.4, 0.5), (0.8, 0.2), (0.8, 0.1), (0.3, 0.3)]
    assert _pareto_front(points) == [(0.1, 0.9), (0.5, 0.6), (0.8, 0.2)]


def test_plot_tradeoff_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        plot_tradeoff([], None, tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"points\[1\]"):
        plot_tradeoff([(0, 1), (1, 2, 3)], None, tmp_path / "a.png")
    with pytest.raises(ValueError, match="labels"):
        plot_tradeoff([(0, 1), (1, 0)], ["only one"], tmp_path / "a.png")


PACKAGE = pathlib.Path(hf_genarm.__file__).parent


@pytest.mark.parametrize(
    "path", ["visualize.py", "cli.py", *sorted(p.name for p in (PACKAGE / "baselines").glob("*.py"))]
)
def test_matplotlib_is_imported_only_inside_functions(path):
    # Importing hf_genarm must stay light: a module-level matplotlib import would load it for every user.
    source = PACKAGE / path if (PACKAGE / path).is_file() else PACKAGE / "baselines" / path
    tree = ast.parse(source.read_text())
    imported = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.startswith("matplotlib")]
