"""Pictures of what a reward model thinks: token-level reward heatmaps and alpha/beta trade-off plots.

An autoregressive reward model gives every response token its own reward `beta_r * log pi_r(y_t | x, y_<t)`
(figure 3 of the GenARM paper colours them). `score_text` (from `hf_genarm.scoring`) computes those rewards for a
prompt and a response; `token_reward_heatmap_html` and `save_token_reward_heatmap_png` draw them on a
red-white-green diverging scale; `plot_tradeoff` draws the scores two judges give to generations made with
different weights.

An ARM's token rewards are log-probabilities times `beta_r`, so they are all negative: a scale centred on zero
would paint every token red. The heatmaps therefore centre the scale on the response's median token reward by
default (white: a typical token; green: a token the reward model likes more than the others; red: less), each
side reaching full colour at the response's highest or lowest reward so that one outlier (often the EOS token)
does not wash out the rest; `center=0.0` suits signed values such as the difference between two reward models.

matplotlib is imported only inside the PNG functions, and they draw on an Agg canvas of their own, so neither
`import hf_genarm` nor a notebook's plotting backend is affected.
"""

from __future__ import annotations

import html
import math
import os
import pathlib
import statistics
import textwrap
from collections.abc import Sequence
from typing import Any

import torch

# Scoring is `hf_genarm.scoring`'s; `score_text` stays importable from here, beside the heatmaps that draw it.
from .scoring import score_text

__all__ = ["plot_tradeoff", "save_token_reward_heatmap_png", "score_text", "token_reward_heatmap_html"]

# Ends of the diverging scale (ColorBrewer RdYlGn ends); its centre is white.
_NEGATIVE_RGB = (215, 48, 39)
_POSITIVE_RGB = (26, 152, 80)
_WHITE_RGB = (255, 255, 255)
_DARK_TEXT = "#1a1a1a"
_LIGHT_TEXT = "#ffffff"
_UNSCORED_TEXT = "#8a8a8a"
# Beyond this share of the scale the background is dark enough to need light text.
_LIGHT_TEXT_FROM = 0.65
_NEWLINE_MARK = "\u21b5"


# --------------------------------------------------------------------------------------------- inputs
def _validate_tokens_and_rewards(tokens: Any, rewards: Any) -> tuple[list[str], list[float]]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"`tokens` must be a list of strings, got {type(tokens).__name__}.")
    if not all(isinstance(token, str) for token in tokens):
        raise TypeError("`tokens` must hold only strings (decode token ids first, e.g. with `score_text`).")
    if isinstance(rewards, torch.Tensor):
        if rewards.dim() != 1:
            raise ValueError(f"`rewards` must be 1-D (one value per token), got shape {tuple(rewards.shape)}.")
        values = [float(value) for value in rewards.detach().float().cpu().tolist()]
    elif isinstance(rewards, Sequence) and not isinstance(rewards, str):
        if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in rewards):
            raise TypeError("`rewards` must hold only numbers (NaN marks a token that was not scored).")
        values = [float(value) for value in rewards]
    else:
        raise TypeError(f"`rewards` must be a list of floats or a 1-D tensor, got {type(rewards).__name__}.")
    if len(values) != len(tokens):
        raise ValueError(f"`tokens` has {len(tokens)} entries but `rewards` has {len(values)}; pass one per token.")
    if not tokens:
        raise ValueError("`tokens` is empty; there is nothing to draw.")
    return list(tokens), values


def _resolve_scale(rewards: list[float], center: float | str, vmax: float | None) -> tuple[float, float, float]:
    """The rewards drawn full red, white and full green: `(low, middle, high)`, with `low < middle < high`."""
    finite = [value for value in rewards if math.isfinite(value)]
    if center in ("median", "mean"):
        middle = (statistics.median if center == "median" else statistics.fmean)(finite) if finite else 0.0
    elif isinstance(center, (int, float)) and not isinstance(center, bool) and math.isfinite(center):
        middle = float(center)
    else:
        raise ValueError(
            f"`center` must be 'median' or 'mean' (of the response's token rewards) or a finite number such as "
            f"0.0, got {center!r}."
        )
    if vmax is not None:
        if isinstance(vmax, bool) or not isinstance(vmax, (int, float)) or not math.isfinite(vmax) or vmax <= 0:
            raise ValueError(
                f"`vmax` must be a finite float > 0 (the distance from `center` shown at full colour), got {vmax!r}."
            )
        return middle - vmax, middle, middle + vmax
    # Each side spans its own data, so one outlier (often the EOS token) does not wash out the other tokens.
    below = middle - min(finite, default=middle)
    above = max(finite, default=middle) - middle
    below, above = below if below > 0 else above, above if above > 0 else below
    if below <= 0:
        below = above = 1.0
    return middle - below, middle, middle + above


def _share_of_scale(reward: float, scale: tuple[float, float, float]) -> float:
    """Where a reward sits on the colour scale, in [-1, 1]."""
    low, middle, high = scale
    share = (reward - middle) / (high - middle) if reward > middle else (reward - middle) / (middle - low)
    return max(-1.0, min(1.0, share))


def _scale_label(center: float | str, middle: float, precision: int) -> str:
    if isinstance(center, str):
        return f"token reward (white: this response's {center}, {middle:+.{precision}f})"
    return "token reward"


def _background_rgb(share: float) -> tuple[int, int, int]:
    end = _POSITIVE_RGB if share > 0 else _NEGATIVE_RGB
    weight = abs(share)
    return tuple(round(white + weight * (colour - white)) for white, colour in zip(_WHITE_RGB, end))


def _text_colour(share: float) -> str:
    return _LIGHT_TEXT if abs(share) >= _LIGHT_TEXT_FROM else _DARK_TEXT


def _display_token(token: str) -> str:
    """Show line breaks as a visible mark followed by the break, so they keep a coloured box."""
    return token.replace("\n", _NEWLINE_MARK + "\n")


# --------------------------------------------------------------------------------------------- HTML
def token_reward_heatmap_html(
    tokens: Sequence[str],
    rewards: Sequence[float] | torch.Tensor,
    *,
    center: float | str = "median",
    vmax: float | None = None,
    title: str | None = None,
    full_page: bool = False,
    precision: int = 4,
) -> str:
    """Colour each token by its reward, as self-contained HTML (inline styles, no scripts).

    Rewards below `center` are red, `center` is white, rewards above it are green; hovering a token shows its
    value. Tokens with reward `nan` (e.g. the prompt from `score_text(..., include_prompt=True)`) are shown grey
    and uncoloured. A legend under the text gives the scale.

    Args:
        tokens (`list[str]`):
            The tokens, decoded one by one (whitespace kept).
        rewards (`list[float]` or 1-D `torch.Tensor`):
            One reward per token.
        center (`float`, `"median"` or `"mean"`, *optional*, defaults to `"median"`):
            Reward drawn white. The median of the scored tokens suits an ARM's rewards, which are all negative,
            and is not pulled by one outlier (often the EOS token); pass `0.0` for signed values.
        vmax (`float`, *optional*):
            Distance from `center` drawn at full colour on both sides. By default each side spans the data: the
            lowest reward is full red and the highest full green.
        title (`str`, *optional*):
            Heading shown above the tokens (and the page title with `full_page=True`).
        full_page (`bool`, *optional*, defaults to `False`):
            Return a complete HTML document instead of a `<div>` to embed (e.g. in a notebook or a model card).
        precision (`int`, *optional*, defaults to `4`):
            Decimals of the values in hover titles and the legend.

    Returns:
        `str`: the HTML.

    Examples:

    ```python
    >>> html_text = token_reward_heatmap_html(["Good", " day", "!"], [-0.5, -2.0, -1.25])
    >>> 'title="reward -0.5000' in html_text
    True
    >>> html_text.count('title="reward')
    3
    >>> "median, -1.2500" in html_text  # the legend: white is the median token reward
    True
    ```
    """
    tokens, values = _validate_tokens_and_rewards(tokens, rewards)
    scale = _resolve_scale(values, center, vmax)
    low_end, middle, high_end = scale
    if isinstance(precision, bool) or not isinstance(precision, int) or precision < 0:
        raise ValueError(f"`precision` must be a non-negative int, got {precision!r}.")
    spans = []
    for index, (token, reward) in enumerate(zip(tokens, values)):
        text = html.escape(_display_token(token))
        if math.isnan(reward):
            tip = f"token {index}: {token!r}, not scored"
            style = f"color:{_UNSCORED_TEXT};"
        else:
            share = _share_of_scale(reward, scale)
            red, green, blue = _background_rgb(share)
            tip = f"reward {reward:+.{precision}f} (token {index}: {token!r})"
            style = f"background-color:rgb({red},{green},{blue});color:{_text_colour(share)};"
        spans.append(
            f'<span style="{style}padding:2px 1px;border-radius:3px;" title="{html.escape(tip, quote=True)}">'
            f"{text}</span>"
        )
    low, high = _background_rgb(-1.0), _background_rgb(1.0)
    legend = (
        '<div style="margin-top:10px;font-size:12px;display:flex;align-items:center;gap:6px;">'
        f"<span>{low_end:+.{precision}f}</span>"
        '<span style="display:inline-block;width:160px;height:10px;border:1px solid #ccc;'
        f'background:linear-gradient(to right,rgb{low},rgb{_WHITE_RGB},rgb{high});"></span>'
        f"<span>{high_end:+.{precision}f}</span>"
        f"<span>{html.escape(_scale_label(center, middle, precision))}</span></div>"
    )
    heading = f'<div style="font-weight:bold;margin-bottom:6px;">{html.escape(title)}</div>' if title else ""
    snippet = (
        '<div class="hf-genarm-token-rewards" style="font-family:ui-monospace,Menlo,Consolas,monospace;'
        'font-size:14px;line-height:2;white-space:pre-wrap;word-break:break-word;">'
        f"{heading}<div>{''.join(spans)}</div>{legend}</div>"
    )
    if not full_page:
        return snippet
    page_title = html.escape(title or "Token rewards")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>{page_title}</title>\n</head>\n<body style="margin:24px;">\n{snippet}\n</body>\n</html>\n'
    )


# --------------------------------------------------------------------------------------------- PNG
def _checked_output_path(path: str | os.PathLike) -> pathlib.Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike, got {type(path).__name__}.")
    output = pathlib.Path(path)
    if output.is_dir():
        raise ValueError(f"`path` ({output}) is a folder; pass a file name such as 'rewards.png'.")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"`path` ({output}): the folder {output.parent} does not exist.")
    return output


def _agg_figure(width: float, height: float, dpi: int) -> Any:
    """A figure drawn by its own Agg canvas, leaving pyplot and the user's backend alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _wrap_to_width(text: str, width: float, font_size: float, figure: Any, renderer: Any, dpi: int) -> list[str]:
    """Split `text` into lines no wider than `width` inches (long words, such as paths, are broken)."""

    def measured(line: str) -> float:
        artist = figure.text(0, 0, line, fontsize=font_size, fontweight="bold", parse_math=False)
        inches = artist.get_window_extent(renderer).width / dpi
        artist.remove()
        return inches

    characters = len(text)
    while characters > 1:
        lines = textwrap.wrap(text, characters) or [text]
        if all(measured(line) <= width for line in lines):
            return lines
        characters -= max(1, characters // 10)
    return textwrap.wrap(text, 1)


def _reward_colormap() -> Any:
    from matplotlib.colors import LinearSegmentedColormap

    ends = [tuple(channel / 255 for channel in rgb) for rgb in (_NEGATIVE_RGB, _WHITE_RGB, _POSITIVE_RGB)]
    return LinearSegmentedColormap.from_list("hf_genarm_reward", ends)


def save_token_reward_heatmap_png(
    tokens: Sequence[str],
    rewards: Sequence[float] | torch.Tensor,
    path: str | os.PathLike,
    *,
    center: float | str = "median",
    vmax: float | None = None,
    title: str | None = None,
    width: float = 8.0,
    font_size: float = 12.0,
    dpi: int = 150,
) -> pathlib.Path:
    """Draw tokens in wrapped rows on backgrounds coloured by reward, with a colour bar, and save the image.

    The picture follows figure 3 of the GenARM paper: red for rewards below `center`, white at `center`, green
    above it; `nan` rewards (unscored prompt tokens) are drawn grey without a box. Line breaks inside tokens
    start a new row; a title wider than the figure is wrapped. The file format follows the extension of `path`
    (PNG, SVG, PDF, ...).

    Args:
        tokens (`list[str]`):
            The tokens, decoded one by one.
        rewards (`list[float]` or 1-D `torch.Tensor`):
            One reward per token.
        path (`str` or `os.PathLike`):
            Output file; its folder must exist.
        center (`float`, `"median"` or `"mean"`, *optional*, defaults to `"median"`):
            Reward drawn white, as in `token_reward_heatmap_html`.
        vmax (`float`, *optional*):
            Distance from `center` drawn at full colour, as in `token_reward_heatmap_html`.
        title (`str`, *optional*):
            Title above the tokens, wrapped to the figure's width.
        width (`float`, *optional*, defaults to `8.0`):
            Figure width in inches; the height follows from the number of rows.
        font_size (`float`, *optional*, defaults to `12.0`):
            Font size of the tokens, in points.
        dpi (`int`, *optional*, defaults to `150`):
            Resolution of the saved image.

    Returns:
        `pathlib.Path`: the written file.

    Examples:

    ```python
    >>> import tempfile, pathlib
    >>> folder = tempfile.mkdtemp()
    >>> saved = save_token_reward_heatmap_png(["Good", " day", "!"], [0.5, -0.25, 0.0], f"{folder}/rewards.png")
    >>> saved.read_bytes()[:4] == b"\\x89PNG"
    True
    ```
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import TwoSlopeNorm

    tokens, values = _validate_tokens_and_rewards(tokens, rewards)
    scale = _resolve_scale(values, center, vmax)
    output = _checked_output_path(path)
    for name, value in (("width", width), ("font_size", font_size), ("dpi", dpi)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"`{name}` must be a positive number, got {value!r}.")

    margin, gap = 0.25, 0.03
    row_height = font_size * 2.0 / 72
    usable = width - 2 * margin
    if usable <= 0:
        raise ValueError(f"`width` ({width}) leaves no room for text; pass at least {2 * margin + 1} inches.")

    # Measure every token once on a scratch figure, then lay the rows out in inches.
    scratch = _agg_figure(width, 1.0, dpi)
    renderer = scratch.canvas.get_renderer()
    pieces: list[tuple[str, float]] = []
    for token in tokens:
        label = token.replace("\n", _NEWLINE_MARK)
        artist = scratch.text(0, 0, label, fontsize=font_size, parse_math=False)
        pieces.append((label, artist.get_window_extent(renderer).width / dpi))
        artist.remove()
    placements = []
    column, row = 0.0, 0
    for (label, text_width), token, reward in zip(pieces, tokens, values):
        if column > 0 and column + text_width > usable:
            column, row = 0.0, row + 1
        placements.append((label, column, row, reward))
        column += text_width + gap
        if "\n" in token:
            column, row = 0.0, row + 1
    rows = max(row for _, _, row, _ in placements) + 1
    title_lines = _wrap_to_width(title, usable, font_size + 1, scratch, renderer, dpi) if title else []

    title_line_height = (font_size + 1) * 1.5 / 72
    title_height = len(title_lines) * title_line_height + 0.15 if title_lines else 0.0
    colour_bar_height = 0.85
    height = margin + title_height + rows * row_height + colour_bar_height + margin / 2
    figure = _agg_figure(width, height, dpi)
    if title_lines:
        figure.text(
            0.5,
            1 - (margin + title_height / 2) / height,
            "\n".join(title_lines),
            ha="center",
            va="center",
            fontsize=font_size + 1,
            fontweight="bold",
            parse_math=False,
        )
    top = margin + title_height
    for label, column, row, reward in placements:
        y = 1 - (top + (row + 0.5) * row_height) / height
        x = (margin + column) / width
        if math.isnan(reward):
            figure.text(x, y, label, fontsize=font_size, va="center", ha="left", color=_UNSCORED_TEXT, parse_math=False)
            continue
        share = _share_of_scale(reward, scale)
        background = tuple(channel / 255 for channel in _background_rgb(share))
        figure.text(
            x,
            y,
            label,
            fontsize=font_size,
            va="center",
            ha="left",
            color=_text_colour(share),
            parse_math=False,
            bbox={"boxstyle": "square,pad=0.2", "facecolor": background, "edgecolor": "none"},
        )
    bar_axes = figure.add_axes((0.2, (margin / 2 + 0.45) / height, 0.6, 0.14 / height))
    low_end, middle, high_end = scale
    norm = TwoSlopeNorm(vcenter=middle, vmin=low_end, vmax=high_end)
    mappable = ScalarMappable(norm=norm, cmap=_reward_colormap())
    colour_bar = figure.colorbar(mappable, cax=bar_axes, orientation="horizontal")
    colour_bar.set_ticks([low_end, middle, high_end], labels=[f"{value:+.2f}" for value in scale])
    colour_bar.set_label(_scale_label(center, middle, 2), fontsize=max(font_size - 2, 6))
    colour_bar.ax.tick_params(labelsize=max(font_size - 3, 6))
    figure.savefig(output, dpi=dpi)
    return output


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both scores (higher is better), sorted by the first score."""
    front = []
    for point in sorted(set(points), key=lambda item: (-item[0], -item[1])):
        if not front or point[1] > front[-1][1]:
            front.append(point)
    return sorted(front)


def plot_tradeoff(
    points: Sequence[tuple[float, float]],
    labels: Sequence[str] | None,
    path: str | os.PathLike,
    *,
    series: Sequence[str] | None = None,
    xlabel: str = "judge 1 score",
    ylabel: str = "judge 2 score",
    title: str | None = None,
    show_front: bool = True,
    figsize: tuple[float, float] = (6.0, 4.5),
    dpi: int = 150,
) -> pathlib.Path:
    """Plot the scores two judges give to generations made with different weights, and save the figure.

    Each point is one decoding configuration (e.g. one `alpha` mix of two reward models, or one `beta`), placed
    at (score of judge 1, score of judge 2) and annotated with its label. Points of one `series` (a method:
    GenARM, best-of-N, ARGS, ...) are joined in the order given, so a sweep over `alpha` draws its trade-off
    curve; the Pareto front over all points (higher is better on both axes) is drawn dashed.

    Args:
        points (`list[tuple[float, float]]`):
            `(judge 1 score, judge 2 score)` per configuration.
        labels (`list[str]`, *optional*):
            Annotation per point, e.g. `"α=0.3"`; `None` for none.
        path (`str` or `os.PathLike`):
            Output file; its folder must exist. The format follows the extension.
        series (`list[str]`, *optional*):
            Name of the method each point belongs to; one line and legend entry per name. Defaults to one series.
        xlabel (`str`, *optional*, defaults to `"judge 1 score"`): Label of the x axis.
        ylabel (`str`, *optional*, defaults to `"judge 2 score"`): Label of the y axis.
        title (`str`, *optional*): Figure title.
        show_front (`bool`, *optional*, defaults to `True`): Draw the Pareto front.
        figsize (`tuple[float, float]`, *optional*, defaults to `(6.0, 4.5)`): Figure size in inches.
        dpi (`int`, *optional*, defaults to `150`): Resolution of the saved image.

    Returns:
        `pathlib.Path`: the written file.

    Examples:

    ```python
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> points = [(0.1, 0.9), (0.5, 0.6), (0.8, 0.2)]
    >>> plot_tradeoff(points, ["α=0", "α=0.5", "α=1"], f"{folder}/front.png", xlabel="helpful", ylabel="harmless").name
    'front.png'
    ```
    """
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence) or not points:
        raise ValueError("`points` must be a non-empty list of (x, y) score pairs.")
    coordinates = []
    for index, point in enumerate(points):
        if isinstance(point, torch.Tensor):
            point = point.tolist()
        if (
            not isinstance(point, Sequence)
            or len(point) != 2
            or not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in point)
        ):
            raise ValueError(
                f"`points[{index}]` must be a pair of numbers (judge 1 score, judge 2 score), got {point!r}."
            )
        if not all(math.isfinite(value) for value in point):
            raise ValueError(f"`points[{index}]` must be finite, got {point!r}.")
        coordinates.append((float(point[0]), float(point[1])))
    for name, values in (("labels", labels), ("series", series)):
        if values is None:
            continue
        if isinstance(values, str) or not isinstance(values, Sequence):
            raise TypeError(f"`{name}` must be a list of strings (one per point), got {type(values).__name__}.")
        if len(values) != len(coordinates):
            raise ValueError(f"`{name}` has {len(values)} entries for {len(coordinates)} points; pass one per point.")
    output = _checked_output_path(path)

    figure = _agg_figure(figsize[0], figsize[1], dpi)
    axes = figure.add_subplot()
    names = list(series) if series is not None else [None] * len(coordinates)
    for name in dict.fromkeys(names):
        members = [point for point, owner in zip(coordinates, names) if owner == name]
        axes.plot(*zip(*members), marker="o", linewidth=1.5, markersize=5, label=name)
    if labels is not None:
        for (x, y), label in zip(coordinates, labels):
            axes.annotate(str(label), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    if show_front and len(coordinates) > 1:
        front = _pareto_front(coordinates)
        axes.plot(*zip(*front), linestyle="--", color="grey", linewidth=1, label="Pareto front", zorder=0)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if series is not None or (show_front and len(coordinates) > 1):
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output, dpi=dpi)
    return output
