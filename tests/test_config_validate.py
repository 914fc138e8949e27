"""lm_jax/config/validate.py: mesh resolution and every rule, each failing with a message naming the key."""


import pytest

from lm_jax.config import (ConfigError, apply_overrides, base_config, load_config,
                           resolve_mesh_shape, validate)
from tests.config_fixtures import (config_file,
                                   locked_base)


# ---------------------------------------------------------------------------
# Mesh shape


@pytest.mark.parametrize('mesh, n, expected', [
    (dict(data=-1, fsdp=1, tensor=1), 8, dict(data=8, fsdp=1, tensor=1)),
    (dict(data=1, fsdp=-1, tensor=1), 4, dict(data=1, fsdp=4, tensor=1)),
    (dict(data=2, fsdp=1, tensor=-1), 8, dict(data=2, fsdp=1, tensor=4)),
    (dict(data=2, fsdp=2, tensor=2), 8, dict(data=2, fsdp=2, tensor=2)),
    (dict(data=-1, fsdp=1, tensor=1), 1, dict(data=1, fsdp=1, tensor=1)),
])
def test_resolve_mesh_shape(mesh, n, expected):
  expected = dict(dict(stage=1, sequence=1), **expected)
  assert resolve_mesh_shape(mesh, n) == expected
  assert list(resolve_mesh_shape(mesh, n)) == ['data', 'stage', 'fsdp', 'sequence', 'tensor']


def test_resolve_mesh_shape_product_mismatch_message():
  with pytest.raises(ConfigError) as e:
    resolve_mesh_shape(dict(data=2, fsdp=2, tensor=1), 8)
  msg = str(e.value)
  assert 'config.mesh' in msg and '= 4 devices' in msg and '8 devices' in msg
  assert '--config.mesh.data=-1' in msg


def test_resolve_mesh_shape_two_free_axes():
  with pytest.raises(ConfigError, match=r'config.mesh.data and config.mesh.fsdp.*at most one'):
    resolve_mesh_shape(dict(data=-1, fsdp=-1, tensor=1), 8)


def test_resolve_mesh_shape_free_axis_does_not_divide():
  with pytest.raises(ConfigError, match=r'config.mesh.data=-1.*divide'):
    resolve_mesh_shape(dict(data=-1, fsdp=3, tensor=1), 8)


def test_resolve_mesh_shape_bad_size():
  with pytest.raises(ConfigError, match=r'config.mesh.tensor=0'):
    resolve_mesh_shape(dict(data=-1, fsdp=1, tensor=0), 8)


# ---------------------------------------------------------------------------
# Validation: every rule fails with a message naming the key.


def test_base_config_validates():
  validate(locked_base(), device_count=1)
  validate(locked_base(), device_count=16)


CHOICE_CASES = [
    ('model.family', 'hyena'), ('model.position', 'alibi'), ('model.norm', 'batchnorm'),
    ('model.mlp', 'relu'), ('model.attention', 'flash'), ('model.remat', 'some'),
    ('model.param_dtype', 'float16'), ('model.dtype', 'fp32'), ('data.tokenizer', 'word'),
    ('optimizer.schedule', 'step'), ('optimizer.name', 'sgd'), ('mesh.rules', 'zero3'),
]


@pytest.mark.parametrize('key, value', CHOICE_CASES)
def test_choice_keys(key, value):
  c = locked_base()
  apply_overrides(c, [f'--config.{key}={value}'])
  with pytest.raises(ConfigError) as e:
    validate(c, device_count=1)
  msg = str(e.value)
  assert f'config.{key}={value!r}' in msg and 'choose one of' in msg


POSITIVE = ['model.vocab_multiple', 'model.num_layers', 'model.d_model', 'model.num_heads',
            'model.max_len', 'data.seq_len', 'train.steps', 'train.global_batch_size',
            'train.microbatches', 'train.eval_batches', 'train.log_every', 'checkpoint.keep']


@pytest.mark.parametrize('key', POSITIVE)
def test_positive_ints(key):
  c = locked_base()
  apply_overrides(c, [f'--config.{key}=0'])
  with pytest.raises(ConfigError, match=rf'config\.{key}=0: .*positive'):
    validate(c, device_count=1)


NON_NEGATIVE = ['model.vocab_size', 'model.num_kv_heads', 'model.head_dim', 'model.mlp_dim',
                'data.max_bytes', 'data.prefetch', 'optimizer.warmup_steps',
                'optimizer.decay_steps', 'train.eval_every', 'checkpoint.every']


@pytest.mark.parametrize('key', NON_NEGATIVE)
def test_non_negative_ints(key):
  c = locked_base()
  apply_overrides(c, [f'--config.{key}=-1'])
  with pytest.raises(ConfigError, match=rf'config\.{key}=-1: must be >= 0'):
    validate(c, device_count=1)


FLOAT_CASES = [
    ('model.dropout', '1.0'), ('model.dropout', '-0.1'), ('model.rope_theta', '0'),
    ('model.norm_eps', '0'), ('model.init_std', '-1'), ('data.val_fraction', '1.0'),
    ('data.val_fraction', '-0.1'), ('data.test_fraction', '1.0'),
    ('data.test_fraction', '-0.05'), ('optimizer.lr', '0'), ('optimizer.min_lr_ratio', '1.5'),
    ('optimizer.b1', '1.0'), ('optimizer.b2', '-0.5'), ('optimizer.eps', '0'),
    ('optimizer.weight_decay', '-0.1'), ('optimizer.grad_clip', '-1'), ('objective.z_loss', '-1'),
    ('logging.peak_flops_per_device', '-1'), ('optimizer.lr', 'nan'),
    ('optimizer.l1', '-1e-3'), ('optimizer.l2', 'nan'),
]


@pytest.mark.parametrize('key, value', FLOAT_CASES)
def test_float_ranges(key, value):
  c = locked_base()
  apply_overrides(c, [f'--config.{key}={value}'])
  with pytest.raises(ConfigError, match=rf'config\.{key}=.*must be in'):
    validate(c, device_count=1)


@pytest.mark.parametrize('key', ['data.source', 'data.file_glob', 'logging.run_dir'])
def test_non_empty_strings(key):
  c = locked_base()
  apply_overrides(c, [f'--config.{key}='])
  with pytest.raises(ConfigError, match=rf"config\.{key}='': must not be empty"):
    validate(c, device_count=1)


# (overrides, device_count, substrings the message must contain)
RULE_CASES = {
    'd_model_heads': (['model.d_model=100', 'model.num_heads=3'], 1,
                      ['config.model.d_model=100', 'config.model.num_heads=3', 'head_dim']),
    # with head_dim given, d_model % num_heads does not matter; the GQA check still does
    'explicit_head_dim_allows_any_d_model': (
        ['model.d_model=100', 'model.num_heads=3', 'model.head_dim=32', 'model.num_kv_heads=2'],
        1, ['config.model.num_kv_heads=2', 'GQA']),
    'gqa': (['model.num_kv_heads=3'], 1, ['config.model.num_kv_heads=3', 'num_heads=4', 'GQA']),
    'gqa_more_kv_than_q': (['model.num_kv_heads=8'], 1, ['config.model.num_kv_heads=8']),
    'rope_odd_head_dim': (['model.position=rope', 'model.head_dim=33'], 1,
                          ['config.model.head_dim=33', 'even']),
    'cudnn_float32': (['model.attention=cudnn'], 1,
                      ["config.model.attention='cudnn'", 'bfloat16']),
    'seq_len_max_len': (['data.seq_len=512'], 1,
                        ['config.data.seq_len=512', 'config.model.max_len=256']),
    'bpe_vocab': (['data.tokenizer=bpe', 'model.vocab_size=100'], 1,
                  ['config.model.vocab_size=100', 'bpe_vocab_size=4096']),
    'warmup_gt_steps': (['optimizer.warmup_steps=2000'], 1,
                        ['config.optimizer.warmup_steps=2000', 'config.train.steps=1000']),
    'warmup_gt_decay_steps': (['optimizer.warmup_steps=600', 'optimizer.decay_steps=500'], 1,
                              ['config.optimizer.warmup_steps=600',
                               'config.optimizer.decay_steps=500']),
    'microbatches': (['train.microbatches=3'], 1,
                     ['config.train.global_batch_size=16', 'microbatches=3']),
    'eval_without_val': (['data.val_fraction=0'], 1,
                         ['config.train.eval_every=200', 'val_fraction=0']),
    'no_train_split': (['data.val_fraction=0.5', 'data.test_fraction=0.5'], 1,
                       ['config.data.test_fraction=0.5', 'val_fraction=0.5',
                        'val_fraction + test_fraction must be < 1']),
    'batch_parallel': (['train.global_batch_size=12'], 8,
                       ['config.train.global_batch_size=12', 'data*fsdp', '= 8']),
    'batch_parallel_micro': (['train.global_batch_size=16', 'train.microbatches=4'], 8,
                             ['config.train.global_batch_size=16', '16 / 4 = 4', 'multiple of 32']),
    'mesh_product': (['mesh.data=2'], 4, ['config.mesh', '= 2 devices', '4 devices',
                                          '--config.mesh.data=-1']),
    'mesh_two_free': (['mesh.fsdp=-1'], 4, ['config.mesh.data and config.mesh.fsdp']),
    'mesh_bad_size': (['mesh.tensor=0'], 4, ['config.mesh.tensor=0']),
    'rules_unused_axis': (['mesh.rules=dp', 'mesh.data=1', 'mesh.fsdp=-1'], 4,
                          ["config.mesh.rules='dp'", 'fsdp']),
    'tensor_heads': (['mesh.tensor=8', 'mesh.data=1', 'model.num_heads=4', 'model.d_model=128'],
                     8, ['config.model.num_heads=4', 'config.mesh.tensor=8', 'tensor']),
    'tensor_kv_heads': (['mesh.tensor=4', 'mesh.data=1', 'model.num_heads=8',
                         'model.num_kv_heads=2'], 4,
                        ['config.model.num_kv_heads=2', 'config.mesh.tensor=4']),
    'tensor_mlp': (['mesh.tensor=2', 'mesh.data=1', 'model.mlp_dim=301'], 2,
                   ['config.model.mlp_dim=301', 'config.mesh.tensor=2']),
    'tensor_vocab_multiple': (['mesh.tensor=4', 'mesh.data=1', 'model.vocab_multiple=1'], 4,
                              ['config.model.vocab_multiple=1', 'config.mesh.tensor=4']),
    'tensor_padded_vocab': (['mesh.tensor=2', 'mesh.data=1', 'model.vocab_multiple=1',
                             'model.vocab_size=65'], 2,
                            ['config.model.vocab_multiple=1', 'padded vocabulary 65']),
    'fsdp_d_model': (['mesh.fsdp=-1', 'mesh.data=1', 'model.d_model=100', 'model.num_heads=4',
                      'train.global_batch_size=24'], 3,
                     ['config.model.d_model=100', 'config.mesh.fsdp=3']),
}


@pytest.mark.parametrize('case', sorted(RULE_CASES))
def test_validation_rule(case):
  overrides, n, expected = RULE_CASES[case]
  c = locked_base()
  apply_overrides(c, ['--config.' + o for o in overrides])
  with pytest.raises(ConfigError) as e:
    validate(c, device_count=n)
  for s in expected:
    assert s in str(e.value), (s, str(e.value))


def test_fixes_suggested_by_messages_work():
  c = locked_base()
  apply_overrides(c, ['--config.mesh.data=2'])
  with pytest.raises(ConfigError):
    validate(c, device_count=4)
  apply_overrides(c, ['--config.mesh.data=-1'])
  validate(c, device_count=4)


def test_schema_unknown_key_in_config_file_is_caught(tmp_path):
  path = config_file(tmp_path, (
      'from lm_jax.config.defaults import base_config\n'
      'def get_config():\n'
      '  c = base_config()\n'
      '  c.model.num_layer = 2   # typo: adds a key before the loader locks\n'
      '  return c\n'))
  c = load_config(path)
  with pytest.raises(ConfigError) as e:
    validate(c, device_count=1)
  assert 'config.model.num_layer ' in str(e.value)
  assert '--config.model.num_layers' in str(e.value)


def test_schema_wrong_type():
  c = base_config()
  c.model.num_layers = True  # ConfigDict lets a bool into an int field
  with pytest.raises(ConfigError, match=r'config.model.num_layers=True has type bool, expected int'):
    validate(c, device_count=1)


def test_schema_missing_key():
  c = base_config()
  del c.model['dropout']
  with pytest.raises(ConfigError, match=r'config.model.dropout is missing'):
    validate(c, device_count=1)
