"""Meter adapters: exact values against torchnet and scikit-learn, edge cases, input errors."""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections import deque
from typing import Any

import numpy as np
import pytest
import torch
import torchnet.meter as tnt
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from flexlogger import MeterInputError, meter_info, meter_types
from flexlogger.config.registry import make_meter
from flexlogger.errors import ConfigError
from flexlogger.meters import Meter, State

# One valid add() per meter type: a new meter type must add an example here (test_every_type_has_an_example).
EXAMPLES: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    "AverageValueMeter": ({}, (0.5,)),
    "MovingAverageValueMeter": ({"windowsize": 3}, (0.5,)),
    "ValueMeter": ({}, (1.5,)),
    "MSEMeter": ({}, (torch.ones(4, 2), torch.zeros(4, 2))),
    "MAEMeter": ({}, (torch.ones(4, 2), torch.zeros(4, 2))),
    "ClassErrorMeter": ({"topk": [1]}, (torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))),
    "ConfusionMeter": ({"k": 2}, (torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))),
    "APMeter": ({}, (torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([[0, 1], [1, 1]]))),
    "mAPMeter": ({}, (torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([[0, 1], [1, 1]]))),
    "AUCMeter": ({}, (torch.tensor([0.1, 0.9, 0.4]), torch.tensor([0, 1, 1]))),
    "TimeMeter": ({}, (1,)),
    "BestValueMeter": ({"best": "max"}, (0.5,)),
    "ImageMeter": ({"nrow": 2}, (torch.rand(3, 1, 4, 5),)),
}


def test_every_type_has_an_example() -> None:
    assert set(meter_types()) <= set(EXAMPLES), f"add an example for {set(meter_types()) - set(EXAMPLES)}"


@pytest.mark.parametrize("kind", meter_types())
def test_meter_contract(kind: str) -> None:
    args, inputs = EXAMPLES[kind]
    meter = make_meter("m", kind, args)
    assert meter.count == 0
    meter.add(*inputs)
    assert meter.count == 1
    views = ("scalar", "text") if kind == "ValueMeter" else meter.views  # ValueMeter's views follow its value
    for view in views:  # every advertised view works on a fed meter
        {"scalar": meter.scalars, "vector": meter.vector, "matrix": meter.matrix,
         "curve": meter.curve, "text": meter.text}[view]()
    meter.reset()
    assert meter.count == 0
    info = meter_info(kind)
    assert info["add"].startswith("add(") and info["plots"] and info["plot_types"]


class _Weighted(Meter):
    """A meter written as a user would: its state, ``add`` (with a default, *args and a keyword-only) and ``value``."""

    kind = "Weighted"
    state = (State("total", 0.0), State("weight", 0.0))

    total: float
    weight: float

    def add(self, value: float, weight: float = 1.0, /, *more: float, scale: float = 1.0) -> bool | None:
        values = [value, *more]
        if weight == 0:
            return False  # held no sample: not counted
        self.total += sum(values) * weight * scale
        self.weight += weight * len(values)
        return None

    def value(self) -> float:
        return self.total / self.weight if self.weight else math.nan


def test_the_base_class_counts_the_adds_a_subclass_writes() -> None:
    meter = _Weighted("w")
    meter.add(2.0)
    meter.add(4.0, 2.0, 6.0, scale=0.5)
    assert meter.count == 2 and meter.value() == pytest.approx((2.0 + 10.0 * 2.0 * 0.5) / 5.0)
    assert meter.add(1.0, 0.0) is None and meter.count == 2  # a call that held no sample leaves the count
    meter.reset()
    assert meter.count == 0 and math.isnan(meter.value())
    # the wrapper keeps the written signature: argument errors and arity checks name the real parameters
    assert str(inspect.signature(_Weighted.add)) == str(inspect.signature(_Weighted.__dict__["add"].__wrapped__))
    assert str(inspect.signature(meter.add)).startswith("(value: 'float', weight: 'float' = 1.0, /, *more: 'float', "
                                                        "scale: 'float' = 1.0)")
    with pytest.raises(TypeError, match="bogus"):
        meter.add(1.0, bogus=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="value"):
        meter.add()  # type: ignore[call-arg]


def test_a_subclass_of_a_counted_meter_is_counted_once() -> None:
    class Halved(_Weighted):
        def value(self) -> float:
            return super().value() / 2

    meter = Halved("h")
    meter.add(3.0)
    assert meter.count == 1 and meter.value() == 1.5


@pytest.mark.parametrize("kind", meter_types())
def test_no_warnings_on_add_and_value(kind: str) -> None:
    args, inputs = EXAMPLES[kind]
    meter = make_meter("m", kind, args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meter.add(*inputs)
        meter.add(*inputs)
        meter.value()


def test_average_value_matches_torchnet_exactly() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, 1000).tolist()
    ours, theirs = make_meter("loss", "AverageValueMeter"), tnt.AverageValueMeter()
    for v in values:
        ours.add(v)
        theirs.add(v)
    assert ours.value() == (theirs.value()[0], float(theirs.value()[1]))
    assert ours.value()[0] == pytest.approx(np.mean(values), rel=1e-12)
    assert ours.value()[1] == pytest.approx(np.std(values, ddof=1), rel=1e-12)


def test_average_value_edge_cases() -> None:
    meter = make_meter("loss", "AverageValueMeter")
    assert all(math.isnan(v) for v in meter.value())  # empty
    meter.add(torch.tensor(2.5))  # 0-d tensor
    mean, std = meter.value()
    assert mean == 2.5 and math.isnan(std)  # one sample: the sample std is undefined
    meter.add(np.float32(3.5))
    assert meter.value() == (3.0, math.sqrt(0.5))
    assert isinstance(meter.mean, float)  # CPU tensors are read at add(), never kept


def test_average_value_keeps_no_graph() -> None:
    w = torch.ones(1, requires_grad=True)
    meter = make_meter("loss", "AverageValueMeter")
    meter.add((w * 2).sum())
    assert isinstance(meter.mean, float) and meter.value()[0] == 2.0


@pytest.mark.parametrize("bad", [torch.ones(3), "0.5", None, [1.0, 2.0]])
def test_scalar_meter_rejects_non_scalars(bad: Any) -> None:
    meter = make_meter("train_loss", "AverageValueMeter")
    with pytest.raises(MeterInputError, match=r"meter 'train_loss' \(AverageValueMeter\) expects a number or a "
                                              r"one-element tensor, got "):
        meter.add(bad)


def test_moving_average() -> None:
    meter = make_meter("m", "MovingAverageValueMeter", {"windowsize": 3})
    for v in [1.0, 2.0, 3.0, 10.0]:
        meter.add(v)
    mean, std = meter.value()
    assert mean == pytest.approx(5.0) and std == pytest.approx(np.std([2.0, 3.0, 10.0], ddof=1))
    with pytest.raises(ConfigError, match=r"expected `windowsize` to be a positive int, but got 0"):
        make_meter("m", "MovingAverageValueMeter", {"windowsize": 0})


def test_mse_exact_root_and_shape_check() -> None:
    out, tgt = torch.randn(8, 3), torch.randn(8, 3)
    meter = make_meter("mse", "MSEMeter")
    meter.add(out, tgt)
    meter.add(out[:2], tgt[:2])
    expected = float(torch.cat([(out - tgt) ** 2, (out[:2] - tgt[:2]) ** 2]).mean())
    assert meter.value() == pytest.approx(expected, rel=1e-6)
    root = make_meter("rmse", "MSEMeter", {"root": True})
    root.add(out.numpy(), tgt.numpy())
    assert root.value() == pytest.approx(float(((out - tgt) ** 2).mean().sqrt()), rel=1e-6)
    assert math.isnan(make_meter("e", "MSEMeter").value())  # empty
    with pytest.raises(MeterInputError, match=r"meter 'mse' \(MSEMeter\) expects output and target of the same "
                                              r"shape, got output tensor of shape \(8, 3\).* and target tensor of "
                                              r"shape \(8,\)"):
        meter.add(out, tgt[:, 0])


def test_mse_detaches_inputs() -> None:
    out = torch.randn(4, requires_grad=True)
    meter = make_meter("mse", "MSEMeter")
    meter.add(out * 2, torch.zeros(4))
    assert not getattr(meter.tnt.sesum, "requires_grad", False)


def test_class_error_topk_exact() -> None:
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    target = torch.tensor([2, 0, 1, 2])
    meter = make_meter("err", "ClassErrorMeter", {"topk": [1, 2]})
    meter.add(scores, target)
    # top-1 predictions 1, 0, 2, 1: one right out of 4; top-2 sets {1,2}, {0,1}, {2,1}, {1,0 or 2}
    assert meter.value() == [75.0, 25.0]
    assert meter.scalars() == {"err@1": 75.0, "err@2": 25.0}
    acc = make_meter("acc", "ClassErrorMeter", {"accuracy": True})
    acc.add(scores[0], 1)  # a single sample: K scores and an int label
    assert acc.scalars() == {"acc": 100.0}


def test_class_error_input_errors() -> None:
    meter = make_meter("err", "ClassErrorMeter", {"topk": [1, 5]})
    with pytest.raises(MeterInputError, match=r"with topk=\[1, 5\] expects at least 5 classes, got output tensor "
                                              r"of shape \(2, 3\)"):
        meter.add(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(MeterInputError, match=r"expects labels in \[0, 2\] for 3 classes, got labels from 0 to 3"):
        make_meter("e", "ClassErrorMeter").add(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(MeterInputError, match=r"expects output N x K scores and target N labels"):
        make_meter("e", "ClassErrorMeter").add(torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ConfigError, match=r"expected `topk` to be a list of positive ints, but got \[0\]"):
        make_meter("e", "ClassErrorMeter", {"topk": [0]})


def test_confusion_exact() -> None:
    pred = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]])
    target = torch.tensor([0, 1, 1, 2])
    meter = make_meter("cm", "ConfusionMeter", {"k": 3})
    meter.add(pred, target)
    meter.add(np.array([2]), np.array([[0, 0, 1]]))  # labels and one-hot, as numpy
    expected = np.zeros((3, 3))
    for t, p in [(0, 0), (1, 1), (1, 2), (2, 0), (2, 2)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(meter.matrix(), expected)
    with pytest.raises(MeterInputError, match=r"expects predicted labels in \[0, 2\] \(k=3\), got 0 to 5"):
        meter.add(torch.tensor([0, 5]), torch.tensor([0, 1]))
    with pytest.raises(MeterInputError, match=r"expects predicted scores with 3 columns \(k=3\), got tensor"):
        meter.add(torch.randn(2, 4), torch.tensor([0, 1]))


def test_ap_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(200, 3)) / 4.0  # many tied scores
    targets = rng.integers(0, 2, size=(200, 3))
    meter = make_meter("ap", "APMeter")
    meter.add(torch.from_numpy(scores[:120]), torch.from_numpy(targets[:120]))
    meter.add(scores[120:], targets[120:])
    expected = [average_precision_score(targets[:, k], scores[:, k]) for k in range(3)]
    np.testing.assert_allclose(meter.vector(), expected, rtol=1e-12)
    mean_ap = make_meter("map", "mAPMeter")
    mean_ap.add(scores, targets)
    assert mean_ap.value() == pytest.approx(np.mean(expected), rel=1e-12)


def test_ap_weights_and_edge_cases() -> None:
    scores, targets, weights = np.array([0.9, 0.8, 0.8, 0.1]), np.array([1, 0, 1, 0]), np.array([1.0, 2.0, 0.5, 1.0])
    meter = make_meter("ap", "APMeter")
    meter.add(scores, targets, weights)
    assert meter.vector()[0] == pytest.approx(average_precision_score(targets, scores, sample_weight=weights))
    no_positive = make_meter("ap", "APMeter")
    no_positive.add(np.array([[0.3, 0.4]]), np.array([[0, 1]]))
    ap = no_positive.vector()
    assert math.isnan(ap[0]) and ap[1] == 1.0  # one sample; a class with no positive is undefined
    assert math.isnan(make_meter("m", "mAPMeter").value())  # empty
    with pytest.raises(MeterInputError, match=r"meter 'ap' \(APMeter\) expects binary targets \(0 or 1\)"):
        meter.add(np.array([0.5]), np.array([2]))
    with pytest.raises(MeterInputError, match=r"expects 1 columns as in earlier add\(\) calls"):
        meter.add(np.ones((2, 2)), np.ones((2, 2)))


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, size=300) / 5.0
    targets = rng.integers(0, 2, size=300)
    meter = make_meter("auc", "AUCMeter")
    meter.add(torch.from_numpy(scores), torch.from_numpy(targets))
    assert meter.value() == pytest.approx(roc_auc_score(targets, scores), rel=1e-12)
    fpr, tpr, _ = roc_curve(targets, scores, drop_intermediate=False)
    ours_fpr, ours_tpr = meter.curve()
    np.testing.assert_allclose(ours_fpr, fpr)
    np.testing.assert_allclose(ours_tpr, tpr)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")  # torchnet's own AUCMeter, used for comparison
def test_auc_torchnet_is_wrong_on_ties_and_ours_is_not() -> None:
    scores, targets = torch.tensor([0.5, 0.5]), torch.tensor([1, 0])  # one tie: AUC is 0.5
    theirs = tnt.AUCMeter()
    theirs.add(scores, targets)
    ours = make_meter("auc", "AUCMeter")
    ours.add(scores, targets)
    assert ours.value() == 0.5 == roc_auc_score(targets, scores)
    assert theirs.value()[0] != 0.5  # torchnet ranks the tie arbitrarily


def test_auc_single_class_is_nan() -> None:
    meter = make_meter("auc", "AUCMeter")
    meter.add(torch.tensor([0.2, 0.3]), torch.tensor([1, 1]))
    assert math.isnan(meter.value())
    assert math.isnan(make_meter("auc", "AUCMeter").value())


def test_time_meter() -> None:
    meter = make_meter("t", "TimeMeter", {"unit": True})
    meter.add(4)
    time.sleep(0.02)
    assert 0.005 - 1e-4 <= meter.value() <= 10  # seconds per unit
    with pytest.raises(MeterInputError, match=r"meter 't' \(TimeMeter\) expects a non-negative int count"):
        meter.add(-1)


def test_value_meter_views() -> None:
    meter = make_meter("v", "ValueMeter")
    meter.add(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(meter.matrix(), [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(meter.vector(), [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(MeterInputError, match=r"meter 'v' \(ValueMeter\) expects a single number to draw it as a "
                                              r"point"):
        meter.scalars()
    meter.add("hello")
    assert meter.text() == "hello"
    meter.add(torch.tensor(0.25))
    assert meter.scalars() == {"v": 0.25}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scalars_stay_on_device() -> None:
    meter = make_meter("loss", "AverageValueMeter")
    for v in (1.0, 2.0, 4.0):
        meter.add(torch.tensor(v, device="cuda"))
    assert isinstance(meter.mean, torch.Tensor) and meter.mean.is_cuda
    assert meter.value()[0] == pytest.approx(7 / 3)


@pytest.mark.parametrize("kind", ["AverageValueMeter", "MovingAverageValueMeter", "ValueMeter"])
def test_scalar_inputs_of_every_kind(kind: str) -> None:
    """Python and numpy bools and ints, 0-d and one-element arrays, tensors that require grad: all numbers."""
    w = torch.tensor(2.0, requires_grad=True)
    inputs = [True, np.bool_(False), 3, np.int64(4), np.array(5.5), np.array([[6.0]]), torch.tensor(True),
              torch.tensor([7], dtype=torch.int32), w * 4]
    expected = [1.0, 0.0, 3.0, 4.0, 5.5, 6.0, 1.0, 7.0, 8.0]
    meter = make_meter("m", kind, {"windowsize": 100} if kind == "MovingAverageValueMeter" else {})
    for value, want in zip(inputs, expected):
        meter.add(value)
        if kind == "ValueMeter":
            assert meter.scalars() == {"m": want}
    if kind != "ValueMeter":
        assert meter.scalars() == {"m": pytest.approx(sum(expected) / len(expected), rel=1e-12)}


def test_moving_average_stays_exact_where_torchnet_drifts() -> None:
    rng = np.random.default_rng(4)
    values = (1000.0 + 0.1 * rng.random(20_000)).tolist()  # a loss near 1000 with small noise
    ours, theirs = make_meter("m", "MovingAverageValueMeter", {"windowsize": 10}), tnt.MovingAverageValueMeter(10)
    for v in values:
        ours.add(v)
        theirs.add(v)
    mean, std = ours.value()
    assert mean == pytest.approx(np.mean(values[-10:]), rel=1e-15)
    assert std == pytest.approx(np.std(values[-10:], ddof=1), rel=1e-9)
    assert float(theirs.value()[1]) != pytest.approx(std, rel=0.1)  # torchnet: float32 running sums, a wrong std


def test_value_meter_and_confusion_view_errors() -> None:
    text = make_meter("note", "ValueMeter")
    text.add("hello")
    with pytest.raises(MeterInputError, match=r"^meter 'note' \(ValueMeter\) expects a number or an array to draw it "
                                              r"as bars or a histogram, got str 'hello'$"):
        text.vector()
    flat = make_meter("w", "ValueMeter")
    flat.add(np.arange(4.0))
    with pytest.raises(MeterInputError, match=r"^meter 'w' \(ValueMeter\) expects a 2-d \(H x W\) or 3-d \(C x H x W\) "
                                              r"array to draw it as a heatmap or image, got ndarray of shape \(4,\)"):
        flat.matrix()
    with pytest.raises(MeterInputError, match=r"^meter 'cm' \(ConfusionMeter\) expects one-hot targets with 3 columns "
                                              r"\(k=3\), got tensor of shape \(2, 2\)"):
        make_meter("cm", "ConfusionMeter", {"k": 3}).add(torch.tensor([0, 1]), torch.eye(2))


EMPTY_BATCHES: dict[str, tuple[Any, ...]] = {  # a batch of 0 samples (e.g. out[mask] with no sample selected)
    "MSEMeter": (torch.zeros(0, 2), torch.zeros(0, 2)),
    "MAEMeter": (torch.zeros(0, 2), torch.zeros(0, 2)),
    "ClassErrorMeter": (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
    "ConfusionMeter": (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)),
    "APMeter": (torch.zeros(0, 2), torch.zeros(0, 2)),
    "mAPMeter": (torch.zeros(0, 2), torch.zeros(0, 2)),
    "AUCMeter": (torch.zeros(0), torch.zeros(0)),
}


@pytest.mark.parametrize("kind", sorted(EMPTY_BATCHES))
def test_an_empty_batch_adds_nothing(kind: str) -> None:
    args, inputs = EXAMPLES[kind]
    empty_only, fed, reference = (make_meter("m", kind, args) for _ in range(3))
    empty_only.add(*EMPTY_BATCHES[kind])
    assert empty_only.count == 0  # received nothing: the logger draws no point for it
    value = np.asarray(empty_only.value(), dtype=np.float64)
    if kind == "ConfusionMeter":
        assert value.shape == (2, 2) and (value == 0).all()
    else:
        assert np.isnan(value).all()  # undefined: no sample
    fed.add(*EMPTY_BATCHES[kind])
    fed.add(*inputs)
    reference.add(*inputs)
    assert fed.count == reference.count == 1
    np.testing.assert_array_equal(np.asarray(fed.value(), dtype=np.float64),
                                  np.asarray(reference.value(), dtype=np.float64))


def test_confusion_normalized_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match=r"^meter 'cm' \(ConfusionMeter\): expected `normalized` to be a bool, but "
                                          r"got 'yes'$"):
        make_meter("cm", "ConfusionMeter", {"k": 2, "normalized": "yes"})


def test_mae_exact_against_numpy_and_shape_check() -> None:
    rng = np.random.default_rng(5)
    out, tgt = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    meter = make_meter("mae", "MAEMeter")
    meter.add(torch.from_numpy(out).requires_grad_(), tgt)  # a tensor that requires grad and an ndarray
    meter.add(out[:2].tolist(), np.rint(tgt[:2] * 10).astype(np.int64))  # nested lists and integer targets
    expected = np.concatenate([np.abs(out - tgt).ravel(), np.abs(out[:2] - np.rint(tgt[:2] * 10)).ravel()]).mean()
    assert meter.value() == pytest.approx(expected, rel=1e-12)
    assert not getattr(meter.abs_sum, "requires_grad", False)
    with pytest.raises(MeterInputError, match=r"^meter 'mae' \(MAEMeter\) expects output and target of the same "
                                              r"shape, got output tensor of shape \(2,\) .* and target tensor of "
                                              r"shape \(3,\)"):
        meter.add(np.zeros(2), np.zeros(3))


def test_lists_of_floats_keep_double_precision() -> None:
    """Two scores 1e-10 apart are distinct (AUC 1), not tied by a float32 conversion (AUC 0.5)."""
    meter = make_meter("auc", "AUCMeter")
    meter.add([0.1234567891, 0.1234567892], [0, 1])
    assert meter.value() == 1.0 == roc_auc_score([0, 1], [0.1234567891, 0.1234567892])


# declared state ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", meter_types())
def test_reset_restores_every_declared_field(kind: str) -> None:
    args, inputs = EXAMPLES[kind]
    fresh, fed = make_meter("m", kind, args), make_meter("m", kind, args)
    assert type(fed).state, f"{kind} declares no state"
    fed.add(*inputs)
    fed.reset()
    for field in type(fed).state:
        if field.names == ("tnt.time",):
            continue  # a clock: reset restarts it
        np.testing.assert_equal(to_plain(field.get(fed)), to_plain(field.get(fresh)))


def to_plain(value: Any) -> Any:
    return list(value) if isinstance(value, deque) else value


@pytest.mark.parametrize("kind", meter_types())
def test_portable_copy_shares_nothing_mutable(kind: str) -> None:
    """The host copy sent to other ranks is a snapshot: feeding the meter afterwards leaves it as it was."""
    args, inputs = EXAMPLES[kind]
    meter, reference = make_meter("m", kind, args), make_meter("m", kind, args)
    meter.add(*inputs)
    reference.add(*inputs)
    copy = meter.portable()
    meter.add(*inputs)
    meter.add(*inputs)
    if kind != "TimeMeter":  # a clock: the copy's value moves with time
        np.testing.assert_array_equal(np.asarray(copy.value(), dtype=np.float64),
                                      np.asarray(reference.value(), dtype=np.float64))
    assert copy.count == 1


def test_merges_text_derives_from_the_declaration() -> None:
    assert meter_info("MSEMeter")["merges"] == "summed across ranks"
    assert meter_info("TimeMeter")["merges"] == "rank 0's"
    assert meter_info("AverageValueMeter")["merges"].startswith("pooled: the mean and std of every rank's values")
    assert meter_info("APMeter")["merges"] == "every rank's samples together"


def test_a_state_with_an_unknown_reduction_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^State 'x': expected `reduce` to be one of sum, cat, min, max, first, "
                                         r"moments, but got 'median'$"):
        State("x", 0, "median")


# ConfusionMeter labels ----------------------------------------------------------------------------------------
def test_confusion_refuses_fractional_labels() -> None:
    meter = make_meter("cm", "ConfusionMeter", {"k": 2})
    with pytest.raises(MeterInputError, match=r"^meter 'cm' \(ConfusionMeter\) expects predicted labels to be "
                                              r"integers \(class indices 0 to 1\) or N x 2 scores, got the "
                                              r"non-integral label 0\.5 in tensor of shape \(2,\) \(float32, cpu\)$"):
        meter.add(torch.tensor([0.5, 1.7]), torch.tensor([0, 1]))
    with pytest.raises(MeterInputError, match=r"expects target labels to be integers \(class indices 0 to 1\) or "
                                              r"N x 2 one-hot rows, got the non-integral label 1\.5 in tensor of "
                                              r"shape \(2,\) \(float64"):
        meter.add(np.array([0, 1]), np.array([1.0, 1.5]))
    with pytest.raises(MeterInputError, match=r"got the non-integral label nan"):
        meter.add([0.0, math.nan], [0, 1])
    assert meter.count == 0 and not meter.value().any()
    meter.add(np.array([1.0, 0.0]), [1, 1])  # integral floats are labels
    np.testing.assert_array_equal(meter.value(), [[0, 0], [1, 1]])


# BestValueMeter -----------------------------------------------------------------------------------------------
def test_best_value_min_and_max_exact() -> None:
    low, high = make_meter("b", "BestValueMeter"), make_meter("b", "BestValueMeter", {"best": "max"})
    assert math.isnan(low.value()) and math.isnan(high.value())  # empty
    for v in [3.0, torch.tensor(1.25), np.float32(7.5), math.nan, 2, torch.tensor([4.0], requires_grad=True)]:
        low.add(v)
        high.add(v)
    assert low.value() == 1.25 and low.scalars() == {"b": 1.25} and low.text() == "1.25"
    assert high.value() == 7.5
    assert low.count == 6
    nan_only = make_meter("b", "BestValueMeter")
    nan_only.add(math.nan)
    assert math.isnan(nan_only.value())
    low.reset()
    low.add(9.0)
    assert low.value() == 9.0


def test_best_value_merges_by_its_rule() -> None:
    for best, expected in (("min", -2.0), ("max", 5.0)):
        mine, other = (make_meter("b", "BestValueMeter", {"best": best}) for _ in range(2))
        for v in (1.0, 5.0):
            mine.add(v)
        other.add(-2.0)
        mine.merge(other.portable())
        assert mine.value() == expected and mine.count == 3


def test_best_value_bad_args() -> None:
    with pytest.raises(ConfigError, match=r"^meter 'b' \(BestValueMeter\): expected `best` to be one of 'min', 'max', "
                                          r"but got 'median'$"):
        make_meter("b", "BestValueMeter", {"best": "median"})
    with pytest.raises(MeterInputError, match=r"meter 'b' \(BestValueMeter\) expects a number or a one-element tensor"):
        make_meter("b", "BestValueMeter").add(torch.ones(2))


# ImageMeter ---------------------------------------------------------------------------------------------------
def test_image_grid_exact() -> None:
    batch = torch.arange(1.0, 4.0).reshape(3, 1, 1, 1).expand(3, 1, 2, 2)  # three 2x2 images, filled 1, 2, 3
    meter = make_meter("img", "ImageMeter", {"nrow": 2})
    meter.add(batch)
    # 2 columns, 2 rows; each cell 2 + 2 pixels, plus 2 of padding at the end: 2*4+2 = 10 by 10
    expected = np.zeros((1, 10, 10), dtype=np.float32)
    expected[0, 2:4, 2:4], expected[0, 2:4, 6:8], expected[0, 6:8, 2:4] = 1, 2, 3
    np.testing.assert_array_equal(meter.matrix(), expected)
    wide = make_meter("img", "ImageMeter")  # nrow=8: all three in one row, 2 + 3*4 = 14 wide, 6 high
    wide.add(batch.numpy().repeat(3, axis=1))  # numpy, three channels
    grid = wide.matrix()
    assert grid.shape == (3, 6, 14)
    np.testing.assert_array_equal(grid[:, 2:4, 10:12], np.full((3, 2, 2), 3.0))
    assert grid.sum() == 3 * 4 * (1 + 2 + 3)  # padding is 0
    one = make_meter("img", "ImageMeter")
    one.add(torch.full((1, 3, 2, 5), 0.5))  # one image: itself, unpadded (as torchvision)
    np.testing.assert_array_equal(one.matrix(), np.full((3, 2, 5), 0.5))


def test_image_meter_errors() -> None:
    with pytest.raises(ConfigError, match=r"^meter 'img' \(ImageMeter\): expected `nrow` \(images per row\) to be a "
                                          r"positive int, but got 0$"):
        make_meter("img", "ImageMeter", {"nrow": 0})
    meter = make_meter("img", "ImageMeter")
    with pytest.raises(MeterInputError, match=r"^meter 'img' \(ImageMeter\) expects batch: an N x C x H x W "
                                              r"tensor/array of images with C = 1 or 3 channels, got tensor of shape "
                                              r"\(3, 4, 4\)"):
        meter.add(torch.zeros(3, 4, 4))
    with pytest.raises(MeterInputError, match=r"^meter 'img' \(ImageMeter\) expects a batch of images: add\(batch\) "
                                              r"before drawing it, got NoneType None$"):
        meter.matrix()
    meter.add(torch.zeros(0, 3, 4, 4))  # an empty batch: nothing received
    assert meter.count == 0
