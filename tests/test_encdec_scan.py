"""T5 (encdec) with model.scan_layers and model.remat, against the unrolled, un-rematted
model: the unrolled params stacked by hand (numpy.stack) give the same logits, gradients,
greedy and beam-search tokens; remat changes no loss or gradient; HF T5 imports into
and exports from the scanned layout; a bad remat value is refused by name."""

import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.config.validate import validate
from lm_jax.errors import ConfigError
from lm_jax.generate.beam_search import beam_search
from lm_jax.generate.decode_loop import Generator
from lm_jax.generate.sampling import SampleConfig
from lm_jax.models.encdec import flops
from lm_jax.models.encdec.hf import MAPPING
from lm_jax.models.registry import get_family, model_fns
from lm_jax.objectives.cross_entropy import CrossEntropy

VOCAB = 50
ENC_LAYERS, DEC_LAYERS = 2, 3
PROMPTS = [[5, 9, 2, 44, 7, 30, 1], [3], [8, 8, 1]]


def _model_cfg(**model):
  m = base_config().model
  m.update(family='encdec', num_layers=ENC_LAYERS, d_model=32, num_heads=4, max_len=64,
           tie_embeddings=False, init_std=0.1, attention='xla', **model)
  m.encdec.update(feed_forward='gated-gelu', num_decoder_layers=DEC_LAYERS,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16)
  return m


@functools.lru_cache(maxsize=None)
def _built(scan_layers=False, remat='none'):
  family = get_family('encdec')
  module, cfg = family.build(_model_cfg(scan_layers=scan_layers, remat=remat), VOCAB)
  return model_fns(family, module), cfg


def _batch():
  rng = np.random.default_rng(0)
  return {'encoder_inputs': rng.integers(0, VOCAB, (2, 9)).astype(np.int32),
          'encoder_valid': np.array([[1] * 9, [1] * 5 + [0] * 4], np.int32),
          'decoder_inputs': rng.integers(0, VOCAB, (2, 6)).astype(np.int32),
          'targets': rng.integers(0, VOCAB, (2, 6)).astype(np.int32),
          'weights': np.ones((2, 6), np.float32)}


@functools.lru_cache(maxsize=None)
def _unrolled_params():
  """Random normal params of the unrolled model's shapes (norm scales around 1); NumPy's
  generator, since compiling the flax init of five blocks takes longer than the test."""
  fns, _ = _built()
  shapes = nn.meta.unbox(jax.eval_shape(fns.init, jax.random.PRNGKey(0), _batch())['params'])
  rng = np.random.default_rng(3)

  def draw(path, shape):
    if jax.tree_util.keystr(path).endswith("['scale']"):
      return (1.0 + 0.1 * rng.normal(size=shape.shape)).astype(np.float32)
    return (0.15 * rng.normal(size=shape.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _restacked(params):
  """Each stack's layer_0, layer_1, ... stacked leaf by leaf into one 'layers' subtree."""
  out = dict(params)
  for stack, n in (('encoder', ENC_LAYERS), ('decoder', DEC_LAYERS)):
    tree = dict(params[stack])
    layers = [tree.pop(f'layer_{i}') for i in range(n)]
    tree['layers'] = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *layers)
    out[stack] = tree
  return out


def _logits(fns, params):
  # jitted both ways: eager and jitted runs of the same model differ by ~4e-5 (op order)
  return np.asarray(jax.jit(lambda p: fns.apply({'params': p}, _batch())['logits'])(params))


def _assert_close(got, want):
  """float32 round-off of a backward pass: relative to the leaf's largest entry."""
  want = np.asarray(want)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * (np.abs(want).max() + 1.0))


@functools.lru_cache(maxsize=None)
def _loss_and_grads(scan_layers=False, remat='none'):
  """Loss and grads of the batch with the unrolled params (restacked when scanned)."""
  fns, _ = _built(scan_layers, remat)
  params = _restacked(_unrolled_params()) if scan_layers else _unrolled_params()

  def loss(p):
    return CrossEntropy(vocab_size=VOCAB)(fns.apply({'params': p}, _batch()), _batch())[0]
  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  return float(value), grads


def test_scanned_layers_give_the_unrolled_logits():
  params = _unrolled_params()
  unrolled, _ = _built()
  scanned, _ = _built(scan_layers=True)
  stacked = _restacked(params)
  want_shapes = jax.tree.map(lambda x: x.shape, nn.meta.unbox(jax.eval_shape(
      scanned.init, jax.random.PRNGKey(0), _batch())['params']))
  assert jax.tree.map(lambda x: x.shape, stacked) == want_shapes
  np.testing.assert_allclose(_logits(scanned, stacked), _logits(unrolled, params),
                             atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_scanned_layers_give_the_unrolled_gradients():
  loss, grads = _loss_and_grads()
  scan_loss, scan_grads = _loss_and_grads(scan_layers=True)
  assert scan_loss == pytest.approx(loss, rel=1e-6)
  jax.tree.map(_assert_close, scan_grads, _restacked(grads))


@pytest.mark.slow
@pytest.mark.parametrize('scan_layers,remat', [(False, 'full'), (True, 'full'),
                                               (True, 'dots_with_no_batch_dims_saveable')])
def test_remat_changes_neither_loss_nor_gradients(scan_layers, remat):
  loss, grads = _loss_and_grads(scan_layers)
  remat_loss, remat_grads = _loss_and_grads(scan_layers, remat)
  assert remat_loss == pytest.approx(loss, rel=1e-6)
  jax.tree.map(_assert_close, remat_grads, grads)


@functools.lru_cache(maxsize=None)
def _generator(scan_layers: bool, remat='none'):
  _, cfg = _built(scan_layers, remat)
  params = _restacked(_unrolled_params()) if scan_layers else _unrolled_params()
  return Generator(get_family('encdec').decoding, cfg, params, SampleConfig(temperature=0.0),
                   bucket=8)


def test_scanned_greedy_decoding_matches_the_unrolled_one():
  rows, logits = _generator(False).generate(PROMPTS, 6, keep_logits=True)
  scan_rows, scan_logits = _generator(True, 'full').generate(PROMPTS, 6, keep_logits=True)
  assert [r.tokens for r in scan_rows] == [r.tokens for r in rows]
  assert len({tuple(r.tokens) for r in rows}) > 1  # the rows differ: their caches matter
  np.testing.assert_allclose(scan_logits, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_scanned_beam_search_matches_the_unrolled_one():
  # Beams reorder the cache rows (select_rows): self and cross keys/values alike.
  want = beam_search(_generator(False), PROMPTS[:2], 4, num_beams=3, length_penalty=0.0)
  got = beam_search(_generator(True), PROMPTS[:2], 4, num_beams=3, length_penalty=0.0)
  assert [list(t) for t, _ in got] == [list(t) for t, _ in want]
  np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_remat_flops_add_the_recomputed_forward():
  _, cfg = _built()
  S, T = 16, 8
  plain = flops.flops_per_token(cfg, S, T)
  assert plain['train_remat'] == plain['train']
  _, full_cfg = _built(remat='full')
  full = flops.flops_per_token(full_cfg, S, T)
  down = 2.0 * cfg.mlp_dim * cfg.d_model * (ENC_LAYERS * S + DEC_LAYERS * T) / S
  cross_kv = DEC_LAYERS * 2 * 2.0 * cfg.d_model * cfg.num_heads * cfg.head_dim
  assert full['train_remat'] == pytest.approx(
      plain['train'] + plain['encoder'] + plain['decoder'] - down - cross_kv)
  _, dots_cfg = _built(remat='dots_with_no_batch_dims_saveable')
  dots = flops.flops_per_token(dots_cfg, S, T)
  NH = cfg.num_heads * cfg.head_dim  # q.k and p.v: encoder S x S, decoder self and cross
  scores = 2 * 2.0 * NH * (ENC_LAYERS * S * S + DEC_LAYERS * T * ((T + 1) / 2 + S)) / S
  assert dots['train_remat'] == pytest.approx(plain['train'] + scores)


def _xla_gradient_flops(remat: str, B=2, S=128, T=64, vocab=500):
  """(XLA's FLOPs of the loss gradient of one [B, S] -> [B, T] batch, the analytic counts)."""
  m = base_config().model
  m.update(family='encdec', num_layers=2, d_model=256, num_heads=4, max_len=S,
           mlp_dim=1024, attention='xla', remat=remat)
  family = get_family('encdec')
  module, cfg = family.build(m, vocab)
  fns = model_fns(family, module)
  batch = {'encoder_inputs': jnp.zeros((B, S), jnp.int32),
           'encoder_valid': jnp.ones((B, S), jnp.int32),
           'decoder_inputs': jnp.zeros((B, T), jnp.int32),
           'targets': jnp.zeros((B, T), jnp.int32), 'weights': jnp.ones((B, T), jnp.float32)}
  params = nn.meta.unbox(jax.eval_shape(fns.init, jax.random.PRNGKey(0), batch)['params'])

  def loss(p):
    return CrossEntropy(vocab_size=vocab)(fns.apply({'params': p}, batch), batch)[0]

  cost = jax.jit(jax.grad(loss)).lower(params).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  counts = flops.flops_per_token(cfg, S, T)
  return cost['flops'], {k: v * B * S for k, v in counts.items()}


@pytest.mark.slow
def test_remat_flops_match_xla_gradient():
  """Unrolled layers (XLA's cost analysis counts a scanned body once). 'full': within
  [1, 1.03] of train_remat (XLA adds elementwise work and the decoder's masked causal
  half); the dots policy: between train and train_remat, as the decoder family's test."""
  xla, counts = _xla_gradient_flops('full')
  assert counts['train_remat'] > counts['train']
  assert 1.0 <= xla / counts['train_remat'] <= 1.03, xla / counts['train_remat']
  xla, counts = _xla_gradient_flops('dots_with_no_batch_dims_saveable')
  assert counts['train'] <= xla <= 1.03 * counts['train_remat']


def _set(config, dotted: dict):
  for key, value in dotted.items():
    *parents, leaf = key.split('.')
    node = config
    for name in parents:
      node = node[name]
    node[leaf] = value


@pytest.mark.slow
def test_hf_t5_import_and_export_with_scanned_layers(tmp_path):
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  hf_model = transformers.T5ForConditionalGeneration(transformers.T5Config(
      vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=ENC_LAYERS,
      num_decoder_layers=DEC_LAYERS, num_heads=4, relative_attention_num_buckets=8,
      relative_attention_max_distance=16, dropout_rate=0.0, feed_forward_proj='gated-gelu',
      tie_word_embeddings=False)).eval()
  with torch.no_grad():  # HF's init is tiny for norms; spread everything a little
    for p in hf_model.parameters():
      p.add_(0.05 * torch.randn_like(p))
  hf_model.save_pretrained(str(tmp_path))
  tensors = load_file(str(tmp_path / 'model.safetensors'))
  with open(tmp_path / 'config.json') as f:
    config = base_config()
    _set(config, MAPPING.config_from_hf(json.load(f)))
  config.model.scan_layers = True
  family = get_family('encdec')
  module, cfg = family.build(config.model, VOCAB)
  fns = model_fns(family, module)
  params = {}
  for path, value in MAPPING.params_from_hf(tensors.__getitem__, set(tensors), cfg):
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  assert params['decoder']['layers']['cross_attn']['query']['kernel'].shape == (
      DEC_LAYERS, 32, 4, 8)
  batch = _batch()
  with torch.no_grad():
    want = hf_model(input_ids=torch.tensor(batch['encoder_inputs']).long(),
                    attention_mask=torch.tensor(batch['encoder_valid']).long(),
                    decoder_input_ids=torch.tensor(batch['decoder_inputs']).long()).logits
  np.testing.assert_allclose(_logits(fns, params)[..., :VOCAB], want.numpy(), atol=1e-4,
                             rtol=1e-4)
  exported = dict(MAPPING.params_to_hf(params, cfg))
  for name, value in tensors.items():
    if name in exported:
      np.testing.assert_array_equal(exported[name], value, err_msg=name)
  assert set(tensors) - set(exported) <= set(MAPPING.ignored_hf_names)


def _config(**model):
  c = base_config()
  c.model = _model_cfg(**model)
  c.data.seq_len = 32
  return c


def test_scan_and_remat_are_valid_encdec_keys_and_a_bad_remat_is_refused():
  validate(_config(scan_layers=True, remat='full'), device_count=1)
  with pytest.raises(ConfigError, match=r"config\.model\.remat='everything'.*'full'"):
    validate(_config(remat='everything'), device_count=1)
