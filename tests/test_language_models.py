"""The decoder-only language model: shapes, causality, parameter count, a real fit."""

import pytest
import torch
import torch.nn.functional as F

from suites.tasks.language_models import (
    DecoderConfig,
    build_decoder,
    decoder_parameter_count,
    decoder_preset,
)


def _model(config: DecoderConfig, vocab: int = 64, seed: int = 0):
    return build_decoder(config, vocab, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kv_heads", [0, 2])
def test_logits_shape_and_parameter_count(kv_heads: int) -> None:
    config = DecoderConfig(dim=32, depth=2, heads=4, kv_heads=kv_heads, context=16)
    model = _model(config)
    logits = model(torch.randint(0, 64, (3, 16)))
    assert logits.shape == (3, 16, 64)
    assert sum(p.numel() for p in model.parameters()) == decoder_parameter_count(config, 64)


def test_attention_is_causal() -> None:
    """Changing a later token never changes the logits at earlier positions."""
    model = _model(DecoderConfig(dim=32, depth=2, heads=4, context=16))
    tokens = torch.randint(0, 64, (1, 16))
    changed = tokens.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 64
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_same_generator_same_model() -> None:
    config = DecoderConfig(dim=32, depth=1, heads=2, context=8)
    a, b = _model(config, seed=3), _model(config, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_1b_preset_is_about_a_billion_parameters_on_meta() -> None:
    config = decoder_preset("1b")
    count = decoder_parameter_count(config, 32000)
    assert 1.0e9 < count < 1.2e9
    with torch.device("meta"):
        model = build_decoder(config, 32000, torch.Generator().manual_seed(0))
    assert sum(p.numel() for p in model.parameters()) == count


def test_bad_shapes_name_the_key() -> None:
    with pytest.raises(ValueError, match="decoder.heads"):
        DecoderConfig(dim=30, heads=4)
    with pytest.raises(ValueError, match="unknown decoder preset 'huge'"):
        decoder_preset("huge")


def test_learns_a_repeating_sequence() -> None:
    """A few dozen AdamW steps fit a periodic token stream far below the uniform loss."""
    torch.manual_seed(0)
    model = _model(DecoderConfig(dim=32, depth=2, heads=4, context=48), vocab=16)
    stream = torch.arange(40).remainder(5).repeat(4, 1)  # period 5 over 16 symbols
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        logits = model(stream[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 16), stream[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3 * torch.log(torch.tensor(16.0)).item()


# ------------------------------------------- active inference on a decoder (issue 20)

def _free_energy_learner(output_energy: str = "ce", seed: int = 0, **options):
    from harness.interface import SetupContext
    from methods.active_inference import ActiveInference, ActiveInferenceConfig
    from suites.tasks.synthetic_lm import SyntheticLMConfig, SyntheticLMTask

    task = SyntheticLMTask(SyntheticLMConfig(decoder=DecoderConfig(dim=32, depth=2, heads=4, context=16), vocab_size=16,
                                             seq_len=16, n_train=256))
    generator = torch.Generator().manual_seed(seed)
    model = task.build_model(generator)
    config = ActiveInferenceConfig(output_energy=output_energy, inference_steps=5, inference_lr=0.03, **options)
    method = ActiveInference()
    method.setup(SetupContext(model, task, config, torch.device("cpu"), generator, lambda: 0.5, 100))
    return task, model, method


def test_active_inference_decoder_gradients_follow_backprop_from_local_errors() -> None:
    """Relaxed, precision-weighted local errors give every layer (embedding + first block, second
    block, head) a weight gradient along backprop's; each energy term reaches one layer only."""
    task, model, method = _free_energy_learner()
    net = method.continuous
    assert len(net.layers) == 3 and net.units == [16 * 32, 16 * 32, 16 * 16]
    batch = next(task.train_batches(32, torch.Generator().manual_seed(1)))
    net._init_nodes(batch.inputs)
    for t in range(net.cfg.inference_steps):
        net._sweep(batch.inputs, batch.targets, infer=True, learn=False, first=t == 0)
    model.zero_grad(set_to_none=True)
    net._sweep(batch.inputs, batch.targets, infer=False, learn=True, first=False)
    local = [torch.cat([p.grad.flatten() for p in layer.parameters()]) for layer in net.layers]
    model.zero_grad(set_to_none=True)
    task.loss(model(batch.inputs), batch).backward()
    exact = [torch.cat([p.grad.flatten() for p in layer.parameters()]) for layer in net.layers]
    cosines = [float(F.cosine_similarity(a, b, 0)) for a, b in zip(local, exact)]
    assert min(cosines) > 0.9, cosines


def test_active_inference_fine_tunes_a_decoder_and_learns_its_precisions() -> None:
    task, model, method = _free_energy_learner(lr=3e-3)
    uniform = float(torch.log(torch.tensor(16.0)))
    before = task.evaluate(method.predict, "val", torch.device("cpu"))["loss"]
    batches = task.train_batches(32, torch.Generator().manual_seed(1))
    for _ in range(60):
        stats = method.step(next(batches))
    after = task.evaluate(method.predict, "val", torch.device("cpu"))["loss"]
    assert stats.kind == "decoder_vfe" and stats.forward_equivalents > 3
    assert after < min(before, uniform) - 0.5, (before, after)
    precisions = method.describe()["precisions"]
    assert precisions[-1] == 1.0 and all(p != 1.0 for p in precisions[:-1])  # hidden learned, categorical output not
    state = method.state_dict()
    _, _, fresh = _free_energy_learner(lr=3e-3, seed=1)
    fresh.load_state_dict(state)
    assert fresh.describe()["precisions"] == precisions


def test_active_inference_on_text_refuses_a_gaussian_output_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="output_energy=ce"):
        _free_energy_learner(output_energy="se")
