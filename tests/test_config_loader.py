"""lm_jax/config/loader.py: loading files, overrides, the command line."""

import subprocess
import sys

import ml_collections
import pytest

from lm_jax.config import (ConfigError, apply_overrides, load_config,
                           parse_cli_config)
from tests.config_fixtures import (ROOT, config_file,
                                   locked_base)


# ---------------------------------------------------------------------------
# Loading


def test_load_config_locks_and_calls_get_config(tmp_path):
  path = config_file(tmp_path, (
      'from lm_jax.config.defaults import base_config\n'
      'def get_config(arg=None):\n'
      '  c = base_config()\n'
      '  c.train.steps = {None: 7, "small": 3}[arg]\n'
      '  return c\n'))
  c = load_config(path)
  assert c.train.steps == 7
  assert load_config(path + ':small').train.steps == 3
  with pytest.raises(AttributeError):
    c.model.not_a_key = 1  # locked: no new keys
  c.model.num_layers = 2   # existing keys may change


def test_load_config_missing_file_names_it(tmp_path):
  with pytest.raises(ConfigError, match='no_such.py'):
    load_config(str(tmp_path / 'no_such.py'))


def test_load_config_missing_file_suggests_close_name():
  with pytest.raises(ConfigError, match='quickstart.py') as e:
    load_config(str(ROOT / 'configs' / 'quikstart.py'))
  assert 'did you mean' in str(e.value)


def test_load_config_without_get_config(tmp_path):
  path = config_file(tmp_path, 'x = 1\n', name='nogetter.py')
  with pytest.raises(ConfigError, match=r'nogetter\.py.*get_config'):
    load_config(path)


def test_load_config_arg_to_argless_get_config(tmp_path):
  path = config_file(tmp_path, (
      'from lm_jax.config.defaults import base_config\n'
      'def get_config():\n  return base_config()\n'))
  load_config(path)
  with pytest.raises(ConfigError, match="takes no argument"):
    load_config(path + ':small')


def test_load_config_not_a_configdict(tmp_path):
  path = config_file(tmp_path, 'def get_config():\n  return {"a": 1}\n')
  with pytest.raises(ConfigError, match='ConfigDict'):
    load_config(path)


def test_load_config_syntax_error(tmp_path):
  path = config_file(tmp_path, 'def get_config(:\n', name='broken.py')
  with pytest.raises(ConfigError, match=r'broken\.py.*line 1'):
    load_config(path)


def test_config_file_unknown_arg():
  with pytest.raises(ConfigError, match=r"'tiny'.*'runlocal'"):
    load_config(str(ROOT / 'configs' / 'quickstart.py:tiny'))


# ---------------------------------------------------------------------------
# Overrides


def test_overrides_of_each_type():
  c = locked_base()
  apply_overrides(c, [
      '--config.model.num_layers=2',         # int
      'config.optimizer.lr=3e-4',            # float
      '--config.optimizer.b2=1',             # int literal for a float field
      '--config.model.use_bias=true',        # bool
      '--config.model.tie_embeddings=No',    # bool, any case
      '--config.logging.progress=0',         # bool
      '--config.data.source=/tmp/x.txt',     # str
      '--config.mesh.data=-1',               # negative int
      '--config.train.steps=1e4',            # integral float for an int field
      '--config.data.cache_dir=',            # empty str
  ])
  assert c.model.num_layers == 2 and type(c.model.num_layers) is int
  assert c.optimizer.lr == 3e-4
  assert c.optimizer.b2 == 1.0 and type(c.optimizer.b2) is float
  assert c.model.use_bias is True
  assert c.model.tie_embeddings is False
  assert c.logging.progress is False
  assert c.data.source == '/tmp/x.txt'
  assert c.mesh.data == -1
  assert c.train.steps == 10000 and type(c.train.steps) is int
  assert c.data.cache_dir == ''


def test_override_tuples_and_lists():
  c = ml_collections.ConfigDict(dict(s=dict(t=(1, 2), l=['a'])))
  c.lock()
  apply_overrides(c, ['--config.s.t=(3, 4, 5)', '--config.s.l', "['x', 'y']"])
  assert c.s.t == (3, 4, 5)
  assert c.s.l == ['x', 'y']
  apply_overrides(c, ['--config.s.t=[7]', '--config.s.t', '8,9'])
  assert c.s.t == (8, 9)


def test_two_token_form():
  c = locked_base()
  apply_overrides(c, ['--config.model.num_layers', '6', 'config.mesh.data', '-1',
                      '--config.model.use_bias', 'yes'])
  assert c.model.num_layers == 6
  assert c.mesh.data == -1
  assert c.model.use_bias is True


def test_two_token_form_missing_value():
  with pytest.raises(ConfigError, match='config.model.num_layers.*no value'):
    apply_overrides(locked_base(), ['--config.model.num_layers'])


def test_unknown_key_names_it_and_suggests():
  with pytest.raises(ConfigError) as e:
    apply_overrides(locked_base(), ['--config.model.num_layer=3'])
  msg = str(e.value)
  assert 'config.model.num_layer' in msg
  assert 'did you mean --config.model.num_layers' in msg.lower()


def test_unknown_key_wrong_section_suggests_right_one():
  with pytest.raises(ConfigError) as e:
    apply_overrides(locked_base(), ['--config.train.lr=0.1'])
  assert 'config.train.lr' in str(e.value)
  assert '--config.optimizer.lr' in str(e.value)


def test_unknown_section():
  with pytest.raises(ConfigError, match='config.modle.num_layers'):
    apply_overrides(locked_base(), ['--config.modle.num_layers=3'])


def test_override_of_a_section_is_an_error():
  with pytest.raises(ConfigError, match='config.model is a section'):
    apply_overrides(locked_base(), ['--config.model=3'])


@pytest.mark.parametrize('override, expected_type', [
    ('--config.model.num_layers=abc', 'int'),
    ('--config.model.num_layers=2.5', 'int'),
    ('--config.optimizer.lr=fast', 'float'),
    ('--config.model.use_bias=maybe', 'bool'),
])
def test_bad_type_names_key_value_and_type(override, expected_type):
  key, value = override[2:].split('=')
  with pytest.raises(ConfigError) as e:
    apply_overrides(locked_base(), [override])
  msg = str(e.value)
  assert key in msg and repr(value) in msg and expected_type in msg


def test_bad_override_syntax():
  with pytest.raises(ConfigError, match='--config.section.key=value'):
    apply_overrides(locked_base(), ['--model.num_layers=3'])


# ---------------------------------------------------------------------------
# Command line


def test_parse_cli_config_both_forms_and_rest():
  qs = str(ROOT / 'configs' / 'quickstart.py')
  for form in (['--config', qs], [f'--config={qs}']):
    argv = ['train', *form, '--config.train.steps=20', '--workdir', 'x',
            '--config.model.num_layers', '3', '-v']
    c, rest = parse_cli_config(argv)
    assert c.train.steps == 20 and c.model.num_layers == 3
    assert rest == ['train', '--workdir', 'x', '-v']
    with pytest.raises(AttributeError):
      c.train.new_key = 1


def test_parse_cli_config_with_arg():
  c, _ = parse_cli_config(['--config', str(ROOT / 'configs' / 'quickstart.py') + ':runlocal'])
  assert c.train.steps == 5


def test_parse_cli_config_missing_config_says_how_to_call():
  with pytest.raises(ConfigError, match=r'--config PATH.*configs/quickstart\.py'):
    parse_cli_config(['train', '--config.train.steps=3'])


def test_parse_cli_config_twice():
  qs = str(ROOT / 'configs' / 'quickstart.py')
  with pytest.raises(ConfigError, match='twice'):
    parse_cli_config(['--config', qs, '--config', qs])


def test_exit_on_config_error_prints_message_and_exits_2():
  code = ('import sys; from lm_jax.config import exit_on_config_error, parse_cli_config\n'
          'exit_on_config_error(parse_cli_config)(sys.argv[1:])\n')
  proc = subprocess.run([sys.executable, '-c', code, '--config.model.x=1'],
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
  assert proc.returncode == 2
  assert proc.stderr.startswith('error: no config file given')
  assert 'Traceback' not in proc.stderr
