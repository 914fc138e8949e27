"""`lm-jax fill-mask` on a saved encoder (BERT) run: top-k ids and probabilities equal a direct
forward pass of the model with a NumPy softmax; user mistakes are one error, exit 2."""

import json
import os
import re

import jax
import numpy as np
import pytest

from lm_jax import cli
from lm_jax.errors import ConfigError
from lm_jax.generate.fill_mask import FillMasker, fill_mask_command
from lm_jax.generate.load import load_run
from tests.generate_run import ROOT, make_run_dir
from tests.run_helpers import run_cli

TOP_K = 4
# The byte tokenizer's appended special ids (lm_jax/data/special_tokens.py's canonical
# order after the 256 bytes), written out: [CLS] 259, [SEP] 260, [MASK] 261; 262 ids in all.
CLS, SEP, MASK, VOCAB = 259, 260, 261, 262


@pytest.fixture(scope='module')
def bert_run(tmp_path_factory):
  """bert_tiny:runlocal with random weights; init_std 1 spreads the logits (std ~ sqrt(d_model)),
  so the top-k are well apart."""
  run_dir = str(tmp_path_factory.mktemp('fill') / 'run')
  _, built, state = make_run_dir(run_dir, step=7, config_file='bert_tiny.py:runlocal',
                                 init_std=1.0)
  return run_dir, built, state.params


def _expected(built, params, ids):
  """[(top-k ids, their probabilities)] per [MASK] of the row `ids`, one unpadded forward pass
  and a NumPy softmax over the 262 real ids."""
  out = jax.jit(built.fns.apply)({'params': params}, {'inputs': np.asarray([ids], np.int32)})
  logits_LxV = np.asarray(out['logits'], np.float64)[0, :, :VOCAB]
  probs_LxV = np.exp(logits_LxV - logits_LxV.max(-1, keepdims=True))
  probs_LxV /= probs_LxV.sum(-1, keepdims=True)
  return [(list(np.argsort(-probs_LxV[p])[:TOP_K]), np.sort(probs_LxV[p])[::-1][:TOP_K])
          for p in range(len(ids)) if ids[p] == MASK]


def _row(*parts):
  """[CLS] + parts (str: its bytes, None: [MASK]) + [SEP], written out by hand."""
  ids = [CLS]
  for part in parts:
    ids.extend([MASK] if part is None else list(part.encode('utf-8')))
  return ids + [SEP]


def test_fill_mask_text_prints_the_models_top_k(bert_run):
  run_dir, built, params = bert_run
  proc = run_cli('fill-mask', '--run', run_dir, '--text', 'The c[MASK]t sat', '--top-k',
                 str(TOP_K))
  assert proc.returncode == 0, proc.stderr
  rows = re.findall(r'^\s+\d+\. (\S+)\s+id (\d+)', proc.stdout, re.M)
  [(ids, probs)] = _expected(built, params, _row('The c', None, 't sat'))
  assert [int(i) for _, i in rows] == ids
  np.testing.assert_allclose([float(p) for p, _ in rows], probs, atol=2e-5)  # float32


def test_fill_mask_texts_file_writes_jsonl_for_every_mask(bert_run, tmp_path):
  run_dir, built, params = bert_run
  texts = tmp_path / 'texts.jsonl'
  texts.write_text(json.dumps({'text': '[MASK]ef f(x):'}) + '\n'
                   + json.dumps({'text': 'import [MASK]s, sy[MASK], and more'}) + '\n')
  out = tmp_path / 'out.jsonl'
  assert fill_mask_command(['--run', run_dir, '--texts-file', str(texts), '--output', str(out),
                            '--top-k', str(TOP_K)]) == 0
  results = [json.loads(line) for line in out.read_text().splitlines()]
  rows = [_row(None, 'ef f(x):'), _row('import ', None, 's, sy', None, ', and more')]
  assert [r['text'] for r in results] == ['[MASK]ef f(x):', 'import [MASK]s, sy[MASK], and more']
  for result, row in zip(results, rows):  # padded in one batch; expected: each row alone
    expected = _expected(built, params, row)
    assert [m['position'] for m in result['masks']] == [p for p, i in enumerate(row) if i == MASK]
    for mask, (ids, probs) in zip(result['masks'], expected, strict=True):
      assert [p['id'] for p in mask['predictions']] == ids
      np.testing.assert_allclose([p['prob'] for p in mask['predictions']], probs,
                                 atol=2e-5)  # float32 logits of size ~10
    assert result['step'] == 7


def test_fill_mask_user_errors(bert_run, tmp_path, capsys):
  run_dir, _, _ = bert_run
  with pytest.raises(ConfigError, match=r'no \[MASK\]'):
    fill_mask_command(['--run', run_dir, '--text', 'no marker here'])
  with pytest.raises(ConfigError, match='--top-k 0: must be >= 1'):
    fill_mask_command(['--run', run_dir, '--text', 'a [MASK]', '--top-k', '0'])
  run = load_run(run_dir)
  with pytest.raises(ConfigError, match=r'--top-k 263: must be in \[1, 262\]'):
    FillMasker(run, top_k=VOCAB + 1)
  with pytest.raises(ConfigError, match='model.max_len=32'):  # 40 bytes + [MASK], [CLS], [SEP]
    FillMasker(run).predict(['x' * 40 + '[MASK]'])
  decoder_dir = str(tmp_path / 'decoder')
  make_run_dir(decoder_dir)
  with pytest.raises(SystemExit) as exit_info:
    cli.main(['fill-mask', '--run', decoder_dir, '--text', 'The [MASK] sat'])
  assert exit_info.value.code == 2
  assert "config.model.family='decoder' has no masked-LM head" in capsys.readouterr().err


@pytest.mark.slow
def test_fill_mask_equals_transformers_pipeline_on_an_imported_bert(tmp_path):
  """A random BertForMaskedLM with a WordPiece tokenizer.json, imported by `lm-jax convert`:
  fill-mask gives transformers' fill-mask pipeline's ids and scores (own [MASK] id)."""
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  tokenizers = pytest.importorskip('tokenizers')
  words = ('the cat dog sat on a mat ran ##s ##ed big small red'.split())
  vocab = {t: i for i, t in enumerate(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', *words])}
  tok = tokenizers.Tokenizer(tokenizers.models.WordPiece(vocab, unk_token='[UNK]'))
  tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
  tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
  tok.decoder = tokenizers.decoders.WordPiece()
  tok.add_special_tokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'])
  tok.post_processor = tokenizers.processors.TemplateProcessing(
      single='[CLS] $A [SEP]', special_tokens=[('[CLS]', 2), ('[SEP]', 3)])
  hf_dir = str(tmp_path / 'hf')
  torch.manual_seed(0)
  model = transformers.BertForMaskedLM(transformers.BertConfig(
      vocab_size=len(vocab), hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
      intermediate_size=40, max_position_embeddings=32, hidden_dropout_prob=0.0,
      attention_probs_dropout_prob=0.0)).eval()
  with torch.no_grad():  # off the init, so the top predictions are well apart
    for param in model.parameters():
      param.add_(0.5 * torch.randn_like(param))
  model.save_pretrained(hf_dir)
  tok.save(os.path.join(hf_dir, 'tokenizer.json'))
  run_dir = str(tmp_path / 'run')
  proc = run_cli('convert', '--from-hf', hf_dir, '--to', run_dir, '--config',
                 os.path.join(ROOT, 'configs', 'bert_tiny.py') + ':runlocal',
                 '--config.data.nsp=False')
  assert proc.returncode == 0, proc.stderr[-3000:]

  text = 'The [MASK] sat on a [MASK].'
  texts = tmp_path / 'texts.txt'
  texts.write_text(text + '\n')
  out = tmp_path / 'out.jsonl'
  proc = run_cli('fill-mask', '--run', run_dir, '--texts-file', str(texts), '--output',
                 str(out), '--top-k', str(TOP_K))
  assert proc.returncode == 0, proc.stderr[-3000:]
  [result] = [json.loads(line) for line in out.read_text().splitlines()]

  fast = transformers.PreTrainedTokenizerFast(
      tokenizer_file=os.path.join(hf_dir, 'tokenizer.json'), unk_token='[UNK]',
      pad_token='[PAD]', cls_token='[CLS]', sep_token='[SEP]', mask_token='[MASK]')
  pipe = transformers.pipeline('fill-mask', model=model, tokenizer=fast, top_k=TOP_K,
                               device='cpu')
  expected = pipe(text)  # one list of predictions per [MASK]
  assert len(result['masks']) == len(expected) == 2
  for mask, hf_predictions in zip(result['masks'], expected):
    assert [p['id'] for p in mask['predictions']] == [p['token'] for p in hf_predictions]
    np.testing.assert_allclose([p['prob'] for p in mask['predictions']],
                               [p['score'] for p in hf_predictions], atol=1e-5)
