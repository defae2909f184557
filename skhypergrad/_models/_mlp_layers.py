"""Layer-level primitives of scikit-learn's MLP training, with their derivatives.

Tracing one minibatch step of an MLP op by op costs autograd about fifty
nodes, and its per-node overhead then dominates the cost of a hypergradient.
The functions here are one autograd primitive each, at the granularity of a
layer or of an optimizer update. Their values are computed with the same
floating-point operations, in the same order, as
``sklearn.neural_network._multilayer_perceptron`` and
``sklearn.neural_network._stochastic_optimizers`` (written out of place:
``z = a @ W; z += b`` there is ``a @ W + b`` here, with the same rounding;
the functions whose arrays have the size of the weights, the optimizer
updates and the layer gradient, compute into their own output buffer with
one temporary, never into their arguments);
their vector-Jacobian (reverse mode) and Jacobian-vector (forward mode)
products are written out below and checked against finite differences by
autograd's ``check_grads`` in the tests. The vector-Jacobian product makers
(``affine_vjp``, ...) take autograd's arguments ``(argnums, ans, args,
kwargs)``; besides autograd, the reverse sweep of :mod:`._mlp_training`
calls them directly, one minibatch step at a time.

The input of the first layer may be a ``scipy.sparse`` CSR matrix: the
products :func:`affine` and :func:`layer_gradient` (and their derivatives
with respect to the weights) take it as data, sparse times dense as
scikit-learn's ``safe_sparse_dot`` computes them, and it is never
differentiated (the reverse sweep does not ask for its cotangent, forward
mode never gives it a tangent).

All parameters of the network live in one flat vector ``params`` (the
optimizer state: weights first, then the optimizer's moments); a
:class:`Layer` says where one layer's coefficients and intercept are in it.
"""

from collections import namedtuple

import numpy as np
from autograd.extend import (
    SparseObject,
    defjvp_argnums,
    defvjp_argnums,
    primitive,
    vspace,
)
from scipy.special import expit

__all__ = [
    "Layer",
    "activation",
    "activation_vjp",
    "adam_update",
    "adam_vjp",
    "affine",
    "affine_vjp",
    "hidden_delta",
    "hidden_delta_vjp",
    "layer_gradient",
    "layer_gradient_vjp",
    "output_activation",
    "output_activation_vjp",
    "sgd_update",
    "sgd_vjp",
]

Layer = namedtuple("Layer", ["coef", "shape", "intercept"])
Layer.__doc__ = """Where a layer lives in the flat parameter vector.

``params[coef].reshape(shape)`` is the coefficient matrix (fan_in, fan_out)
and ``params[intercept]`` the intercept vector.
"""


def _coef(params, layer):
    return params[layer.coef].reshape(layer.shape)


def _scatter(params, parts):
    """Gradient with respect to ``params`` that is zero outside ``parts``.

    ``parts`` is a list of (slice, array). Returned as autograd's sparse
    gradient (as autograd's own ``untake`` does for indexing), which the
    backward pass adds into its accumulated gradient buffer in place instead
    of allocating a full-size zero vector for each layer.
    """

    def mut_add(A):
        for part, value in parts:
            A[part] += value.ravel()
        return A

    return SparseObject(vspace(params), mut_add)


# --------------------------------------------------------------------------
# affine: a @ W + b
# --------------------------------------------------------------------------


@primitive
def affine(a, params, layer):
    """``a @ W + b`` for one layer (``_forward_pass``)."""
    return a @ _coef(params, layer) + params[layer.intercept]


def affine_vjp(argnums, ans, args, kwargs):
    a, params, layer = args

    def vjp(g):
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(g @ _coef(params, layer).T)
            else:
                grads.append(
                    _scatter(
                        params, [(layer.coef, a.T @ g), (layer.intercept, g.sum(0))]
                    )
                )
        return grads

    return vjp


def _affine_jvp(argnums, gs, ans, args, kwargs):
    a, params, layer = args
    out = 0.0
    for argnum, g in zip(argnums, gs, strict=True):
        if argnum == 0:
            out = out + g @ _coef(params, layer)
        else:
            out = out + (a @ _coef(g, layer) + g[layer.intercept])
    return out


defvjp_argnums(affine, affine_vjp)
defjvp_argnums(affine, _affine_jvp)


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


def _derivative_from_output(ans, name):
    """Derivative of the activation, as a function of its output."""
    if name == "relu":
        return ans > 0
    if name == "tanh":
        return 1 - ans**2
    if name == "logistic":
        return ans * (1 - ans)
    return np.ones_like(ans)


@primitive
def activation(z, name):
    """Hidden activation ``ACTIVATIONS[name]``, out of place."""
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        return expit(z)
    return z


def activation_vjp(argnums, ans, args, kwargs):
    derivative = _derivative_from_output(ans, args[1])
    return lambda g: [g * derivative]


defvjp_argnums(activation, activation_vjp)
defjvp_argnums(
    activation,
    lambda argnums, gs, ans, args, kwargs: (
        gs[0] * _derivative_from_output(ans, args[1])
    ),
)


@primitive
def output_activation(z, name):
    """Output activation: ``identity``, ``exp``, ``logistic`` or ``softmax``."""
    if name == "softmax":
        unnormalized = np.exp(z - z.max(axis=1)[:, np.newaxis])
        return unnormalized / unnormalized.sum(axis=1)[:, np.newaxis]
    if name == "logistic":
        return expit(z)
    if name == "exp":
        return np.exp(z)
    return z


def _output_tangent(g, ans, name):
    # Also the cotangent: these Jacobians are symmetric.
    if name == "softmax":
        return ans * (g - np.sum(g * ans, axis=1, keepdims=True))
    if name == "logistic":
        return g * ans * (1 - ans)
    if name == "exp":
        return g * ans
    return g


def output_activation_vjp(argnums, ans, args, kwargs):
    return lambda g: [_output_tangent(g, ans, args[1])]


defvjp_argnums(output_activation, output_activation_vjp)
defjvp_argnums(
    output_activation,
    lambda argnums, gs, ans, args, kwargs: _output_tangent(gs[0], ans, args[1]),
)


# --------------------------------------------------------------------------
# Backpropagation
# --------------------------------------------------------------------------


def _times_derivative(delta, a, name):
    """``delta`` times the activation's derivative, as ``DERIVATIVES`` does."""
    if name == "relu":
        # delta[Z == 0] = 0 of scikit-learn (a ReLU output is >= 0).
        return delta * (a > 0)
    if name == "tanh":
        return delta * (1 - a**2)
    if name == "logistic":
        return delta * a * (1 - a)
    return delta


def _second_derivative_from_output(a, name):
    """d/da of :func:`_derivative_from_output`."""
    if name == "tanh":
        return -2 * a
    if name == "logistic":
        return 1 - 2 * a
    return np.zeros_like(a)


@primitive
def hidden_delta(delta, params, layer, a, name):
    """Error of the layer below: ``(delta @ W.T) * f'(a)``.

    ``a`` is the output of the hidden layer that feeds ``layer`` and ``name``
    its activation.
    """
    return _times_derivative(delta @ _coef(params, layer).T, a, name)


def hidden_delta_vjp(argnums, ans, args, kwargs):
    delta, params, layer, a, name = args
    W = _coef(params, layer)

    def vjp(g):
        g_back = _times_derivative(g, a, name)  # cotangent of delta @ W.T
        grads = []
        for argnum in argnums:
            if argnum == 0:
                grads.append(g_back @ W)
            elif argnum == 1:
                grads.append(_scatter(params, [(layer.coef, g_back.T @ delta)]))
            else:  # argnum == 3
                back = delta @ W.T
                grads.append(g * back * _second_derivative_from_output(a, name))
        return grads

    return vjp


def _hidden_delta_jvp(argnums, gs, ans, args, kwargs):
    delta, params, layer, a, name = args
    W = _coef(params, layer)
    out = 0.0
    for argnum, g in zip(argnums, gs, strict=True):
        if argnum == 0:
            out = out + _times_derivative(g @ W.T, a, name)
        elif argnum == 1:
            out = out + _times_derivative(delta @ _coef(g, layer).T, a, name)
        else:
            back = delta @ W.T
            out = out + back * _second_derivative_from_output(a, name) * g
    return out


defvjp_argnums(hidden_delta, hidden_delta_vjp)
defjvp_argnums(hidden_delta, _hidden_delta_jvp)


@primitive
def layer_gradient(a, delta, params, alpha, n_samples, layer):
    """Raveled ``[(a.T @ delta + alpha * W) / n, delta.sum(0) / n]``.

    The gradient of the regularized loss with respect to one layer's
    coefficients and intercept, ``_compute_loss_grad``. Computed in its
    output buffer (the same operations in the same order), so that a layer
    with many weights needs one temporary of their size, not four.
    """
    n_coef = layer.shape[0] * layer.shape[1]
    out = np.empty(n_coef + layer.shape[1])
    coef_grad = out[:n_coef].reshape(layer.shape)
    np.multiply(alpha, _coef(params, layer), out=coef_grad)
    np.add(np.asarray(a.T @ delta), coef_grad, out=coef_grad)
    coef_grad /= n_samples
    np.divide(np.sum(delta, axis=0), n_samples, out=out[n_coef:])
    return out


def _split_gradient(g, layer):
    n_coef = layer.shape[0] * layer.shape[1]
    return g[:n_coef].reshape(layer.shape), g[n_coef:]


def layer_gradient_vjp(argnums, ans, args, kwargs):
    a, delta, params, alpha, n_samples, layer = args

    def vjp(g):
        # Divided by n once, on the (small) cotangent of the gradient rather
        # than on each (batch-sized) product.
        g_coef, g_intercept = _split_gradient(g / n_samples, layer)
        grads = {}
        if 3 in argnums:
            # First: its temporary is gone before argnum 2's is made.
            grads[3] = np.sum(g_coef * _coef(params, layer))
        for argnum in argnums:
            if argnum == 0:
                grads[0] = delta @ g_coef.T
            elif argnum == 1:
                grads[1] = a @ g_coef + g_intercept
            elif argnum == 2:
                grads[2] = _scatter(params, [(layer.coef, alpha * g_coef)])
        return [grads[argnum] for argnum in argnums]

    return vjp


def _layer_gradient_jvp(argnums, gs, ans, args, kwargs):
    a, delta, params, alpha, n_samples, layer = args
    coef = 0.0
    intercept = 0.0
    for argnum, g in zip(argnums, gs, strict=True):
        if argnum == 0:
            coef = coef + g.T @ delta
        elif argnum == 1:
            coef = coef + a.T @ g
            intercept = intercept + np.sum(g, axis=0)
        elif argnum == 2:
            coef = coef + alpha * _coef(g, layer)
        else:
            coef = coef + g * _coef(params, layer)
    coef = np.broadcast_to(coef / n_samples, layer.shape)
    intercept = np.broadcast_to(intercept / n_samples, (layer.shape[1],))
    return np.concatenate([coef.ravel(), intercept])


defvjp_argnums(layer_gradient, layer_gradient_vjp)
defjvp_argnums(layer_gradient, _layer_gradient_jvp)


# --------------------------------------------------------------------------
# Optimizers: state = [weights, moments...]
# --------------------------------------------------------------------------


def _thirds(x):
    n = len(x) // 3
    return x[:n], x[n : 2 * n], x[2 * n :]


def _halves(x):
    n = len(x) // 2
    return x[:n], x[n:]


@primitive
def adam_update(state, grad, rates, step, beta_1, beta_2, epsilon):
    """One ``AdamOptimizer`` update of ``state = [weights, m, v]``.

    ``rates[step]`` is the (negative) bias-corrected step size. The new state
    is computed in its output buffer with one temporary of the weights' size
    (the same operations in the same order as out of place)::

        m = beta_1 * m + (1 - beta_1) * grad
        v = beta_2 * v + (1 - beta_2) * grad**2
        theta = theta + rates[step] * m / (sqrt(v) + epsilon)
    """
    theta, m, v = _thirds(state)
    out = np.empty_like(state)
    theta_new, m_new, v_new = _thirds(out)
    work = np.multiply(1 - beta_1, grad)
    np.multiply(beta_1, m, out=m_new)
    np.add(m_new, work, out=m_new)
    np.square(grad, out=work)
    np.multiply(1 - beta_2, work, out=work)
    np.multiply(beta_2, v, out=v_new)
    np.add(v_new, work, out=v_new)
    np.sqrt(v_new, out=work)
    np.add(work, epsilon, out=work)
    np.multiply(rates[step], m_new, out=theta_new)
    np.divide(theta_new, work, out=theta_new)
    np.add(theta, theta_new, out=theta_new)
    return out


def _adam_parts(ans, args):
    state, grad, rates, step, beta_1, beta_2, epsilon = args
    _, m_new, v_new = _thirds(ans)
    root = np.sqrt(v_new)
    # sqrt'(v) where v > 0. v is exactly 0 only where every gradient so far
    # was exactly 0 (a dead ReLU unit): it stays 0 under a perturbation of
    # the hyperparameters, so its sensitivity is 0, not 0 * inf.
    d_root = np.divide(0.5, root, out=np.zeros_like(root), where=root > 0)
    denominator = np.add(root, epsilon, out=root)
    return m_new, v_new, denominator, d_root


def adam_vjp(argnums, ans, args, kwargs):
    state, grad, rates, step, beta_1, beta_2, epsilon = args
    m_new, v_new, denominator, d_root = _adam_parts(ans, args)
    rate = rates[step]

    def vjp(g):
        # The out-of-place formulas in the comments, computed in the buffer
        # of the state's cotangent with one temporary of the weights' size
        # (``work``), in the same order.
        if not set(argnums) <= {0, 1, 2, 4, 5}:
            raise NotImplementedError("adam_update is not differentiable in epsilon.")
        g_theta, g_m, g_v = _thirds(g)
        g_update = g_theta
        _, m, v = _thirds(state)
        state_bar = np.empty_like(g)
        theta_bar, m_bar, v_bar = _thirds(state_bar)
        # m_bar: g_m = g_m + g_update * rate / denominator
        work = np.multiply(g_update, rate)
        np.divide(work, denominator, out=work)
        np.add(g_m, work, out=m_bar)
        g_m = m_bar
        # v_bar: g_v = g_v - g_update * rate * m_new / denominator**2 * d_root
        np.multiply(g_update, rate, out=work)
        np.multiply(work, m_new, out=work)
        np.divide(work, np.square(denominator, out=theta_bar), out=work)
        np.multiply(work, d_root, out=work)
        np.subtract(g_v, work, out=v_bar)
        g_v = v_bar
        theta_bar[...] = g_theta
        grads = {}
        if 1 in argnums:
            # (1 - beta_1) * g_m + (1 - beta_2) * 2 * grad * g_v
            np.multiply((1 - beta_2) * 2, grad, out=work)
            np.multiply(work, g_v, out=work)
            grad_bar = np.multiply(1 - beta_1, g_m)
            grads[1] = np.add(grad_bar, work, out=grad_bar)
        if 2 in argnums:
            # one_hot * sum(g_update * m_new / denominator)
            np.multiply(g_update, m_new, out=work)
            np.divide(work, denominator, out=work)
            grads[2] = (np.arange(len(rates)) == step) * np.sum(work)
        if 4 in argnums:
            # sum(g_m * (m - grad))
            np.subtract(m, grad, out=work)
            np.multiply(g_m, work, out=work)
            grads[4] = np.sum(work)
        if 5 in argnums:
            # sum(g_v * (v - grad**2))
            np.square(grad, out=work)
            np.subtract(v, work, out=work)
            np.multiply(g_v, work, out=work)
            grads[5] = np.sum(work)
        # [g_theta, beta_1 * g_m, beta_2 * g_v], in place of g_m and g_v.
        m_bar *= beta_1
        v_bar *= beta_2
        grads[0] = state_bar
        return [grads[argnum] for argnum in argnums]

    return vjp


def _adam_jvp(argnums, gs, ans, args, kwargs):
    state, grad, rates, step, beta_1, beta_2, epsilon = args
    m_new, v_new, denominator, d_root = _adam_parts(ans, args)
    _, m, v = _thirds(state)
    d_theta = d_m = d_v = d_rate = 0.0
    for argnum, g in zip(argnums, gs, strict=True):
        if argnum == 0:
            g_theta, g_m, g_v = _thirds(g)
            d_theta = d_theta + g_theta
            d_m = d_m + beta_1 * g_m
            d_v = d_v + beta_2 * g_v
        elif argnum == 1:
            d_m = d_m + (1 - beta_1) * g
            d_v = d_v + (1 - beta_2) * 2 * grad * g
        elif argnum == 2:
            d_rate = d_rate + g[step]
        elif argnum == 4:
            d_m = d_m + g * (m - grad)
        elif argnum == 5:
            d_v = d_v + g * (v - grad**2)
        else:
            raise NotImplementedError("adam_update is not differentiable in epsilon.")
    rate = rates[step]
    d_update = (
        d_rate * m_new / denominator
        + rate * d_m / denominator
        - rate * m_new / denominator**2 * d_root * d_v
    )
    shape = m_new.shape
    return np.concatenate(
        [np.broadcast_to(d, shape) for d in (d_theta + d_update, d_m, d_v)]
    )


defvjp_argnums(adam_update, adam_vjp)
defjvp_argnums(adam_update, _adam_jvp)


@primitive
def sgd_update(state, grad, rate, momentum, nesterov):
    """One ``SGDOptimizer`` update of ``state = [weights, velocity]``."""
    theta, velocity = _halves(state)
    velocity = momentum * velocity - rate * grad
    update = momentum * velocity - rate * grad if nesterov else velocity
    return np.concatenate([theta + update, velocity])


def sgd_vjp(argnums, ans, args, kwargs):
    state, grad, rate, momentum, nesterov = args
    _, velocity = _halves(state)
    velocity_new = ans[len(grad) :]

    def vjp(g):
        g_theta, g_velocity = _halves(g)
        # update = momentum * velocity_new - rate * grad (nesterov) or velocity_new
        if nesterov:
            g_velocity = g_velocity + momentum * g_theta
            g_grad = -rate * (g_theta + g_velocity)
            g_rate = -np.sum((g_theta + g_velocity) * grad)
            g_momentum = np.sum(g_theta * velocity_new) + np.sum(g_velocity * velocity)
        else:
            g_velocity = g_velocity + g_theta
            g_grad = -rate * g_velocity
            g_rate = -np.sum(g_velocity * grad)
            g_momentum = np.sum(g_velocity * velocity)
        by_argnum = {
            0: lambda: np.concatenate([g_theta, momentum * g_velocity]),
            1: lambda: g_grad,
            2: lambda: g_rate,
            3: lambda: g_momentum,
        }
        return [by_argnum[argnum]() for argnum in argnums]

    return vjp


def _sgd_jvp(argnums, gs, ans, args, kwargs):
    state, grad, rate, momentum, nesterov = args
    _, velocity = _halves(state)
    velocity_new = ans[len(grad) :]
    d_theta = d_velocity = d_grad = d_rate = d_momentum = 0.0
    for argnum, g in zip(argnums, gs, strict=True):
        if argnum == 0:
            g_theta, g_velocity = _halves(g)
            d_theta = d_theta + g_theta
            d_velocity = d_velocity + g_velocity
        elif argnum == 1:
            d_grad = d_grad + g
        elif argnum == 2:
            d_rate = d_rate + g
        else:
            d_momentum = d_momentum + g
    d_scaled = d_rate * grad + rate * d_grad
    d_velocity_new = d_momentum * velocity + momentum * d_velocity - d_scaled
    if nesterov:
        d_update = d_momentum * velocity_new + momentum * d_velocity_new - d_scaled
    else:
        d_update = d_velocity_new
    shape = velocity.shape
    return np.concatenate(
        [np.broadcast_to(d, shape) for d in (d_theta + d_update, d_velocity_new)]
    )


defvjp_argnums(sgd_update, sgd_vjp)
defjvp_argnums(sgd_update, _sgd_jvp)
