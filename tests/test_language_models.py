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
