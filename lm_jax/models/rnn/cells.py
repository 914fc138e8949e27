"""LSTM, GRU and vanilla RNN layers: one input matmul for the whole sequence, then
the recurrent matmul and gate update under nn.scan over time.

Equations (PyTorch's nn.LSTM / nn.GRU / nn.RNN, one bias per gate where two
would be redundant), with x_t the layer input and h the previous state:

  pre = x_t W_in + b                       ([G, H]: the gates' input part)
  lstm: i, f, g, o = pre + h W_rec;  c' = s(f) c + s(i) tanh(g);  h' = s(o) tanh(c')
  gru:  r, z = s(pre[:2] + h W_rec[:2]);  n = tanh(pre[2] + r (h W_rec[2] + b_rec))
        h' = (1 - z) n + z h
  rnn:  h' = tanh(pre + h W_rec)

Hoisting x W_in out of the time loop leaves only the [B, H] x [H, G*H] matmul
per step. The state is reset to zeros where a packed document starts. In
decode mode a layer keeps its final state in the `cache` collection (`carry`)
and the next call continues from it.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm_jax.models.layers import matmul_2d, zeros_init
from lm_jax.models.rnn.config import RNNConfig

# The carry is whole over `tensor`: the next step's h W_rec needs all of h, and
# (XLA, jax 0.10) a carry split over both a two-axis batch (data, fsdp) and
# tensor gets wrong gradients from the while loop's transpose; one all-gather
# of h per step is what tensor parallelism of a recurrence costs anyway.
STATE_AXES = ('batch', None)


def _fan_in_init(fan_in: int, axes: tuple):
  """Normal(1 / sqrt(fan_in)): unit-variance pre-activations for unit-variance inputs."""
  return nn.with_logical_partitioning(nn.initializers.normal(fan_in ** -0.5), axes)


def _lstm_bias_init(axes: tuple):
  """Zeros, except 1 for the forget gate (Jozefowicz et al. 2015)."""
  def init(key, shape, dtype=jnp.float32):
    del key
    return jnp.zeros(shape, dtype).at[1].set(1.0)
  return nn.with_logical_partitioning(init, axes)


def lstm_update(pre_BxGxH, rec_BxGxH, carry):
  """((h', c'), h') of one LSTM step."""
  _, c_BxH = carry
  i, f, g, o = jnp.moveaxis(pre_BxGxH + rec_BxGxH, 1, 0)
  c_BxH = jax.nn.sigmoid(f) * c_BxH + jax.nn.sigmoid(i) * jnp.tanh(g)
  h_BxH = jax.nn.sigmoid(o) * jnp.tanh(c_BxH)
  return (h_BxH, c_BxH), h_BxH


def gru_update(pre_BxGxH, rec_BxGxH, carry):
  """((h',), h') of one GRU step; rec's new-gate part already has its bias."""
  (h_BxH,) = carry
  r = jax.nn.sigmoid(pre_BxGxH[:, 0] + rec_BxGxH[:, 0])
  z = jax.nn.sigmoid(pre_BxGxH[:, 1] + rec_BxGxH[:, 1])
  n = jnp.tanh(pre_BxGxH[:, 2] + r * rec_BxGxH[:, 2])
  h_BxH = (1.0 - z) * n + z * h_BxH
  return (h_BxH,), h_BxH


def rnn_update(pre_BxGxH, rec_BxGxH, carry):
  """((h',), h') of one tanh (Elman) RNN step."""
  del carry
  h_BxH = jnp.tanh(pre_BxGxH[:, 0] + rec_BxGxH[:, 0])
  return (h_BxH,), h_BxH


UPDATES = {'lstm': lstm_update, 'gru': gru_update, 'rnn': rnn_update}


def zero_state(cfg: RNNConfig, batch: int):
  """The initial carry: (h, c) for lstm, (h,) otherwise, float32 zeros."""
  h_BxH = jnp.zeros((batch, cfg.hidden_size), jnp.float32)
  return (h_BxH, h_BxH) if cfg.cell == 'lstm' else (h_BxH,)


class CellStep(nn.Module):
  """(carry, (pre [B, G, H], reset [B])) -> (carry', h' [B, H]): one time step."""
  cfg: RNNConfig

  @nn.compact
  def __call__(self, carry, inputs):
    cfg = self.cfg
    pre_BxGxH, reset_B = inputs
    G, H = cfg.num_gates, cfg.hidden_size
    w_rec = self.param('kernel', _fan_in_init(H, ('embed', None, 'mlp')), (H, G, H),
                       cfg.jnp_param_dtype)
    carry = tuple(jnp.where(reset_B[:, None], 0.0, s) for s in carry)
    carry = tuple(nn.with_logical_constraint(s, STATE_AXES) for s in carry)
    rec_BxGxH = jnp.einsum('bh,hgk->bgk', carry[0].astype(cfg.jnp_dtype),
                           w_rec.astype(cfg.jnp_dtype)).astype(jnp.float32)
    if cfg.cell == 'gru':
      b_rec = self.param('bias', zeros_init(('mlp',)), (H,), cfg.jnp_param_dtype)
      rec_BxGxH = rec_BxGxH.at[:, 2].add(b_rec.astype(jnp.float32))
    carry, h_BxH = UPDATES[cfg.cell](pre_BxGxH.astype(jnp.float32), rec_BxGxH, carry)
    return carry, h_BxH


class Recurrence(nn.Module):
  """One recurrent layer: x [B, L, F] -> states [B, L, H]."""
  cfg: RNNConfig

  @nn.compact
  def __call__(self, x_BxLxF, reset_BxL):
    cfg = self.cfg
    G, H, F = cfg.num_gates, cfg.hidden_size, x_BxLxF.shape[-1]
    w_in = self.param('kernel', _fan_in_init(F, ('embed', None, 'mlp')), (F, G, H),
                      cfg.jnp_param_dtype)
    bias_init = _lstm_bias_init if cfg.cell == 'lstm' else zeros_init
    b_in = self.param('bias', bias_init((None, 'mlp')), (G, H), cfg.jnp_param_dtype)
    pre_BxLxGxH = matmul_2d('blf,fgh->blgh', x_BxLxF.astype(cfg.jnp_dtype),
                            w_in.astype(cfg.jnp_dtype)) + b_in.astype(cfg.jnp_dtype)
    pre_BxLxGxH = nn.with_logical_constraint(pre_BxLxGxH, ('batch', 'length', None, 'act_mlp'))
    scan = nn.scan(CellStep, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=1, out_axes=1)
    carry = zero_state(cfg, x_BxLxF.shape[0])
    if cfg.decode:  # start from the state the last call left (zeros on the first)
      cached = self.variable('cache', 'carry', lambda: carry)
      carry = cached.value
    carry, h_BxLxH = scan(cfg, name='recurrent')(carry, (pre_BxLxGxH, reset_BxL))
    if cfg.decode:
      cached.value = carry
    return nn.with_logical_constraint(h_BxLxH.astype(cfg.jnp_dtype),
                                      ('batch', 'length', 'act_mlp'))
