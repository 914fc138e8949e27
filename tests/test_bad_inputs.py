"""A sweep of user errors over configs, paths and run directories: each gives one
message on stderr (no traceback) and exit 2, and changes nothing in an existing run.

The cases run as `lm-jax` command lines in one batch process (tests/cli_batch.py:
JAX starts once, each case has its own stderr), on 4 simulated devices; a few run
as real `python -m lm_jax.cli` subprocesses too, to show the batch sees what a
process shows. After every case the batch hashes the watched run directories.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest

from tests.run_helpers import QUICK, ROOT, cli_env, run_cli, tiny_overrides, tree_digest

DEVICES = 4
SWEEP_OK = '''
from lm_jax.sweep import Sweep, grid
def get_sweep():
  return Sweep(name='s', config={config!r}, runs=grid({grid}), fixed={{'train.steps': 2}})
'''


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(text)
  return path


def _unwritable_dir():
  """A directory this process cannot create files in (root writes through mode bits)."""
  if os.geteuid() != 0:
    path = tempfile.mkdtemp()
    os.chmod(path, 0o500)
    return path
  try:
    with tempfile.TemporaryFile(dir='/sys'):
      return None
  except OSError:
    return '/sys'


def _cases(t):
  """name -> (argv, words the one error message must contain); `t`: the material."""
  run, empty_run = t['run'], t['empty_run']
  q = ['--config', QUICK]

  def flags(run_dir=run, steps=2, **extra):
    return tiny_overrides(run_dir, steps, **extra)

  fresh = os.path.join(t['tmp'], 'fresh')  # a run directory no case may create
  cases = {
      # --- the command line and the config file
      'unknown_command': (['frobnicate'], ["unknown command 'frobnicate'"]),
      'no_config': (['train'], ['no config file given']),
      'config_twice': (['train', *q, '--config', QUICK], ['given twice']),
      'missing_config_file': (['train', '--config', 'configs/quickstrat.py'],
                              ['config file not found', "did you mean 'configs/quickstart.py'"]),
      'config_not_python': (['train', '--config', t['readme']], ['is not a python file']),
      'config_syntax_error': (['train', '--config', t['syntax']], ['syntax error', 'syntax.py', 'line 1']),
      'config_raises': (['train', '--config', t['raises']],
                        ['raises.py', 'line 3', "NameError: name 'undefined_name'"]),
      'config_without_get_config': (['train', '--config', t['no_get']], ['no get_config()']),
      'config_returns_dict': (['train', '--config', t['returns_dict']],
                              ['returned dict', 'ConfigDict']),
      'bad_config_arg': (['train', '--config', QUICK.replace(':runlocal', ':huge')],
                         ["unknown argument 'huge'", "'runlocal'"]),
      'extra_train_argument': (['train', *q, '--steps=3'], ['unknown arguments for train']),
      # --- keys, types and values
      'unknown_key': (['train', *q, *flags(fresh), '--config.train.lr=1e-3'],
                      ['config.train.lr', 'Did you mean --config.optimizer.lr']),
      'unknown_section': (['train', *q, *flags(fresh), '--config.modle.d_model=64'],
                          ['config.modle.d_model', '--config.model.d_model']),
      'section_as_value': (['train', *q, *flags(fresh), '--config.model=3'], ['is a section']),
      'override_without_value': (['train', *q, *flags(fresh), '--config.train.steps'],
                                 ['has no value']),
      'int_not_int': (['train', *q, *flags(fresh), '--config.train.steps=many'],
                      ['config.train.steps', "'many' is not a valid int"]),
      'int_not_whole': (['train', *q, *flags(fresh), '--config.model.d_model=32.5'],
                        ['config.model.d_model', 'not a valid int']),
      'bool_not_bool': (['train', *q, *flags(fresh), '--config.checkpoint.async_save=maybe'],
                        ['config.checkpoint.async_save', 'bool']),
      'tuple_not_literal': (['train', *q, *flags(fresh), '--config.logging.profile_steps=(3,'],
                            ['config.logging.profile_steps']),
      'bad_choice': (['train', *q, *flags(fresh), '--config.model.norm=batchnorm'],
                     ['config.model.norm', "'layernorm', 'rmsnorm'"]),
      'zero_steps': (['train', *q, *flags(fresh, steps=0)],
                     ['config.train.steps=0', 'positive int']),
      'negative_lr': (['train', *q, *flags(fresh), '--config.optimizer.lr=-1e-3'],
                      ['config.optimizer.lr', 'must be in (0, inf)']),
      'nan_dropout': (['train', *q, *flags(fresh), '--config.model.dropout=nan'],
                      ['config.model.dropout=nan']),
      'fractions_leave_no_training': (
          ['train', *q, *flags(fresh), '--config.data.val_fraction=0.6',
           '--config.data.test_fraction=0.5'], ['config.data.test_fraction', '< 1']),
      'eval_without_val_split': (['train', *q, *flags(fresh), '--config.data.val_fraction=0'],
                                 ['config.train.eval_every', 'val_fraction=0']),
      'warmup_past_decay': (['train', *q, *flags(fresh), '--config.optimizer.warmup_steps=50'],
                            ['config.optimizer.warmup_steps=50', 'warmup must end']),
      'profile_steps_reversed': (['train', *q, *flags(fresh),
                                  '--config.logging.profile_steps=5,3'],
                                 ['config.logging.profile_steps']),
      'unknown_family': (['train', *q, *flags(fresh), '--config.model.family=perceiver'],
                         ["config.model.family='perceiver'", 'is not a model family']),
      'unknown_task': (['train', *q, *flags(fresh), '--config.data.task=translate'],
                       ["config.data.task='translate'", 'not a task']),
      'seq_len_past_positions': (['train', *q, *flags(fresh), '--config.data.seq_len=64'],
                                 ['config.data.seq_len', 'max_len']),
      'bpe_vocab_below_tokenizer': (
          ['train', *q, *flags(fresh), '--config.data.tokenizer=bpe',
           '--config.data.bpe_vocab_size=512', '--config.model.vocab_size=300'],
          ['config.model.vocab_size=300', 'bpe_vocab_size=512']),
      'byte_vocab_below_tokenizer': (['train', *q, *flags(fresh), '--config.model.vocab_size=200'],
                                     ['config.model.vocab_size=200', '256']),
      'unknown_objective': (['train', *q, *flags(fresh), '--config.objective.name=mse'],
                            ["config.objective.name='mse'", "'cross_entropy'"]),
      'objective_key_unused': (['train', *q, *flags(fresh), '--config.objective.temperature=2'],
                               ['config.objective.temperature=2.0', 'does not use it']),
      'distill_without_teacher': (['train', *q, *flags(fresh), '--config.objective.name=distill'],
                                  ['config.objective.teacher_run', 'needs a teacher']),
      'distill_missing_teacher': (
          ['train', *q, *flags(fresh), '--config.objective.name=distill',
           f'--config.objective.teacher_run={t["tmp"]}/no_teacher'], ['no such directory']),
      'distill_teacher_without_checkpoint': (
          ['train', *q, *flags(fresh), '--config.objective.name=distill',
           f'--config.objective.teacher_run={empty_run}'], ['holds no checkpoint']),
      # --- the mesh on 4 devices
      'mesh_product': (['train', *q, *flags(fresh), '--config.mesh.data=3'],
                       ['config.mesh', '= 3 devices but 4 devices are available']),
      'mesh_two_free_axes': (['train', *q, *flags(fresh), '--config.mesh.fsdp=-1'],
                             ['at most one axis may be -1']),
      'mesh_axis_not_dividing': (['train', *q, *flags(fresh), '--config.mesh.tensor=3'],
                                 ['does not divide the 4 available devices']),
      'mesh_axis_zero': (['train', *q, *flags(fresh), '--config.mesh.tensor=0'],
                         ['config.mesh.tensor=0', 'positive int']),
      'batch_not_dividing_data': (['train', *q, *flags(fresh),
                                   '--config.train.global_batch_size=6'],
                                  ['global_batch_size', 'data*fsdp', '4']),
      'batch_not_dividing_microbatches': (
          ['train', *q, *flags(fresh), '--config.train.microbatches=3'],
          ['config.train.global_batch_size=4', 'microbatches=3']),
      'heads_not_dividing_tensor': (['train', *q, *flags(fresh), '--config.mesh.data=1',
                                     '--config.mesh.tensor=4'], ['num_heads', 'tensor']),
      'stage_past_layers': (['train', *q, *flags(fresh), '--config.mesh.data=1',
                             '--config.mesh.stage=4'], ['config.mesh.stage', 'num_layers']),
      # --- paths
      'missing_corpus': (['train', *q, *flags(fresh),
                          f'--config.data.source={t["tmp"]}/no_such_corpus.txt'],
                         ['config.data', 'no_such_corpus.txt']),
      # Pointed at the trained run: its tokenizer and checkpoints must stay as they are.
      'empty_corpus': (['train', *q, *flags(), f'--config.data.source={t["empty_file"]}'],
                       ['config.data', '(0 tokens)']),
      'corpus_dir_without_files': (['train', *q, *flags(fresh),
                                    f'--config.data.source={t["no_py_dir"]}'],
                                   ['config.data', 'no_py']),
      # A new run directory (unwatched): the data side saves the tokenizer before it
      # counts the windows, so this one keeps a tokenizer/ (replaced when the data changes).
      'corpus_too_small': (['train', *q, *flags(os.path.join(t['tmp'], 'new_run')),
                            f'--config.data.source={t["tiny"]}'],
                           ['config.data', '(29 tokens)', 'fewer than one global batch']),
      'run_dir_below_a_file': (['train', *q, *flags(os.path.join(t['a_file'], 'run'))],
                               ['config.logging.run_dir', 'cannot be created']),
      'cache_dir_below_a_file': (['train', *q, *flags(fresh),
                                  f'--config.data.cache_dir={t["a_file"]}/cache'],
                                 ['config.data.cache_dir', 'cannot be created']),
      # --- an existing run directory
      'resume_changed_model': (['train', *q, *flags(), '--config.model.d_model=64'],
                               ['model.d_model: saved 32, now 64']),
      'resume_changed_layers': (['train', *q, *flags(), '--config.model.num_layers=3'],
                                ['model.num_layers: saved 2, now 3']),
      'resume_changed_data_seed': (['train', *q, *flags(), '--config.data.seed=9'],
                                   ['other data', 'data.seed', 'allow_new_data']),
      'resume_changed_batch': (['train', *q, *flags(), '--config.train.global_batch_size=8'],
                               ['other data', 'train.global_batch_size']),
      'resume_changed_corpus': (['train', *q, *flags(), f'--config.data.source={t["other_corpus"]}'],
                                ['other data', 'corpus content', 'allow_new_data']),
      'resume_changed_tokenizer': (['train', *q, *flags(), '--config.data.tokenizer=char'],
                                   ['tokenizer']),
      'eval_without_checkpoint': (['eval', *q, *flags(empty_run)], ['no checkpoint to evaluate']),
      'eval_missing_step': (['eval', *q, *flags(), '--step', '7'],
                            ['--step 7', 'saved steps: [2]']),
      'eval_bad_step': (['eval', *q, *flags(), '--step', 'last'],
                        ['--step last', 'step number or best']),
      'eval_negative_step': (['eval', *q, *flags(), '--step', '-2'],
                             ['--step -2', 'step number or best']),
      'eval_bad_split': (['eval', *q, *flags(), '--split', 'train'], ['expected one of val, test']),
      'eval_extra_argument': (['eval', *q, *flags(), '--steps', '2'],
                              ['unknown arguments for eval']),
      # --- sweeps
      'sweep_missing_file': (['sweep', 'experiments/sweeps/nope.py'], ['sweep file not found']),
      'sweep_without_get_sweep': (['sweep', t['sweep_no_get'], '--dry-run'],
                                  ['no get_sweep()']),
      'sweep_raises': (['sweep', t['sweep_raises'], '--dry-run'],
                       ['raises_sweep.py', 'ZeroDivisionError']),
      'sweep_unknown_key': (['sweep', t['sweep_bad_key'], '--dry-run'],
                            ['config.optimizer.learning_rate']),
      'sweep_bad_value': (['sweep', t['sweep_bad_value'], '--dry-run'],
                          ['config.train.steps', 'not a valid int']),
      'sweep_bad_parallel': (['sweep', 'experiments/sweeps/quickstart_lr_width.py',
                              '--parallel', '0'], ['--parallel must be at least 1']),
      'sweep_unknown_flag': (['sweep', 'experiments/sweeps/quickstart_lr_width.py', '--fast'],
                             ['unrecognized arguments: --fast']),
      # --- plan
      'plan_without_devices': (['plan', *q, '--device', 'h100'], ['--devices']),
      'plan_unknown_device': (['plan', *q, '--devices', '8', '--device', 'tpu-v9'],
                              ["--device 'tpu-v9' is not known"]),
      'plan_bad_devices': (['plan', *q, '--devices', 'eight', '--device', 'h100'],
                           ['--devices', "'eight'"]),
  }
  if t['unwritable']:
    cases['run_dir_not_writable'] = (['train', *q, *flags(os.path.join(t['unwritable'], 'run'))],
                                     ['config.logging.run_dir', 'is not writable'])
  return cases


@pytest.fixture(scope='module')
def material(tmp_path_factory):
  """Files the cases point at, and one trained run (2 steps, checkpoint at step 2)."""
  tmp = str(tmp_path_factory.mktemp('bad_inputs'))
  t = {'tmp': tmp, 'run': os.path.join(tmp, 'run'), 'empty_run': os.path.join(tmp, 'empty_run'),
       'unwritable': _unwritable_dir()}
  os.makedirs(t['empty_run'])
  t['readme'] = os.path.join(ROOT, 'README.md')
  t['syntax'] = _write(f'{tmp}/cfgs/syntax.py', 'def get_config(:\n  return 1 +\n')
  t['raises'] = _write(f'{tmp}/cfgs/raises.py',
                       'def get_config(arg=None):\n  x = 1\n  return undefined_name\n')
  t['no_get'] = _write(f'{tmp}/cfgs/no_get.py', 'CONFIG = {}\n')
  t['returns_dict'] = _write(f'{tmp}/cfgs/returns_dict.py', 'def get_config():\n  return {}\n')
  t['empty_file'] = _write(f'{tmp}/data/empty.txt', '')
  t['tiny'] = _write(f'{tmp}/data/tiny.txt', 'too short for one batch of windows\n')
  t['other_corpus'] = _write(f'{tmp}/data/other.txt', 'another text entirely. ' * 20000)
  t['no_py_dir'] = os.path.join(tmp, 'no_py')
  _write(f'{t["no_py_dir"]}/notes.md', 'no python files here\n')
  t['a_file'] = _write(f'{tmp}/a_file', 'a file, so nothing can be created below it\n')
  sweeps = f'{tmp}/sweeps'
  t['sweep_no_get'] = _write(f'{sweeps}/no_get.py', 'SWEEP = None\n')
  t['sweep_raises'] = _write(f'{sweeps}/raises_sweep.py', 'def get_sweep():\n  return 1 / 0\n')
  t['sweep_bad_key'] = _write(f'{sweeps}/bad_key.py', SWEEP_OK.format(
      config=QUICK, grid="{'optimizer.learning_rate': [1e-3]}"))
  t['sweep_bad_value'] = _write(f'{sweeps}/bad_value.py', SWEEP_OK.format(
      config=QUICK, grid="{'train.steps': ['many']}"))
  done = run_cli('train', '--config', QUICK, *tiny_overrides(
      t['run'], 2, **{'train.eval_every': 2, 'checkpoint.every': 2,
                      'checkpoint.async_save': False}))
  assert done.returncode == 0, done.stderr[-3000:]
  return t


@pytest.fixture(scope='module')
def results(material, tmp_path_factory):
  """{case: {'code', 'stderr', 'digests'}} of every case, run in one batch process."""
  cases = {name: argv for name, (argv, _) in _cases(material).items()}
  watch = [material['run'], material['empty_run'], os.path.join(material['tmp'], 'fresh')]
  io = tmp_path_factory.mktemp('batch')
  (io / 'cases.json').write_text(json.dumps({'cases': cases, 'watch': watch}))
  before = {d: tree_digest(d) for d in watch}
  done = subprocess.run([sys.executable, '-m', 'tests.cli_batch', str(io / 'cases.json'),
                         str(io / 'results.json')], env=cli_env(DEVICES), cwd=ROOT,
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-5000:]
  return before, json.loads((io / 'results.json').read_text())


def _check(name, code, stderr, words):
  assert 'Traceback' not in stderr, f'{name}:\n{stderr}'
  assert code == 2, f'{name}: exit {code}\n{stderr}'
  # One message: a single 'error:' line (the message may go on over a few lines).
  starts = [i for i, line in enumerate(stderr.splitlines()) if 'error:' in line]
  assert len(starts) == 1, f'{name}: {len(starts)} error lines\n{stderr}'
  message = '\n'.join(stderr.splitlines()[starts[0]:])
  for word in words:
    assert word in message, f'{name}: {word!r} not in\n{message}'


CASE_NAMES = sorted(_cases({'tmp': '/t', 'run': '/t/run', 'empty_run': '/t/e', 'readme': '',
                            'unwritable': '/u', **{k: '' for k in (
                                'syntax', 'raises', 'no_get', 'returns_dict', 'empty_file',
                                'tiny', 'other_corpus', 'no_py_dir', 'a_file', 'sweep_no_get',
                                'sweep_raises', 'sweep_bad_key', 'sweep_bad_value')}}))


def test_there_are_at_least_30_cases():
  assert len(CASE_NAMES) >= 30


@pytest.mark.parametrize('name', CASE_NAMES)
def test_user_error_is_one_message_and_exit_2(name, material, results):
  before, got = results
  if name not in got:
    pytest.skip('no directory here that this process cannot write to')
  _, words = _cases(material)[name]
  _check(name, got[name]['code'], got[name]['stderr'], words)
  assert got[name]['changed'] == [], f'{name} changed {got[name]["changed"]}'


@pytest.mark.parametrize('name', ['missing_config_file', 'resume_changed_model', 'eval_bad_step',
                                  'sweep_unknown_key'])
def test_a_real_process_shows_what_the_batch_shows(name, material, results):
  argv, words = _cases(material)[name]
  done = subprocess.run([sys.executable, '-m', 'lm_jax.cli', *argv], env=cli_env(DEVICES),
                        cwd=ROOT, capture_output=True, text=True, timeout=240)
  _check(name, done.returncode, done.stderr, words)
  batch = results[1][name]['stderr']
  assert done.stderr.strip().splitlines()[-1] == batch.strip().splitlines()[-1]
  assert tree_digest(material['run']) == results[0][material['run']]


def test_plan_on_a_family_the_planner_does_not_model(monkeypatch, capsys):
  """`lm-jax plan` of a family whose entry says planner=False: one message, exit 2. No
  such family is registered yet, so the decoder's entry is patched to say so."""
  import dataclasses

  from lm_jax import cli
  from lm_jax.models import registry
  real = registry._families
  monkeypatch.setattr(registry, '_families', lambda: {
      name: dataclasses.replace(f, planner=False) for name, f in real().items()})
  with pytest.raises(SystemExit) as done:
    cli.main(['plan', '--config', QUICK, '--devices', '8', '--device', 'h100'])
  stderr = capsys.readouterr().err
  _check('plan_non_planner', done.value.code, stderr,
         ["config.model.family='decoder' is not modelled"])
