"""Pretrained tokenizers from local files (built here, no hub): ids equal the libraries'
own encoding, special tokens map to the tokenizer's own, save/load keeps everything."""

import json
import os

import numpy as np
import pytest

from lm_jax.data import pretrained_tokenizers, special_tokens, tokenizers

TEXT = ['The quick brown fox jumps over the lazy dog.', 'Ünïcödé and emoji 🐍 too',
        'def f(x):\n    return x + 1\n'] * 20
SAMPLES = ['the lazy fox', 'Ünïcödé 🐍!', '  spaces\nand lines ']


def gpt2_style(tmp_path):
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(TEXT, trainers.BpeTrainer(
      vocab_size=300, special_tokens=['<|endoftext|>'], show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
  path = str(tmp_path / 'gpt2' / 'tokenizer.json')
  (tmp_path / 'gpt2').mkdir()
  tok.save(path)
  return path


def bert_style(tmp_path):
  from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers, decoders
  tok = Tokenizer(models.WordPiece(unk_token='[UNK]'))
  tok.normalizer = normalizers.BertNormalizer(lowercase=True)
  tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  tok.decoder = decoders.WordPiece()
  tok.train_from_iterator(TEXT, trainers.WordPieceTrainer(
      vocab_size=200, special_tokens=['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'],
      show_progress=False))
  path = str(tmp_path / 'bert.json')
  tok.save(path)
  return path


def llama_style(tmp_path):
  from tokenizers import SentencePieceBPETokenizer
  tok = SentencePieceBPETokenizer()
  tok.train_from_iterator(TEXT, vocab_size=200, special_tokens=['<unk>', '<s>', '</s>'],
                          show_progress=False)
  path = str(tmp_path / 'llama.json')
  tok.save(path)
  return path


def spm_model(tmp_path):
  import sentencepiece as spm
  (tmp_path / 'corpus.txt').write_text('\n'.join(TEXT), encoding='utf-8')
  spm.SentencePieceTrainer.train(
      input=str(tmp_path / 'corpus.txt'), model_prefix=str(tmp_path / 't5'), vocab_size=60, hard_vocab_limit=False,
      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, user_defined_symbols=['<extra_id_0>',
                                                                    '<extra_id_1>'],
      minloglevel=2)
  return str(tmp_path / 't5.model')


def test_hf_files_encode_as_the_library(tmp_path):
  from tokenizers import Tokenizer
  for make in (gpt2_style, bert_style, llama_style):
    path = make(tmp_path)
    ours, theirs = pretrained_tokenizers.from_path(path), Tokenizer.from_file(path)
    for s in SAMPLES:
      assert ours.encode(s).tolist() == theirs.encode(s, add_special_tokens=False).ids
    assert [a.tolist() for a in ours.encode_batch(SAMPLES)] == [
        e.ids for e in theirs.encode_batch(SAMPLES, add_special_tokens=False)]
    assert ours.vocab_size == theirs.get_vocab_size()


def test_sentencepiece_encodes_as_the_library(tmp_path):
  import sentencepiece as spm
  path = spm_model(tmp_path)
  ours, theirs = pretrained_tokenizers.from_path(path), spm.SentencePieceProcessor(model_file=path)
  for s in SAMPLES:
    assert ours.encode(s).tolist() == theirs.encode(s)
    assert ours.decode(ours.encode(s)) == theirs.decode(theirs.encode(s))
  assert ours.vocab_size == theirs.get_piece_size()


def test_special_tokens_are_the_tokenizers_own(tmp_path):
  from tokenizers import Tokenizer
  path = gpt2_style(tmp_path)
  gpt2 = pretrained_tokenizers.from_path(str(tmp_path / 'gpt2'))  # the directory holding it
  eot = Tokenizer.from_file(path).token_to_id('<|endoftext|>')
  assert special_tokens.special_ids(gpt2, ('eos', 'bos')) == {'eos': eot, 'bos': eot}
  # No pad of its own: appended after the vocabulary.
  assert special_tokens.special_ids(gpt2, ('pad',)) == {'pad': gpt2.vocab_size + 1}
  bert_path = bert_style(tmp_path)
  bert, ref = pretrained_tokenizers.from_path(bert_path), Tokenizer.from_file(bert_path)
  assert special_tokens.special_ids(bert, ('cls', 'sep', 'mask', 'pad')) == {
      r: ref.token_to_id(t) for r, t in
      (('cls', '[CLS]'), ('sep', '[SEP]'), ('mask', '[MASK]'), ('pad', '[PAD]'))}
  llama_path = llama_style(tmp_path)
  llama, ref = pretrained_tokenizers.from_path(llama_path), Tokenizer.from_file(llama_path)
  assert special_tokens.special_ids(llama, ('bos', 'eos')) == {
      'bos': ref.token_to_id('<s>'), 'eos': ref.token_to_id('</s>')}
  t5 = pretrained_tokenizers.from_path(spm_model(tmp_path))
  assert special_tokens.special_ids(t5, ('eos', 'pad', 'sentinel_0', 'sentinel_1')) == {
      'eos': 1, 'pad': 0, 'sentinel_0': t5.sp.piece_to_id('<extra_id_0>'),
      'sentinel_1': t5.sp.piece_to_id('<extra_id_1>')}


@pytest.mark.parametrize('make', [gpt2_style, spm_model])
def test_saved_and_loaded_with_the_run(tmp_path, make):
  original = pretrained_tokenizers.from_path(make(tmp_path))
  original.save(str(tmp_path / 'run_tok'))
  loaded = tokenizers.load_tokenizer(str(tmp_path / 'run_tok'))
  assert loaded.kind == 'pretrained' and loaded.identity() == original.identity()
  for s in SAMPLES:
    np.testing.assert_array_equal(loaded.encode(s), original.encode(s))
  meta = json.loads((tmp_path / 'run_tok' / tokenizers.META_FILE).read_text())
  assert meta['kind'] == 'pretrained'


def test_byte_lengths_of_byte_level_bpe(tmp_path):
  tok = pretrained_tokenizers.from_path(gpt2_style(tmp_path))
  lengths = tok.token_byte_lengths()
  for s in SAMPLES:  # byte-level pieces: their lengths sum to the text's bytes
    assert lengths[tok.encode(s)].sum() == len(s.encode('utf-8'))


def test_bad_paths(tmp_path):
  with pytest.raises(ValueError, match='no such file'):
    pretrained_tokenizers.from_path(str(tmp_path / 'nope.json'))
  with pytest.raises(ValueError, match='neither tokenizer.json nor tokenizer.model'):
    pretrained_tokenizers.from_path(str(tmp_path))
  (tmp_path / 'junk.model').write_bytes(b'not a model')
  with pytest.raises(ValueError, match='not a SentencePiece model'):
    pretrained_tokenizers.from_path(str(tmp_path / 'junk.model'))


def test_a_run_on_a_pretrained_tokenizer(tmp_path):
  """build_data with data.tokenizer=pretrained: the stream is the library's ids of each
  document followed by the tokenizer's own end-of-text id; the tokenizer is saved with the run."""
  from tokenizers import Tokenizer
  from lm_jax.config.defaults import base_config
  from lm_jax.data import pipeline, prepare
  path = gpt2_style(tmp_path)
  docs = [f'{t} number {i}' for i, t in enumerate(TEXT)]
  with open(tmp_path / 'c.jsonl', 'w', encoding='utf-8') as f:
    f.writelines(json.dumps({'text': d}) + '\n' for d in docs)
  c = base_config().data
  c.update(source=str(tmp_path / 'c.jsonl'), tokenizer='pretrained', tokenizer_path=path,
           seq_len=8, cache_dir=str(tmp_path / 'cache'), val_fraction=0.0, test_fraction=0.0)
  data = pipeline.build_data(c, global_batch_size=2, run_dir=str(tmp_path / 'run'))
  ref = Tokenizer.from_file(path)
  eot = ref.token_to_id('<|endoftext|>')
  assert data.specials == {'eos': eot} and data.vocab_size == ref.get_vocab_size()
  with open(os.path.join(data.tokens_path, prepare.INDEX_FILE), encoding='utf-8') as f:
    stream = prepare.Prepared(data.tokens_path, json.load(f)).stream('all')
  expected = sum((ref.encode(d, add_special_tokens=False).ids + [eot] for d in docs), [])
  assert np.asarray(stream).tolist() == expected
  saved = tokenizers.load_tokenizer(str(tmp_path / 'run' / 'tokenizer'))
  assert saved.identity() == data.tokenizer.identity()


def test_config_needs_a_path_for_pretrained_and_only_then():
  from lm_jax.config.defaults import base_config
  from lm_jax.config.validate import validate
  from lm_jax.errors import ConfigError
  c = base_config()
  c.data.tokenizer = 'pretrained'
  with pytest.raises(ConfigError, match="config.data.tokenizer_path='': data.tokenizer="):
    validate(c, device_count=1)
  c = base_config()
  c.data.tokenizer_path = 'tok.json'
  with pytest.raises(ConfigError, match="only data.tokenizer='pretrained' reads it"):
    validate(c, device_count=1)
