"""TooledModel: every statistic of every group against a direct computation, awkward modules, clean removal."""

from __future__ import annotations

import copy
import inspect
import io
import math
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from flexlogger.config.options import MODEL_ARGUMENTS
from flexlogger.errors import ConfigError, ModelAnomalyWarning, UnknownNameError
from flexlogger.model.stats import STATS
from flexlogger.model.tooled import GROUPS, TooledModel

ALL_STATS = STATS


def direct(stat: str, t: Tensor) -> float:
    """The statistic computed the obvious way, in float64."""
    t = t.detach().double()
    return {
        "mean": lambda: t.mean(),
        "std": lambda: t.std(),
        "min": lambda: t.min(),
        "max": lambda: t.max(),
        "abs_mean": lambda: t.abs().mean(),
        "norm": lambda: t.norm(),
        "zero_frac": lambda: (t == 0).double().mean(),
        "nonfinite": lambda: (~torch.isfinite(t)).sum().double(),
        "snr": lambda: t.mean().abs() / t.std(),
    }[stat]().item()


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


def known_model() -> nn.Sequential:
    """Linear(3, 4) -> ReLU -> Linear(4, 2) in float64 with fixed weights (some ReLU outputs are zero)."""
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [1.5, 0.5, -0.5], [-2.0, 0.75, 1.0], [0.1, 0.2, 0.3]]))
        model[0].bias.copy_(torch.tensor([0.1, -0.2, 0.3, -0.4]))
        model[2].weight.copy_(torch.tensor([[1.0, -0.5, 0.25, 2.0], [-1.0, 0.5, 1.5, -0.25]]))
        model[2].bias.copy_(torch.tensor([0.05, -0.05]))
    return model


X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.5, 1.0, 0.0]], dtype=torch.float64)
Y = torch.tensor([[0.5, -0.5], [1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)


def expected_tensors(model: nn.Sequential, x: Tensor, y: Tensor) -> dict[str, dict[str, Tensor]]:
    """Every group's tensor computed directly with torch.autograd.grad on an unhooked copy of the model."""
    m = copy.deepcopy(model)
    x = x.clone().requires_grad_(True)
    h0 = m[0](x)
    a = F.relu(h0)
    out = m[2](a)
    loss = F.mse_loss(out, y)
    params = [m[0].weight, m[0].bias, m[2].weight, m[2].bias]
    gx, gh0, ga, gout, gw0, gb0, gw2, gb2 = torch.autograd.grad(loss, [x, h0, a, out, *params])
    return {
        "0": {"Inputs": x, "Outputs": h0, "Grad_in": gx, "Grad_out": gh0, "Weights": m[0].weight,
              "Weight_grad": gw0, "bias": m[0].bias, "bias_grad": gb0},
        "1": {"Inputs": h0, "Outputs": a, "Grad_in": gh0, "Grad_out": ga},
        "2": {"Inputs": a, "Outputs": out, "Grad_in": ga, "Grad_out": gout, "Weights": m[2].weight,
              "Weight_grad": gw2, "bias": m[2].bias, "bias_grad": gb2},
    }


def run_step(model: nn.Module, x: Tensor = X, y: Tensor = Y) -> Tensor:
    model.zero_grad(set_to_none=True)
    loss = F.mse_loss(model(x.clone().requires_grad_(True)), y)
    loss.backward()
    return loss


@pytest.fixture
def model() -> nn.Sequential:
    return known_model()


# ------------------------------------------------------------------------------------------------ exact values
def test_every_stat_of_every_group_equals_direct_computation(model: nn.Sequential) -> None:
    expected = expected_tensors(model, X, Y)
    tm = TooledModel(model, stats=[s for s in ALL_STATS if s != "update_ratio"], params=["bias"])
    run_step(model)
    got = tm.get_dict()
    assert set(got) == {"0", "1", "2"}
    for layer, groups in expected.items():
        assert set(got[layer]) == set(groups), layer
        for group, t in groups.items():
            for stat in ALL_STATS:
                if stat == "update_ratio":
                    continue
                value = got[layer][group][stat]
                assert close(value, direct(stat, t)), (layer, group, stat, value, direct(stat, t))
    # the relu zeroes some units: the fraction of zeros is a real, nonzero check
    assert 0 < got["1"]["Outputs"]["zero_frac"] < 1
    tm.remove()


def test_update_ratio_and_weights_after_optimizer_step(model: nn.Sequential) -> None:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tm = TooledModel(model, stats=["mean", "update_ratio"], params=["bias"])
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    run_step(model)
    optim.step()
    stats = tm.step()
    assert stats is not None
    for layer in ("0", "2"):
        for group, pname in (("Weights", "weight"), ("bias", "bias")):
            w0, w1 = before[f"{layer}.{pname}"], getattr(model[int(layer)], pname).detach()
            assert close(stats[layer][group]["update_ratio"], ((w1 - w0).norm() / w0.norm()).item())
            assert close(stats[layer][group]["mean"], w1.mean().item())  # the weights after the update
        assert "update_ratio" not in stats[layer]["Weight_grad"]  # applies to parameter values only
    assert "update_ratio" not in stats["1"].get("Outputs", {})


def test_update_ratio_is_zero_without_optimizer_step(model: nn.Sequential) -> None:
    tm = TooledModel(model, stats=["update_ratio"])
    run_step(model)
    assert tm.get_dict()["0"]["Weights"] == {"update_ratio": 0.0}
    assert tm.get_dict()["0"]["Outputs"] == {}


def test_histograms_count_every_value(model: nn.Sequential) -> None:
    tm = TooledModel(model, histograms=["Weights", "Outputs", "Grad_out"], bins=7)
    run_step(model)
    hists = tm.get_histograms()
    expected = expected_tensors(model, X, Y)
    for layer, group in (("0", "Weights"), ("2", "Outputs"), ("1", "Grad_out")):
        h, t = hists[layer][group], expected[layer][group]
        assert len(h.counts) == 7 and sum(h.counts) == t.numel()
        assert close(h.lo, t.min().item()) and close(h.hi, t.max().item())
        assert h.edges[0] == h.lo and close(h.edges[-1], h.hi)
        counts, _ = np.histogram(t.detach().numpy(), bins=7, range=(h.lo, h.hi))
        assert list(h.counts) == counts.tolist()


def test_histograms_true_means_weights_and_weight_grad(model: nn.Sequential) -> None:
    tm = TooledModel(model, histograms=True)
    run_step(model)
    assert {layer: sorted(g) for layer, g in tm.get_histograms().items()} == {
        "0": ["Weight_grad", "Weights"], "2": ["Weight_grad", "Weights"]}


def test_histogram_ignores_nan() -> None:
    from flexlogger.model.stats import histogram
    out = histogram(torch.tensor([1.0, float("nan"), 3.0, float("inf"), 2.0]), bins=2).tolist()
    assert out == [1.0, 2.0, 1.0, 3.0]


def numpy_counts(x: Tensor, bins: int) -> list[float]:
    """np.histogram's counts of the finite values over their (lo, hi) range, in float64."""
    a = x.double().numpy()
    a = a[np.isfinite(a)]
    lo, hi = (a.min(), a.max()) if a.size else (0.0, 0.0)
    return [float(c) for c in np.histogram(a, bins, range=(lo, hi))[0]]


def test_histogram_counts_equal_numpy_exactly() -> None:
    from flexlogger.model.stats import histogram
    gen = torch.Generator().manual_seed(0)
    mismatches = []
    for trial in range(600):
        n = int(torch.randint(2, 2000, (1,), generator=gen))
        x = torch.randn(n, dtype=torch.float64, generator=gen) * 10.0 ** int(torch.randint(-6, 6, (1,), generator=gen))
        if trial % 2 == 0:  # values on a grid: many fall exactly on (or an ulp from) a bin edge
            x = torch.round(x * 7) / 7
        bins = int(torch.randint(1, 64, (1,), generator=gen))
        out = histogram(x, bins).tolist()
        if out[:bins] != numpy_counts(x, bins):
            mismatches.append((trial, bins))
        assert out[bins:] == ([x.min().item(), x.max().item()] if x.min() < x.max() else
                              [x.min().item() - 0.5, x.max().item() + 0.5])
    assert mismatches == []
    # torch.histc, the previous implementation, is not exact on such data: the test can tell the two apart
    x = torch.round(torch.randn(1000, dtype=torch.float64, generator=gen) * 7) / 7
    lo, hi = x.min(), x.max()
    assert any(torch.histc((x - lo) / (hi - lo), bins=b, min=0.0, max=1.0).tolist() != numpy_counts(x, b)
               for b in range(2, 64))


def test_histogram_edges_max_and_non_finite_values() -> None:
    from flexlogger.model.stats import histogram
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert histogram(x, 4).tolist() == [1.0, 1.0, 1.0, 2.0, 0.0, 4.0]  # edges in the upper bin, the max in the last
    assert histogram(x, 4).dtype == torch.float64
    bad = torch.tensor([float("-inf"), 0.0, float("nan"), 4.0, 1.0, float("inf"), 2.0, 3.0])
    assert histogram(bad, 4).tolist() == [1.0, 1.0, 1.0, 2.0, 0.0, 4.0]  # NaN/Inf not counted, nor in lo/hi
    assert histogram(torch.full((3,), 2.0), 3).tolist() == [0.0, 3.0, 0.0, 1.5, 2.5]  # numpy widens by 0.5
    assert histogram(torch.tensor([float("nan"), float("inf")]), 2).tolist() == [0.0, 0.0, -0.5, 0.5]
    assert histogram(torch.zeros(0), 2).tolist() == [0.0, 0.0, -0.5, 0.5]
    half = torch.randn(1000, generator=torch.Generator().manual_seed(1)).half()
    assert histogram(half, 9).tolist()[:9] == numpy_counts(half.float(), 9)


def test_misspelt_keyword_names_tooled_model_and_the_closest_keyword(model: nn.Sequential) -> None:
    with pytest.raises(ConfigError, match=r"^TooledModel\(\): unknown keyword argument 'metrics' \(did you mean "
                                          r"'stats'\?\); valid keyword arguments: model, stats, groups, params, "
                                          r"layers, every, histograms, bins, anomaly, explode, recorder, sync$"):
        TooledModel(model, metrics=["mean"])  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"^TooledModel\(\): unknown keyword argument 'layer' \(did you mean "
                                          r"'layers'"):
        TooledModel(model, layer=nn.Linear)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"unknown keyword argument 'zzz'; valid keyword arguments: model, stats"):
        TooledModel(model, zzz=1)  # type: ignore[call-arg]
    assert not model[0]._forward_hooks  # checked before any hook is attached
    assert TooledModel(model=model, stats=["mean"]).stats == ("mean",)  # every real keyword still works


def test_single_element_std_is_nan_without_warning() -> None:
    model = nn.Linear(1, 1)
    tm = TooledModel(model, groups=["Weights"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = tm.get_dict()
    assert list(d) == ["(model)"]  # a leaf root is its own layer
    assert math.isnan(d["(model)"]["Weights"]["std"])
    assert d["(model)"]["Weights"]["mean"] == model.weight.item()


def test_float32_std_of_constant_and_near_constant_tensors() -> None:
    """The one-pass std cancels when |mean| >> std; the min/max bound keeps it exact or within the spread."""
    model = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64))  # BatchNorm's weight starts as ones
    with torch.no_grad():
        model[0].weight.fill_(0.7)
        model[0].weight[0, 0] += 1e-6
    tm = TooledModel(model, groups=["Weights", "Grad_out"])
    model(torch.randn(32, 64)).sum().backward()  # the gradient of a sum is all ones
    d = tm.get_dict()
    assert d["1"]["Weights"]["std"] == 0.0 and d["1"]["Grad_out"]["std"] == 0.0
    w = model[0].weight.detach().double()
    near, spread = d["0"]["Weights"]["std"], (w.max() - w.min()).item()  # about 1e-6
    assert near <= spread / 2 * math.sqrt(4096 / 4095)  # unbounded, the cancellation gave ~2e-4 here
    tm.remove()


def test_stats_order_follows_request(model: nn.Sequential) -> None:
    tm = TooledModel(model, stats=["max", "norm", "min"], groups=["Weights"])
    assert list(tm.get_dict()["0"]["Weights"]) == ["max", "norm", "min"]


# ------------------------------------------------------------------------------------------------ steps, every
def test_every_n_records_only_every_nth_step_and_detaches_hooks(model: nn.Sequential) -> None:
    tm = TooledModel(model, every=3)
    returned = []
    for i in range(7):
        assert tm.recording == (i % 3 == 0)
        hooked = bool(model[0]._forward_hooks) and bool(model[0]._forward_pre_hooks)
        assert hooked == (i % 3 == 0), i
        run_step(model)
        returned.append(tm.step() is not None)
    assert returned == [True, False, False, True, False, False, True]
    assert tm.step_index == 7 and tm.last_step == 6


def test_get_dict_shows_current_step_then_last_recorded(model: nn.Sequential) -> None:
    tm = TooledModel(model, groups=["Outputs"], every=2)
    run_step(model)
    first = tm.get_dict()["2"]["Outputs"]["mean"]
    assert tm.step() == {"0": {"Outputs": tm.get_dict()["0"]["Outputs"]}, "1": tm.get_dict()["1"],
                         "2": {"Outputs": {"mean": first, "std": tm.get_dict()["2"]["Outputs"]["std"]}}}
    run_step(model, X * 2)  # step 1: not recorded
    assert tm.get_dict()["2"]["Outputs"]["mean"] == first
    tm.step()
    assert tm.get_dict()["2"]["Outputs"]["mean"] == first  # step 2 has recorded nothing yet
    run_step(model, X * 2)
    assert tm.get_dict()["2"]["Outputs"]["mean"] != first


def test_gradients_from_an_ended_step_are_ignored(model: nn.Sequential) -> None:
    tm = TooledModel(model, groups=["Grad_out"])
    loss = F.mse_loss(model(X), Y)
    tm.step()
    loss.backward()  # belongs to step 0, which has ended
    assert tm.get_dict()["2"] == {}


# ---------------------------------------------------------------------------------------------- layer choice
@pytest.mark.parametrize(("layers", "expected"), [
    (None, ["0", "1", "2"]),
    (nn.Linear, ["0", "2"]),
    ((nn.Linear, nn.ReLU), ["0", "1", "2"]),
    ("[02]", ["0", "2"]),
    (re.compile("^1$"), ["1"]),
    (lambda name, m: isinstance(m, nn.ReLU), ["1"]),
    (["0", nn.ReLU], ["0", "1"]),
    ("*", ["(model)", "0", "1", "2"]),
])
def test_layer_selection(model: nn.Sequential, layers: object, expected: list[str]) -> None:
    tm = TooledModel(model, layers=layers)  # type: ignore[arg-type]
    assert tm.layers == expected


def test_nested_modules_are_named_as_in_named_modules() -> None:
    model = nn.Sequential()
    model.add_module("encoder", nn.Sequential(nn.Linear(3, 4), nn.Tanh()))
    model.add_module("head", nn.Linear(4, 1))
    model.double()
    tm = TooledModel(model)
    assert tm.layers == ["encoder.0", "encoder.1", "head"]
    tm2 = TooledModel(model, layers="encoder")  # a container: its inputs and outputs, no weight
    x = torch.randn(5, 3, dtype=torch.float64)
    out = model(x)
    out.sum().backward()
    enc = tm2.get_dict()["encoder"]
    assert set(enc) == {"Inputs", "Outputs", "Grad_out"}
    assert close(enc["Outputs"]["mean"], model.encoder(x).mean().item())
    assert set(tm.get_dict()["encoder.0"]) == {"Inputs", "Outputs", "Grad_out", "Weights", "Weight_grad"}


def test_unfrozen_parameters_are_picked_up(model: nn.Sequential) -> None:
    for p in model[0].parameters():
        p.requires_grad_(False)
    tm = TooledModel(model)
    run_step(model, X.clone())  # the input requires grad: Grad_in of layer 0 still exists
    assert "Weight_grad" not in tm.get_dict()["0"] and "Weight_grad" in tm.get_dict()["2"]
    tm.step()
    for p in model[0].parameters():
        p.requires_grad_(True)
    run_step(model)
    got = tm.get_dict()["0"]
    assert close(got["Weight_grad"]["mean"], expected_tensors(model, X, Y)["0"]["Weight_grad"].mean().item())


# ---------------------------------------------------------------------------------------------- awkward cases
class Twice(nn.Module):
    """Applies the same Linear twice."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2).double()

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(torch.tanh(self.lin(x)))


def test_module_called_twice_keeps_the_last_call() -> None:
    torch.manual_seed(0)
    model = Twice()
    tm = TooledModel(model, layers="lin")
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    out = model(x)
    loss = (out ** 2).sum()
    loss.backward()
    got = tm.get_dict()["lin"]
    h = model.lin(x)
    t = torch.tanh(h)
    out2 = model.lin(t)
    g_out2, g_t = torch.autograd.grad((out2 ** 2).sum(), [out2, t])
    assert close(got["Inputs"]["mean"], t.mean().item())
    assert close(got["Outputs"]["std"], out2.std().item())
    assert close(got["Grad_out"]["mean"], g_out2.mean().item())
    assert close(got["Grad_in"]["std"], g_t.std().item())


def test_gradient_accumulation_keeps_the_last_micro_batch(model: nn.Sequential) -> None:
    tm = TooledModel(model, groups=["Inputs", "Grad_out"])
    x1, x2 = X[:2], X[1:]
    for xb, yb in ((x1, Y[:2]), (x2, Y[1:])):
        F.mse_loss(model(xb), yb).backward()
    got = tm.step()
    assert got is not None
    out = model(x2)
    g = torch.autograd.grad(F.mse_loss(out, Y[1:]), out)[0]
    assert close(got["0"]["Inputs"]["mean"], x2.mean().item())
    assert close(got["2"]["Grad_out"]["std"], g.std().item())


class Pair(nn.Module):
    """Takes a pair, returns a pair: (a @ W, a * b)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64))

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        return a @ self.weight, a * b


def test_tuple_inputs_and_outputs_are_taken_together() -> None:
    model = Pair()
    tm = TooledModel(model, stats=["mean", "std", "norm"])
    a = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[2.0, 1.0], [-1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    u, v = model(a, b)
    loss = (u ** 2).sum() + (3 * v).sum()
    loss.backward()
    got = tm.get_dict()["(model)"]
    u2, v2 = Pair()(a, b)
    gu, gv, ga, gb = torch.autograd.grad((u2 ** 2).sum() + (3 * v2).sum(), [u2, v2, a, b])
    cat = torch.cat
    for stat in ("mean", "std", "norm"):
        assert close(got["Inputs"][stat], direct(stat, cat([a.flatten(), b.flatten()])))
        assert close(got["Outputs"][stat], direct(stat, cat([u2.flatten(), v2.flatten()])))
        assert close(got["Grad_out"][stat], direct(stat, cat([gu.flatten(), gv.flatten()])))
        assert close(got["Grad_in"][stat], direct(stat, cat([ga.flatten(), gb.flatten()])))


def test_inplace_relu_gets_exact_values(model: nn.Sequential) -> None:
    model[1] = nn.ReLU(inplace=True)
    expected = expected_tensors(model, X, Y)
    tm = TooledModel(model, stats=["mean", "std", "min", "zero_frac"])
    run_step(model)
    got = tm.get_dict()
    for layer, groups in expected.items():
        for group, t in groups.items():
            if group in GROUPS:
                for stat in ("mean", "std", "min", "zero_frac"):
                    assert close(got[layer][group][stat], direct(stat, t)), (layer, group, stat)
    assert got["1"]["Inputs"]["min"] < 0  # read before the ReLU overwrote its input


def test_inplace_relu_next_to_a_full_backward_hook_elsewhere() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2), nn.Tanh()).double()
    seen = []
    handle = model[3].register_full_backward_hook(lambda m, gi, go: seen.append(go[0].clone()))
    tm = TooledModel(model)
    out = model(X)
    out.sum().backward()
    assert close(tm.get_dict()["3"]["Grad_out"]["mean"], seen[0].mean().item())
    tm.remove()
    handle.remove()


def test_agrees_with_a_full_backward_hook_on_the_same_layer(model: nn.Sequential) -> None:
    seen: list[tuple[Tensor, Tensor]] = []
    handle = model[2].register_full_backward_hook(lambda m, gi, go: seen.append((gi[0].clone(), go[0].clone())))
    tm = TooledModel(model, stats=["mean", "norm"])
    run_step(model)
    got = tm.get_dict()["2"]
    for stat in ("mean", "norm"):
        assert close(got["Grad_in"][stat], direct(stat, seen[0][0]))
        assert close(got["Grad_out"][stat], direct(stat, seen[0][1]))
    tm.remove()
    assert list(model[2]._backward_hooks) == [handle.id]
    handle.remove()


def test_skip_connection_grad_in_is_local_to_the_layer() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3, bias=False).double()

        def forward(self, x: Tensor) -> Tensor:
            return self.lin(x) + x

    model = Residual()
    tm = TooledModel(model, layers="lin")
    x = X.clone().requires_grad_(True)
    model(x).pow(2).sum().backward()
    x2 = X.clone().requires_grad_(True)
    h = model.lin(x2)
    gh = torch.autograd.grad((h + x2).pow(2).sum(), h)[0]
    assert close(tm.get_dict()["lin"]["Grad_in"]["mean"], (gh @ model.lin.weight).mean().item())


def test_a_tensor_changed_in_place_between_layers_is_reduced_again() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 3).double(), nn.Linear(3, 1).double()

        def forward(self, x: Tensor) -> Tensor:
            h = self.a(x)
            h.mul_(2.0)  # after a's Outputs were recorded, before b reads its Inputs
            return self.b(h)

    model = Scaled()
    tm = TooledModel(model, groups=["Inputs", "Outputs"])
    model(X)
    got = tm.get_dict()
    assert close(got["b"]["Inputs"]["mean"], 2 * got["a"]["Outputs"]["mean"])
    assert close(got["b"]["Inputs"]["mean"], (2 * model.a(X)).mean().item())


def test_no_grad_forward_has_no_backward_groups(model: nn.Sequential) -> None:
    run_step(model)  # leaves stale .grad on the weights
    tm = TooledModel(model)
    with torch.no_grad():
        model(X)
    assert {layer: sorted(g) for layer, g in tm.get_dict().items()} == {
        "0": ["Inputs", "Outputs", "Weights"], "1": ["Inputs", "Outputs"], "2": ["Inputs", "Outputs", "Weights"]}


def test_eval_mode_with_dropout(model: nn.Sequential) -> None:
    model.insert(2, nn.Dropout(0.5))
    model.eval()
    tm = TooledModel(model)
    run_step(model)
    got = tm.get_dict()
    assert close(got["2"]["Outputs"]["mean"], got["2"]["Inputs"]["mean"])  # dropout is the identity in eval
    assert set(got["3"]) == set(GROUPS)


def test_multihead_attention_out_proj_gradient_without_its_forward() -> None:
    # MultiheadAttention uses out_proj.weight directly, never calling out_proj: its gradient is still recorded
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(4, 2, batch_first=True).double()
    tm = TooledModel(mha, stats=["mean", "norm"])
    assert tm.layers == ["out_proj"]
    q = torch.randn(2, 3, 4, dtype=torch.float64)
    mha(q, q, q)[0].sum().backward()
    got = tm.get_dict()["out_proj"]
    assert set(got) == {"Weights", "Weight_grad"}  # no activations: out_proj's forward never ran
    assert close(got["Weight_grad"]["norm"], direct("norm", mha.out_proj.weight.grad))  # type: ignore[arg-type]
    tm.step()
    with torch.no_grad():
        mha(q, q, q)
    ended = tm.step()
    assert ended is not None and set(ended["out_proj"]) == {"Weights"}  # no backward: the stale .grad is not shown
    tm.remove()


class Tied(nn.Module):
    """An embedding whose weight the output layer shares; a forward with a keyword-only argument."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(6, 3).double()
        self.out = nn.Linear(3, 6, bias=False).double()
        self.out.weight = self.emb.weight

    def forward(self, idx: Tensor, *, scale: float = 1.0) -> Tensor:
        return self.out(self.emb(idx)) * scale


def test_tied_weights_and_keyword_arguments() -> None:
    torch.manual_seed(0)
    model = Tied()
    tm = TooledModel(model, stats=["mean", "norm"])
    idx = torch.tensor([0, 2, 5])
    F.cross_entropy(model(idx, scale=2.0), torch.tensor([1, 2, 3])).backward()
    got = tm.get_dict()
    grad = model.emb.weight.grad
    assert grad is not None
    for layer in ("emb", "out"):  # one parameter, both uses' gradients summed in it
        assert close(got[layer]["Weight_grad"]["norm"], direct("norm", grad))
        assert close(got[layer]["Weights"]["mean"], direct("mean", model.emb.weight))
    assert close(got["out"]["Inputs"]["mean"], direct("mean", model.emb(idx)))
    tm.remove()


class Gate(nn.Module):
    """A layer taking its tensors as keyword arguments, as transformer blocks are often called."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([0.5, -2.0], dtype=torch.float64))

    def forward(self, hidden: Tensor, *, gate: Tensor, mask: Tensor | None = None) -> Tensor:
        out = hidden * self.weight * torch.sigmoid(gate)
        return out if mask is None else out.masked_fill(mask, 0.0)


class KeywordCalls(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2).double()
        self.gate = Gate()

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        return self.gate(hidden=self.lin(input=x), gate=g, mask=x > 1.5)


def test_inputs_passed_as_keyword_arguments() -> None:
    torch.manual_seed(0)
    model = KeywordCalls()
    tm = TooledModel(model, stats=["mean", "norm"])
    x = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    g = torch.tensor([[0.3, -0.2], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    h = model.lin(x).detach().requires_grad_(True)
    out = model.gate(h, gate=g, mask=x > 1.5)
    gh, gg = torch.autograd.grad(out.pow(2).sum(), [h, g])
    model(x, g).pow(2).sum().backward()
    got = tm.get_dict()
    assert close(got["lin"]["Inputs"]["mean"], direct("mean", x))  # lin(input=x)
    both = torch.cat([h.reshape(-1), g.reshape(-1)])  # hidden, then gate (the bool mask is not a float tensor)
    assert close(got["gate"]["Inputs"]["norm"], direct("norm", both))
    assert close(got["gate"]["Grad_in"]["norm"], direct("norm", torch.cat([gh.reshape(-1), gg.reshape(-1)])))
    assert close(got["lin"]["Grad_out"]["norm"], direct("norm", gh))
    tm.remove()


def test_lstm_tuple_output_and_batchnorm_in_eval() -> None:
    torch.manual_seed(0)
    lstm, bn = nn.LSTM(3, 4, batch_first=True).double(), nn.BatchNorm1d(4).double().eval()
    with torch.no_grad():
        bn.running_mean.fill_(0.5)
        bn.running_var.fill_(4.0)
    tm = TooledModel(nn.ModuleList([lstm, bn]), stats=["mean", "norm"], params=["running_mean"])
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    out, (h, c) = lstm(x)
    y = bn(out[:, -1])
    y.sum().backward()
    got = tm.get_dict()
    # the LSTM's output (out, (h, c)) is taken together; it has no `weight` (weight_ih_l0, ...)
    assert set(got["0"]) == {"Inputs", "Outputs", "Grad_out"}
    assert close(got["0"]["Outputs"]["norm"], direct("norm", torch.cat([out.reshape(-1), h.reshape(-1),
                                                                       c.reshape(-1)])))
    assert close(got["1"]["Outputs"]["mean"], direct("mean", (out[:, -1] - 0.5) / math.sqrt(4.0 + bn.eps)))
    assert close(got["1"]["running_mean"]["mean"], 0.5)  # eval: running statistics untouched
    assert close(got["1"]["Weight_grad"]["mean"], direct("mean", bn.weight.grad))  # type: ignore[arg-type]
    tm.remove()


@pytest.mark.parametrize("sparse", [False, True])
def test_embedding_integer_inputs_and_sparse_gradients(sparse: bool) -> None:
    model = nn.Sequential(nn.Embedding(5, 3, sparse=sparse), nn.Linear(3, 1)).double()
    tm = TooledModel(model, stats=["mean", "zero_frac"])
    idx = torch.tensor([[0, 2], [2, 4]])
    model(idx).sum().backward()
    got = tm.get_dict()["0"]
    assert set(got) == {"Outputs", "Grad_out", "Weights", "Weight_grad"}  # integer inputs: no Inputs/Grad_in
    dense = model[0].weight.grad.to_dense()  # type: ignore[union-attr]
    assert close(got["Weight_grad"]["mean"], dense.mean().item())
    assert close(got["Weight_grad"]["zero_frac"], 6 / 15)  # rows 1 and 3 were not used


def test_half_precision_statistics_are_float32_accurate() -> None:
    w = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    model = nn.Linear(2, 2, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        model.weight.copy_(w)
    tm = TooledModel(model, groups=["Weights"])
    assert close(tm.get_dict()["(model)"]["Weights"]["mean"], model.weight.float().mean().item())


# ---------------------------------------------------------------------------------------------- anomaly check
def test_nan_weights_warn_naming_the_first_layer_in_forward_order(model: nn.Sequential) -> None:
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    tm = TooledModel(model)
    run_step(model)
    with pytest.warns(ModelAnomalyWarning, match=r"NaN/Inf values first appeared in layer '2' \(group Weights\)"):
        tm.step()


def test_nan_arising_in_backward_names_the_layer_where_it_started() -> None:
    class Sqrt(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.sqrt(x)

    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), Sqrt(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
        model[0].bias.zero_()
    tm = TooledModel(model)
    model(torch.ones(3, 2)).sum().backward()  # sqrt(0) is finite, its gradient is not
    with pytest.warns(ModelAnomalyWarning, match=r"first appeared in layer '2' \(group Grad_in\)"):
        tm.step()


def test_exploding_norm_warns(model: nn.Sequential) -> None:
    tm = TooledModel(model, groups=["Outputs"], explode=100.0)
    run_step(model)
    tm.step()
    with torch.no_grad():
        model[2].weight.mul_(1000.0)
    run_step(model)
    with pytest.warns(ModelAnomalyWarning, match=r"exploding L2 norm .* layer '2' \(group Outputs\)"):
        tm.step()


def test_anomaly_false_stays_quiet(model: nn.Sequential) -> None:
    with torch.no_grad():
        model[0].weight.fill_(float("inf"))
    tm = TooledModel(model, anomaly=False, stats=["max"])
    run_step(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tm.step() is not None


# ---------------------------------------------------------------------------------------------- table, remove
def test_table_prints_and_returns(model: nn.Sequential, capsys: pytest.CaptureFixture[str]) -> None:
    tm = TooledModel(model)
    run_step(model)
    text = tm.table()
    assert capsys.readouterr().out == text + "\n"
    lines = text.splitlines()
    for g in GROUPS:
        assert g in lines[0]
    assert lines[1].split() == ["mean", "std"] * len(GROUPS)
    assert [line.split()[:2] for line in lines[3:]] == [["0", "Linear"], ["1", "ReLU"], ["2", "Linear"]]
    assert f"{tm.get_dict()['2']['Outputs']['mean']:.4g}" in lines[5]
    buf = io.StringIO()
    short = tm.table(groups=["Weights"], stats="mean", file=buf)
    assert buf.getvalue() == short + "\n" and "Outputs" not in short
    assert tm.table(show=False) == text
    assert capsys.readouterr().out == ""


def test_remove_leaves_the_model_exactly_as_it_was(model: nn.Sequential) -> None:
    model[1] = nn.ReLU(inplace=True)
    attrs = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs")
    before = {(n, a): dict(getattr(m, a)) for n, m in model.named_modules() for a in attrs}
    state = copy.deepcopy(model.state_dict())
    with TooledModel(model, stats=ALL_STATS, params=["bias"], histograms=True) as tm:
        run_step(model)
        assert model[0]._forward_hooks
    assert {(n, a): dict(getattr(m, a)) for n, m in model.named_modules() for a in attrs} == before
    assert all(not v for v in before.values())
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert "removed" in repr(tm)
    tm.remove()  # idempotent
    loss = F.mse_loss(model(X), Y)
    loss.backward()
    assert tm.step() is None and not model[0]._forward_hooks


def test_repr(model: nn.Sequential) -> None:
    assert repr(TooledModel(model, every=5)) == (
        "TooledModel(3 layers, groups=['Grad_in', 'Grad_out', 'Inputs', 'Outputs', 'Weights', 'Weight_grad'], "
        "stats=['mean', 'std'], every=5, step=0)")


# ---------------------------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"stats": ["mean", "stdev"]}, UnknownNameError, r"unknown statistic 'stdev' \(did you mean 'std'\?\); valid"),
    ({"stats": []}, ConfigError, r"expected at least one statistic in `stats`, got \[\]"),
    ({"groups": ["Weight"]}, UnknownNameError, r"unknown group 'Weight' \(did you mean 'Weights'"),
    ({"groups": ["bias"]}, UnknownNameError, r"unknown group 'bias'.*valid groups: "),
    ({"params": ["weight"]}, ConfigError, r"expected `params` to name parameters other than 'weight'"),
    ({"every": 0}, ConfigError, r"expected `every` to be an int >= 1, but got 0"),
    ({"every": 2.5}, ConfigError, r"expected `every` to be an int >= 1, but got 2.5"),
    ({"bins": 0}, ConfigError, r"expected `bins` to be an int >= 1, but got 0"),
    ({"explode": 0.5}, ConfigError, r"expected `explode` to be a number > 1, but got 0.5"),
    ({"anomaly": "yes"}, ConfigError, r"^TooledModel\(\): expected `anomaly` to be True or False, but got 'yes'$"),
    ({"explode": "big"}, ConfigError, r"expected `explode` to be a number > 1, but got 'big'"),
    ({"params": ["bias", "bais"]}, ConfigError, r"expected `params` to name parameters or buffers of the watched "
                                                r"layers, but no watched layer has 'bais'; theirs: bias, weight$"),
    ({"params": "bias", "layers": nn.ReLU}, ConfigError, r"no watched layer has 'bias'; theirs: \(none\)$"),
    ({"histograms": ["Grads"]}, UnknownNameError, r"unknown recorded group 'Grads'"),
    ({"layers": "conv*"}, ConfigError, r"`layers='conv\*'` selects no module of the model; module names: \(model\)"),
    ({"layers": 3}, ConfigError, r"expected `layers` to be a module type, .* but got 3 \(int\)"),
])
def test_bad_arguments(model: nn.Sequential, kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        TooledModel(model, **kwargs)  # type: ignore[arg-type]


def test_arguments_are_keyword_only_and_checked_through_the_option_table(model: nn.Sequential) -> None:
    params = inspect.signature(TooledModel).parameters
    assert [n for n, p in params.items() if p.kind is not p.KEYWORD_ONLY] == ["model"]
    assert {o.name for o in MODEL_ARGUMENTS["TooledModel()"]} <= set(params)
    with pytest.raises(TypeError, match="positional"):
        TooledModel(model, ("mean",))  # type: ignore[misc]
    assert not model[0]._forward_hooks


def test_model_must_be_a_module() -> None:
    with pytest.raises(ConfigError, match=r"^TooledModel\(\): expected `model` to be a torch.nn.Module, but got "
                                          r"<function .*<lambda> at 0x[0-9a-f]+> \(function\)$"):
        TooledModel(lambda x: x)  # type: ignore[arg-type]


def test_table_rejects_unknown_columns(model: nn.Sequential) -> None:
    tm = TooledModel(model, groups=["Weights"])
    with pytest.raises(UnknownNameError, match=r"unknown recorded group 'Outputs'"):
        tm.table(groups=["Outputs"])
    with pytest.raises(UnknownNameError, match=r"unknown recorded statistic 'max'"):
        tm.table(stats=["max"])


def test_a_recorded_step_reads_no_value_back_one_by_one(model: nn.Sequential) -> None:
    """Every statistic stays a tensor until the step's single transfer: no ``.item()`` anywhere."""
    from torch.profiler import ProfilerActivity, profile

    counted = tuple(s for s in ALL_STATS if s != "nonfinite")
    tm = TooledModel(model, stats=counted, params=["bias"])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_step(model)
        stats = tm.step()
    names = {e.name for e in prof.events()}
    assert stats is not None and stats["0"]["Grad_out"]
    assert not names & {"aten::item", "aten::_local_scalar_dense"}
    tm.remove()
    # nonfinite: on CPU (no device to wait for) each reduced tensor reads its sum back, and counts its non-finite
    # values only when the sum is not finite (see stats._count_finite): one read per tensor, one amin per tensor
    tm = TooledModel(model, stats=ALL_STATS, params=["bias"])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_step(model)
        stats = tm.step()
    events = [e.name for e in prof.events()]
    assert stats is not None and events.count("aten::item") == events.count("aten::amin") > 0
    assert "aten::isfinite" not in events
    tm.remove()
    # with histograms: on CPU (no device to wait for) each histogram reads its tensor's min and max back, to mask
    # the non-finite values only when there are some; on other devices it reads nothing (see stats.histogram)
    tm = TooledModel(model, stats=counted, params=["bias"], histograms=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_step(model)
        stats = tm.step()
    items = [e.name for e in prof.events() if e.name == "aten::item"]
    assert stats is not None and len(items) == 2 * 4  # Weights and Weight_grad of two Linear layers


def test_seed_usage_from_the_issue(capsys: pytest.CaptureFixture[str]) -> None:
    import flexlogger

    model = nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 3))
    x, y = torch.randn(4, 20), torch.randn(4, 3)
    TM = flexlogger.TooledModel(model)
    loss = F.mse_loss(model(x), y)
    loss.backward()
    text = TM.table()
    assert text in capsys.readouterr().out
    d = TM.get_dict()
    assert set(d) == {"0", "1"} and set(d["1"]) == set(GROUPS)
    assert math.isclose(d["0"]["Weights"]["mean"], model[0].weight.mean().item(), rel_tol=1e-5)


def test_weights_read_at_step_after_an_earlier_get_dict(model: nn.Sequential) -> None:
    tm = TooledModel(model, groups=["Weights"], stats=["mean"])
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    run_step(model)
    before = tm.get_dict()["0"]["Weights"]["mean"]
    optim.step()
    after = tm.step()
    assert after is not None and after["0"]["Weights"]["mean"] != before
    assert close(after["0"]["Weights"]["mean"], model[0].weight.mean().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_histogram_on_cuda_equals_numpy_without_a_host_sync() -> None:
    from flexlogger.model.stats import histogram
    gen = torch.Generator().manual_seed(2)
    for trial in range(50):
        x = torch.round(torch.randn(5000, dtype=torch.float64, generator=gen) * 7) / 7
        if trial % 5 == 0:
            x[::97] = math.nan
            x[1] = math.inf
        bins = 3 + trial
        out = histogram(x.cuda(), bins)
        assert out.device.type == "cuda"
        assert out.cpu().tolist()[:bins] == numpy_counts(x, bins), trial


def test_statplan_finish_many_matches_torch() -> None:
    """Several tensors finished at once give torch's statistics, edge cases too."""
    from flexlogger.model.stats import StatPlan

    names = ("mean", "std", "min", "max", "abs_mean", "norm", "zero_frac", "nonfinite", "snr")
    plan = StatPlan(names)
    tensors = [torch.randn(50, dtype=torch.float64), torch.full((7,), 3.0, dtype=torch.float64),
               torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0, math.nan], dtype=torch.float64)]
    raw = [v.item() for t in tensors for v in plan.compute(t)]
    rows = plan.finish_many(raw, [i * plan.size for i in range(len(tensors))], [t.numel() for t in tensors])
    assert plan.names == names and len(raw) == len(tensors) * plan.size
    for t, row in zip(tensors, rows):
        got = dict(zip(plan.names, row))
        finite = t[torch.isfinite(t)]
        if finite.numel() == t.numel():
            assert got["mean"] == pytest.approx(t.mean().item()) and got["norm"] == pytest.approx(t.norm().item())
            assert got["std"] == pytest.approx(t.std().item() if t.numel() > 1 else math.nan, nan_ok=True, abs=1e-12)
            assert (got["min"], got["max"]) == (t.min().item(), t.max().item())
        assert got["zero_frac"] == pytest.approx((t == 0).double().mean().item())
        assert got["nonfinite"] == (~torch.isfinite(t)).sum().item()
    assert math.isnan(rows[2][1]) and rows[1][1] == 0.0 and rows[1][-1] == math.inf  # one value; a constant
    assert math.isnan(rows[3][0]) and math.isnan(rows[3][-1])


def test_anomaly_warning_points_at_the_caller_of_step() -> None:
    model = nn.Sequential(nn.Linear(3, 3))
    tm = TooledModel(model)
    x = torch.randn(4, 3)
    x[0, 0] = math.nan
    F.mse_loss(model(x), torch.zeros(4, 3)).backward()
    with pytest.warns(ModelAnomalyWarning) as record:
        tm.step()
    assert [w.filename for w in record] == [__file__]


@pytest.mark.parametrize("base", [True, False])
def test_counts_of_zeros_and_non_finite_values_on_edge_cases(base: bool) -> None:
    """zero_frac and nonfinite count exactly: a finite sum proves every value finite, and a sum that is not finite
    (NaN, an Inf, or finite values overflowing float32) makes the count."""
    from flexlogger.model.stats import StatPlan

    big = torch.finfo(torch.float32).max
    cases = [torch.tensor([big, big, 1.0]),  # finite values whose float32 sum overflows: none is counted
             torch.tensor([math.inf, -math.inf, 2.0, 0.0]),  # Inf - Inf: a NaN sum
             torch.tensor([math.nan, -0.0, 0.0, 5.0, math.inf]),
             torch.tensor([0.0, -0.0, 1.0], dtype=torch.float16),
             torch.randn(1000).relu()]
    plan = StatPlan(("zero_frac", "nonfinite"), base=base)
    for t in cases:
        raw = [v.item() for v in plan.compute(t)]
        got = dict(zip(plan.names, plan.finish_many(raw, (0,), (t.numel(),))[0]))
        assert got["nonfinite"] == (~torch.isfinite(t)).sum().item(), t
        assert got["zero_frac"] == pytest.approx((t == 0).double().mean().item()), t


def test_std_bound_is_read_on_cpu_only_where_it_can_matter() -> None:
    """Default statistics on CPU: the min and max that bound std are read for a constant or nearly constant tensor
    (std exactly 0, or within the spread), not for a well-spread one; std equals torch's either way."""
    from torch.profiler import ProfilerActivity, profile

    from flexlogger.model.stats import StatPlan

    plan = StatPlan(("mean", "std"))
    torch.manual_seed(0)
    spread, offset = torch.randn(4096), torch.randn(4096) + 2.0  # |mean| 2 std: still well conditioned
    constant, nearly = torch.full((4096,), 0.7), 1.0 + 1e-6 * torch.randn(4096)
    for t, reads in ((spread, False), (offset, False), (constant, True), (nearly, True),
                     (torch.tensor([3.0]), True), (torch.tensor([1.0, math.nan]), True)):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            raw = [v.item() for v in plan.compute(t)]
        assert ("aten::amin" in {e.name for e in prof.events()}) is reads, t
        mean, std = plan.finish_many(raw, (0,), (t.numel(),))[0]
        want = t.double().std().item() if t.numel() > 1 else math.nan
        if t is constant:
            assert std == 0.0
        elif t is nearly:
            assert 0 <= std <= (t.max() - t.min()).item() and abs(std - want) < 2e-6  # bounded by the spread
        elif t.numel() == 1 or not torch.isfinite(t).all():
            assert math.isnan(std)
        else:
            assert std == pytest.approx(want, rel=1e-5) and mean == pytest.approx(t.double().mean().item(), rel=1e-5)
    # min and max asked for: always read
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        StatPlan(("mean", "std", "max")).compute(spread)
    assert "aten::amin" in {e.name for e in prof.events()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_recorded_step_on_cuda_syncs_once() -> None:
    """Every statistic of a recorded step stays on the GPU until the step's one transfer (``torch.cuda.
    set_sync_debug_mode('warn')`` warns at each synchronising call), and the values equal the CPU's."""
    results = []
    for device in ("cuda", "cpu"):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
        tm = TooledModel(model, stats=("mean", "std", "max", "zero_frac", "nonfinite"))
        x = torch.randn(16, 12, generator=torch.Generator().manual_seed(1)).to(device)
        F.mse_loss(model(x), torch.zeros(16, 4, device=device)).backward()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("warn")
            try:
                results.append(tm.step())
            finally:
                if device == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
        if device == "cuda":
            syncs = [w for w in caught if "synchroniz" in str(w.message)]
            # the one transfer (a copy, and at most its stream synchronisation), not one per tensor (14 here)
            assert 1 <= len(syncs) <= 2, [str(w.message) for w in syncs]
    gpu, cpu = results
    assert gpu is not None and cpu is not None
    for layer, groups in cpu.items():
        for group, stats in groups.items():
            for stat, value in stats.items():
                assert gpu[layer][group][stat] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), (layer, group)
