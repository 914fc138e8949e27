"""Documents in packed windows: segment ids, positions, boundary loss weights, and the
decoder attending within a document (checked by perturbing the other document)."""

import jax
import numpy as np
import pytest

from lm_jax.config.defaults import base_config
from lm_jax.data import boundaries
from lm_jax.data.tasks import TaskContext, get_task
from lm_jax.models import build_model
from lm_jax.models.registry import get_family, model_fns
from tests.sharded_setup import tiny_model_cfg

EOS, BOS = 100, 101
# Compiling dominates on CPU; XLA's backend optimisations do not matter at this size.
FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}


def test_segments_after_eos():
  seg, pos = boundaries.segments(np.array([[5, 6, EOS, 7, 8, EOS, EOS, 9]]), eos_id=EOS)
  np.testing.assert_array_equal(seg, [[0, 0, 0, 1, 1, 1, 2, 3]])
  np.testing.assert_array_equal(pos, [[0, 1, 2, 0, 1, 2, 0, 0]])


def test_segments_at_bos_and_bos_eos():
  seg, pos = boundaries.segments(np.array([[5, BOS, 7, 8, BOS, 9]]), bos_id=BOS)
  np.testing.assert_array_equal(seg, [[0, 1, 1, 1, 2, 2]])
  np.testing.assert_array_equal(pos, [[0, 0, 1, 2, 0, 1]])
  seg, pos = boundaries.segments(np.array([[5, EOS, BOS, 7, EOS, BOS]]), BOS, EOS)
  np.testing.assert_array_equal(seg, [[0, 0, 1, 1, 1, 2]])
  np.testing.assert_array_equal(pos, [[0, 1, 0, 1, 2, 0]])


def ctx(**flags):
  d = base_config().data
  d.update(separator='eos', **flags)
  return TaskContext(data_cfg=d, specials={'eos': EOS}, text_vocab_size=EOS)


def test_lm_batch_with_document_mask_and_dropped_boundary_loss():
  task = get_task('lm')
  window = np.array([[1, 2, EOS, 3, 4, 5, EOS, 6, 7]])
  batch = task.make_batch(window, None, ctx(document_mask=True, drop_boundary_loss=True))
  np.testing.assert_array_equal(batch['inputs'], [[1, 2, EOS, 3, 4, 5, EOS, 6]])
  np.testing.assert_array_equal(batch['segment_ids'], [[0, 0, 0, 1, 1, 1, 1, 2]])
  np.testing.assert_array_equal(batch['positions'], [[0, 1, 2, 0, 1, 2, 3, 0]])
  # The targets 3 and 6 start a document and are predicted from the previous one.
  np.testing.assert_array_equal(batch['weights'], [[1, 1, 0, 1, 1, 1, 0, 1]])
  spec = task.batch_spec(1, 8, ctx(document_mask=True).data_cfg)
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == {
      k: (s, np.dtype(t)) for k, (s, t) in spec.items()}
  plain = task.make_batch(window, None, ctx())
  assert set(plain) == {'inputs', 'targets', 'weights'} and (plain['weights'] == 1).all()


@pytest.mark.parametrize('style', ['gpt', 'llama'])
def test_logits_do_not_depend_on_other_documents(style):
  """Doc B's logits in a packed window equal those of B alone, whatever doc A holds."""
  m = tiny_model_cfg(style)
  module, _ = build_model(m, EOS + 1)
  fns = model_fns(get_family('decoder'), module)
  task, c = get_task('lm'), ctx(document_mask=True)
  rng = np.random.default_rng(0)
  doc_a, doc_b = rng.integers(0, EOS, 6), rng.integers(0, EOS, 9)
  window = np.concatenate([doc_a, [EOS], doc_b])[None]        # 16 tokens: L = 15
  other = np.concatenate([rng.integers(0, EOS, 6), [EOS], doc_b])[None]
  alone = np.concatenate([doc_b, np.zeros(7, int)])[None]     # B at the start of a window
  batches = [task.make_batch(w, None, c) for w in (window, other, alone)]
  params = jax.jit(fns.init, compiler_options=FAST_COMPILE)(jax.random.PRNGKey(0), batches[0])
  apply = jax.jit(lambda b: fns.apply(params, b)['logits'], compiler_options=FAST_COMPILE)
  packed, perturbed, solo = (np.asarray(apply(b)) for b in batches)
  b_span = slice(7, 15)  # B's tokens as inputs (its last token is the window's target)
  assert np.abs(packed[0, :7] - perturbed[0, :7]).max() > 1e-3  # A's logits did change
  np.testing.assert_allclose(packed[0, b_span], perturbed[0, b_span], atol=1e-5)
  np.testing.assert_allclose(packed[0, b_span], solo[0, :8], atol=1e-5)
  # Without the mask, B would see A.
  unmasked = [task.make_batch(w, None, ctx()) for w in (window, other)]
  a, b = (np.asarray(apply(x)) for x in unmasked)
  assert np.abs(a[0, b_span] - b[0, b_span]).max() > 1e-3


def test_document_mask_needs_a_separator_token(tmp_path):
  from lm_jax.data import pipeline
  (tmp_path / 'a.txt').write_text('some text ' * 100)
  d = base_config().data
  d.update(source=str(tmp_path / 'a.txt'), document_mask=True, cache_dir=str(tmp_path / 'c'))
  with pytest.raises(ValueError, match='data.document_mask=True needs documents separated by '
                     "special tokens, but data.separator='auto' resolves to blank_line"):
    pipeline.build_data(d, global_batch_size=2, run_dir=str(tmp_path / 'run'))
