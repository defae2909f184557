"""Stochastic training of a multi-layer perceptron, as scikit-learn does it (traced).

This module replays ``BaseMultilayerPerceptron._fit_stochastic`` of
scikit-learn (solvers ``"sgd"`` and ``"adam"``) step for step, on a flat
parameter vector, with :mod:`autograd.numpy` so that the trained weights can
be differentiated with respect to the continuous hyperparameters ``alpha``,
``learning_rate_init``, ``momentum``, ``beta_1`` and ``beta_2``. Everything
random (initial weights, the early-stopping split, the batch order) does not
depend on these hyperparameters; the caller draws it once, with scikit-learn's
own random stream, and hands it over in a :class:`TrainingProblem`.

One minibatch step, for a layer :math:`l` with weights :math:`W_l`, is

.. math::

    \\nabla_{W_l} = \\frac{A_{l-1}^T \\Delta_l + \\alpha W_l}{n_b},
    \\qquad \\nabla_{b_l} = \\frac{\\mathbf{1}^T \\Delta_l}{n_b},

followed by the optimizer's update (``SGDOptimizer`` or ``AdamOptimizer``),
written with the same floating-point operations in the same order, so that
the plain (untraced) run reproduces ``estimator.fit`` to the last bits in
most cases.

Stopping decisions (``tol`` with ``n_iter_no_change``, ``early_stopping``
and its best snapshot, the divisions by 5 of ``learning_rate="adaptive"``)
are taken by a plain forward run, :func:`train`, and recorded in a
:class:`Trajectory`. The hypergradient is the exact derivative of the
validation loss of the weights this fixed schedule produces:

- :func:`hypergradient_reverse` checkpoints the optimizer state at the start
  of every epoch (or of every k-th one, past a memory budget) during
  :func:`train` and sweeps the minibatch steps backwards: a stretch of steps
  is run again from its checkpoint, recording what each step computed, and
  its steps are reversed by calling the layers' vector-Jacobian products
  directly (:func:`_step_vjp`), without autograd's tracing, which cost as
  much as the products. A stretch whose record would exceed a memory budget
  is cut into parts whose first states are recomputed (:func:`_sweep_steps`):
  the memory stays a small multiple of one state, at the cost of more plain
  runs of the steps;
- :func:`hypergradient_forward` pushes one tangent per hyperparameter through
  the whole training with :func:`autograd.make_jvp` (memory independent of
  the number of steps).

The work of one step is done by the primitives of :mod:`._mlp_layers` (one
autograd node per layer operation and per optimizer update, about a dozen a
step); this module strings them into epochs (:func:`_run_epoch`, traced in
forward mode), takes the stopping decisions on plain values and sweeps back
over the epochs. Autograd still carries the cotangents of the step sizes to
``learning_rate_init``, ``beta_1`` and ``beta_2``, once per sweep.
"""

import math
from collections import namedtuple
from functools import partial
from itertools import pairwise

import autograd.numpy as anp
import numpy as np
from autograd import make_jvp, make_vjp
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval
from scipy.special import xlogy

from . import _losses as losses
from . import _mlp_layers as layers

__all__ = [
    "NetworkLayout",
    "TrainingProblem",
    "Trajectory",
    "hypergradient_forward",
    "hypergradient_reverse",
    "predict",
    "solver_hyperparameters",
    "train",
    "validation_loss",
]

# The continuous hyperparameters of the training: the scale each is searched
# on and the solvers that use it. Positive scales are searched as their
# logarithm; momentum and Adam's decay rates live in (0, 1) and are searched
# as their logit.
HYPERPARAMETERS = {
    "alpha": ("log", ("sgd", "adam")),
    "learning_rate_init": ("log", ("sgd", "adam")),
    "momentum": ("logit", ("sgd",)),
    "beta_1": ("logit", ("adam",)),
    "beta_2": ("logit", ("adam",)),
}


def solver_hyperparameters(solver):
    """The continuous hyperparameters ``solver`` uses, in a fixed order."""
    return [name for name, (_, solvers) in HYPERPARAMETERS.items() if solver in solvers]


# Checkpoints of the optimizer state kept in memory for the reverse sweep. Past
# this budget only every k-th epoch is kept and the others are recomputed.
_CHECKPOINT_BYTES = 64 * 2**20

# The record of the minibatch steps that the reverse sweep replays at once
# (each step's state and gradient). A longer stretch of steps is cut into
# _FANOUT parts, whose first states are recomputed and kept while the parts
# are swept, last to first, the same way (see _sweep_steps).
_TAPE_BYTES = 64 * 2**20
_FANOUT = 3


# --------------------------------------------------------------------------
# Adam's step sizes
# --------------------------------------------------------------------------


def _adam_rates_formula(learning_rate_init, beta_1, beta_2, steps):
    """Negative Adam step sizes, ``-lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``."""
    return -(learning_rate_init * anp.sqrt(1 - beta_2**steps) / (1 - beta_1**steps))


@primitive
def _adam_rates(learning_rate_init, beta_1, beta_2, steps):
    """:func:`_adam_rates_formula`, with scikit-learn's scalar arithmetic.

    numpy's vectorized ``power`` may differ from Python's scalar ``**`` in the
    last bit, so the values are computed one step at a time as
    ``AdamOptimizer`` does; the derivatives are those of the vectorized
    formula.
    """
    lr, b1, b2 = float(learning_rate_init), float(beta_1), float(beta_2)
    return np.array(
        [-(lr * np.sqrt(1 - b2 ** int(t)) / (1 - b1 ** int(t))) for t in steps]
    )


def _adam_rates_vjp(argnum):
    def vjpmaker(ans, learning_rate_init, beta_1, beta_2, steps):
        args = [learning_rate_init, beta_1, beta_2, steps]
        vjp, _ = make_vjp(_adam_rates_formula, argnum)(*args)
        return vjp

    return vjpmaker


def _adam_rates_jvp(argnum):
    def jvpmaker(g, ans, learning_rate_init, beta_1, beta_2, steps):
        args = [learning_rate_init, beta_1, beta_2, steps]
        return make_jvp(_adam_rates_formula, argnum)(*args)(g)[1]

    return jvpmaker


defvjp(_adam_rates, *(_adam_rates_vjp(i) for i in range(3)))
defjvp(_adam_rates, *(_adam_rates_jvp(i) for i in range(3)))


# --------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------


class NetworkLayout:
    """Shapes of the layers and their place in the flat parameter vector.

    The vector holds, layer after layer, the coefficients (raveled in C
    order) and then the intercept of that layer.

    Parameters
    ----------
    layer_units : list of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``.
    """

    def __init__(self, layer_units):
        self.layer_units = list(layer_units)
        self.n_layers = len(self.layer_units)
        self.layers = []
        start = 0
        for fan_in, fan_out in pairwise(self.layer_units):
            stop = start + fan_in * fan_out
            self.layers.append(
                layers.Layer(
                    slice(start, stop), (fan_in, fan_out), slice(stop, stop + fan_out)
                )
            )
            start = stop + fan_out
        self.n_params = start

    def unpack(self, theta):
        """Coefficient matrices and intercept vectors of ``theta`` (traced)."""
        coefs = [anp.reshape(theta[layer.coef], layer.shape) for layer in self.layers]
        intercepts = [theta[layer.intercept] for layer in self.layers]
        return coefs, intercepts

    def pack(self, coefs, intercepts):
        """Inverse of :meth:`unpack`, on plain arrays."""
        return np.concatenate(
            [
                part
                for c, b in zip(coefs, intercepts, strict=True)
                for part in (np.ravel(c), b)
            ]
        )


def _forward(params, X, layout, activation):
    """Hidden outputs and the last pre-activation (traced).

    ``params`` starts with the weights (it may be the whole optimizer state).
    """
    hidden = [X]
    for layer in layout.layers[:-1]:
        hidden.append(
            layers.activation(layers.affine(hidden[-1], params, layer), activation)
        )
    return hidden, layers.affine(hidden[-1], params, layout.layers[-1])


def predict(theta, layout, X, activation, out_activation):
    """Output of the network (``_forward_pass_fast``), on plain arrays."""
    _, z = _forward(theta, X, layout, activation)
    return layers.output_activation(z, out_activation)


def _loss_gradient(params, hidden, output, y, sample_weight, n_samples, alpha, problem):
    """Gradient of the regularized minibatch loss, ``_backprop`` (traced).

    Returns the gradient and, for each layer, its error ``delta``.
    """
    delta = output - y
    if sample_weight is not None:
        delta = delta * sample_weight[:, np.newaxis]
    parts, deltas = [], []
    all_layers = problem.layout.layers
    for i in range(len(all_layers) - 1, -1, -1):
        layer = all_layers[i]
        deltas.append(delta)
        parts.append(
            layers.layer_gradient(hidden[i], delta, params, alpha, n_samples, layer)
        )
        if i > 0:
            delta = layers.hidden_delta(
                delta, params, layer, hidden[i], problem.activation
            )
    return anp.concatenate(parts[::-1]), deltas[::-1]


# --------------------------------------------------------------------------
# Training loss values (plain numpy, for the stopping rules and loss_curve_)
# --------------------------------------------------------------------------


def _average(x, sample_weight):
    """``np.average(x, weights=sample_weight, axis=0)``, faster when unweighted."""
    if sample_weight is None:
        return x.mean(axis=0)
    return np.average(x, weights=sample_weight, axis=0)


def _data_loss(kind, y, output, sample_weight):
    """``LOSS_FUNCTIONS`` of ``sklearn.neural_network._base``, on plain arrays."""
    if kind == "squared_error":
        return 0.5 * _average((y - output) ** 2, sample_weight).mean()
    if kind == "poisson":
        return _average(xlogy(y, y / output) - y + output, sample_weight).sum()
    eps = np.finfo(output.dtype).eps
    output = np.clip(output, eps, 1 - eps)
    if kind == "binary_log_loss":
        return -_average(
            xlogy(y, output) + xlogy(1 - y, 1 - output), sample_weight
        ).sum()
    return -_average(xlogy(y, output), sample_weight).sum()


def _regularized_loss(problem, theta, output, y, sample_weight, alpha):
    """The batch loss of ``_backprop``, L2 term included, on plain values."""
    loss = _data_loss(problem.loss, y, output, sample_weight)
    coefs = [theta[layer.coef] for layer in problem.layout.layers]
    values = 0
    for s in coefs:
        s = s.ravel()
        values += np.dot(s, s)
    n_samples = y.shape[0] if sample_weight is None else sample_weight.sum()
    return loss + (0.5 * alpha) * values / n_samples


# --------------------------------------------------------------------------
# One epoch (traced)
# --------------------------------------------------------------------------


class TrainingProblem:
    """Everything about one training set that the hyperparameters don't change.

    Parameters
    ----------
    layout : NetworkLayout
    initial_theta : ndarray of shape (layout.n_params,)
        The initial weights, drawn as ``_init_coef`` draws them.
    X : ndarray of shape (n_samples, n_features)
        Training samples, after the early-stopping split if any.
    y : ndarray of shape (n_samples, n_outputs)
        Encoded targets, float.
    sample_weight : ndarray of shape (n_samples,) or None
    batch_orders : callable
        ``batch_orders(epoch)`` returns the sample order of that epoch.
    batch_size : int
        Already clipped to ``[1, n_samples]``.
    activation : {"identity", "logistic", "tanh", "relu"}
    out_activation : {"identity", "exp", "logistic", "softmax"}
    loss : {"squared_error", "poisson", "binary_log_loss", "log_loss"}
        The training loss (only its value is computed here: its gradient with
        respect to the output pre-activation is always ``output - y``).
    settings : dict
        The estimator's discrete and fixed settings: ``solver``,
        ``learning_rate``, ``power_t``, ``nesterovs_momentum``, ``epsilon``,
        ``max_iter``, ``tol``, ``n_iter_no_change``.
    validation_score : callable or None
        With early stopping, ``validation_score(theta)`` returns the score
        scikit-learn's ``_score`` gives on the held-out part; None otherwise.
    """

    def __init__(
        self,
        layout,
        initial_theta,
        X,
        y,
        sample_weight,
        batch_orders,
        batch_size,
        activation,
        out_activation,
        loss,
        settings,
        validation_score=None,
    ):
        self.layout = layout
        self.initial_theta = initial_theta
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.batch_orders = batch_orders
        self.batch_size = batch_size
        self.activation = activation
        self.out_activation = out_activation
        self.loss = loss
        self.settings = settings
        self.validation_score = validation_score
        self.n_samples = X.shape[0]
        self.batches = [
            slice(start, min(start + batch_size, self.n_samples))
            for start in range(0, self.n_samples, batch_size)
        ]

    @property
    def solver(self):
        return self.settings["solver"]

    @property
    def n_moments(self):
        """Entries of the optimizer's moments in the state."""
        return (2 if self.solver == "adam" else 1) * self.layout.n_params

    @property
    def checkpoints_nbytes(self):
        """Memory of the state at the start of each of ``max_iter`` epochs."""
        state_size = self.layout.n_params + self.n_moments
        return self.settings["max_iter"] * state_size * self.initial_theta.itemsize

    @property
    def step_record_nbytes(self):
        """Memory of the record of one minibatch step (see :class:`_StepTape`).

        Its state after the step and its gradient, plus the layers' outputs
        and errors on the batch.
        """
        n_params = self.layout.n_params
        units = sum(self.layout.layer_units[1:])
        return 8 * (2 * n_params + self.n_moments + 2 * self.batch_size * units)

    def initial_state(self):
        """Weights, then the optimizer's moments (all zeros)."""
        return np.concatenate([self.initial_theta, np.zeros(self.n_moments)])


def _sgd_rate(learning_rate_init, problem, epoch, divisions):
    """``SGDOptimizer.learning_rate`` during ``epoch`` (traced in lr)."""
    rate = learning_rate_init
    if problem.settings["learning_rate"] == "invscaling" and epoch > 0:
        time_step = epoch * problem.n_samples
        rate = rate / (time_step + 1) ** problem.settings["power_t"]
    for _ in range(divisions):
        rate = rate / 5.0
    return rate


def _step_sizes(hp, problem, epoch, divisions):
    """Step sizes of ``epoch`` (traced in hp).

    Adam: the negative bias-corrected step size of each minibatch step of
    the epoch; SGD: the learning rate, one for the epoch.
    """
    if problem.solver == "adam":
        first_step = epoch * len(problem.batches) + 1
        steps = np.arange(first_step, first_step + len(problem.batches))
        return _adam_rates(hp["learning_rate_init"], hp["beta_1"], hp["beta_2"], steps)
    return _sgd_rate(hp["learning_rate_init"], problem, epoch, divisions)


def _update_arguments(problem, hp, sizes, k):
    """Arguments of step ``k``'s optimizer update after ``(state, grad)``."""
    if problem.solver == "adam":
        return (sizes, k, hp["beta_1"], hp["beta_2"], problem.settings["epsilon"])
    return (sizes, hp["momentum"], problem.settings["nesterovs_momentum"])


# What the reverse sweep needs of one minibatch step: its place (epoch and
# minibatch), its input state, the network's layer outputs (hidden[0] is the
# batch), the output, each layer's error, the gradient, the optimizer update's
# other arguments and the state after it.
_StepTape = namedtuple(
    "_StepTape",
    [
        "epoch",
        "step",
        "state",
        "hidden",
        "output",
        "deltas",
        "grad",
        "update_arguments",
        "new_state",
        "weight",
        "n",
    ],
)


def _run_epoch(
    state, hp, problem, epoch, divisions, record=None, tapes=None, steps=None
):
    """One pass over the training data, ``state -> state`` (traced).

    Parameters
    ----------
    state : array of shape (k * n_params,)
        Weights followed by the optimizer's moments (the velocity of SGD, or
        the first and second moments of Adam).
    hp : dict of str -> float or ArrayBox
        The five continuous hyperparameters.
    epoch : int
        Index of the epoch, which fixes the batch order and Adam's step count.
    divisions : int
        How many times ``learning_rate="adaptive"`` divided the SGD learning
        rate by 5 before this epoch.
    record : list or None
        If a list, the regularized batch losses times the batch sizes are
        appended to it (plain values).
    tapes : list or None
        If a list, a :class:`_StepTape` of each minibatch step is appended to
        it, for :func:`_sweep_steps` (plain runs only).
    steps : range or None
        Run only these minibatch steps of the epoch (all by default), from
        ``state``, the state before the first of them.
    """
    order = problem.batch_orders(epoch)
    alpha = hp["alpha"]
    sizes = _step_sizes(hp, problem, epoch, divisions)
    update = layers.adam_update if problem.solver == "adam" else layers.sgd_update

    for k in range(len(problem.batches)) if steps is None else steps:
        batch = problem.batches[k]
        idx = order[batch]
        X_batch, y_batch = problem.X[idx], problem.y[idx]
        weight_batch = None
        n_samples = y_batch.shape[0]
        if problem.sample_weight is not None:
            weight_batch = problem.sample_weight[idx]
            n_samples = weight_batch.sum()
        hidden, z = _forward(state, X_batch, problem.layout, problem.activation)
        output = layers.output_activation(z, problem.out_activation)
        if record is not None:
            batch_loss = _regularized_loss(
                problem,
                getval(state),
                getval(output),
                y_batch,
                weight_batch,
                getval(alpha),
            )
            record.append(batch_loss * (batch.stop - batch.start))
        grad, deltas = _loss_gradient(
            state, hidden, output, y_batch, weight_batch, n_samples, alpha, problem
        )
        update_arguments = _update_arguments(problem, hp, sizes, k)
        new_state = update(state, grad, *update_arguments)
        if tapes is not None:
            tapes.append(
                _StepTape(
                    epoch,
                    k,
                    state,
                    hidden,
                    output,
                    deltas,
                    grad,
                    update_arguments,
                    new_state,
                    weight_batch,
                    n_samples,
                )
            )
        state = new_state
    return state


# --------------------------------------------------------------------------
# The forward run and its decisions
# --------------------------------------------------------------------------


class Trajectory:
    """What a forward run did: the weights, the history and the decisions.

    Attributes
    ----------
    theta : ndarray
        The weights scikit-learn would keep (the best snapshot with early
        stopping, else the last epoch's).
    n_iter : int
        Epochs run (``n_iter_``).
    t : int
        Training samples seen (``t_``).
    snapshot : int
        Epochs that produced ``theta`` (``n_iter`` without early stopping; 0
        if the initial weights were kept).
    divisions : list of int
        For each epoch, the number of adaptive divisions by 5 before it.
    loss_curve, validation_scores : list of float
    best_loss, best_validation_score : float or None
    no_improvement_count : int
    diverged : bool
        The weights became non-finite (training stopped there).
    reached_max_iter : bool
    checkpoints : dict of int -> ndarray or None
        State at the start of the kept epochs (reverse mode only); None for
        the first epoch, whose state is ``problem.initial_state()``.
    checkpoint_stride : int
        Every how many epochs a checkpoint is kept.
    """

    def __init__(self, early_stopping, checkpoint_stride):
        self.theta = None
        self.n_iter = self.t = self.snapshot = 0
        self.divisions = []
        self.loss_curve = []
        self.validation_scores = []
        self.best_loss = None if early_stopping else np.inf
        self.best_validation_score = -np.inf if early_stopping else None
        self.no_improvement_count = 0
        self.diverged = False
        self.reached_max_iter = False
        self.checkpoints = {}
        self.checkpoint_stride = checkpoint_stride


def train(problem, hp, keep_checkpoints=False):
    """Train as ``_fit_stochastic`` does, on plain values, and record it.

    Parameters
    ----------
    problem : TrainingProblem
    hp : dict of str -> float
    keep_checkpoints : bool, default=False
        Keep the state at the start of each epoch (or every k-th one, within
        a memory budget) for :func:`hypergradient_reverse`.

    Returns
    -------
    trajectory : Trajectory
    """
    settings = problem.settings
    max_iter = settings["max_iter"]
    tol = settings["tol"]
    early_stopping = problem.validation_score is not None
    adaptive = problem.solver == "sgd" and settings["learning_rate"] == "adaptive"
    sgd_rate = float(hp["learning_rate_init"])

    stride = 1
    if keep_checkpoints and problem.checkpoints_nbytes > _CHECKPOINT_BYTES:
        # Keep every k-th state; the reverse sweep recomputes the others, one
        # segment of k epochs at a time.
        stride = max(1, math.ceil(math.sqrt(max_iter)))
    run = Trajectory(early_stopping, stride)

    n_params = problem.layout.n_params
    state = problem.initial_state()
    best_theta, run.snapshot = problem.initial_theta, 0
    divisions = 0
    t = 0
    for epoch in range(max_iter):
        if keep_checkpoints and epoch % stride == 0:
            # The first state is made again when needed: not kept.
            run.checkpoints[epoch] = state if epoch > 0 else None
        run.divisions.append(divisions)
        batch_losses = []
        state = _run_epoch(state, hp, problem, epoch, divisions, record=batch_losses)
        theta = state[:n_params]
        run.n_iter += 1
        accumulated_loss = 0.0
        for batch_loss in batch_losses:
            accumulated_loss += batch_loss
        loss = accumulated_loss / problem.n_samples
        t += problem.n_samples
        run.loss_curve.append(loss)

        # _update_no_improvement_count
        if early_stopping:
            score = problem.validation_score(theta)
            run.validation_scores.append(score)
            if score < run.best_validation_score + tol:
                run.no_improvement_count += 1
            else:
                run.no_improvement_count = 0
            if score > run.best_validation_score:
                run.best_validation_score = score
                best_theta, run.snapshot = theta, epoch + 1
        else:
            if loss > run.best_loss - tol:
                run.no_improvement_count += 1
            else:
                run.no_improvement_count = 0
            if loss < run.best_loss:
                run.best_loss = loss
            best_theta, run.snapshot = theta, epoch + 1
            if not np.isfinite(theta).all():
                # Non-finite weights stay non-finite: scikit-learn would
                # train on and then raise.
                run.diverged = True
                break

        # iteration_ends, then trigger_stopping
        if problem.solver == "sgd" and settings["learning_rate"] == "invscaling":
            sgd_rate = float(hp["learning_rate_init"]) / (t + 1) ** settings["power_t"]
        if run.no_improvement_count > settings["n_iter_no_change"]:
            if not adaptive or sgd_rate <= 1e-6:
                break
            sgd_rate /= 5.0
            divisions += 1
            run.no_improvement_count = 0
    else:
        run.reached_max_iter = True

    run.t = t
    # A copy: the weights are a view of a whole state (with the optimizer's
    # moments), which the solutions a search keeps would otherwise hold.
    run.theta = best_theta.copy()
    return run


# --------------------------------------------------------------------------
# Validation loss and hypergradients
# --------------------------------------------------------------------------


def validation_loss(theta, layout, X, y, activation, kind, weights):
    """Validation loss of the network ``theta`` (traced).

    Parameters
    ----------
    theta : array of shape (layout.n_params,)
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples, n_outputs)
        Targets, or 0/1 indicators for a classifier.
    kind : {"squared_error", "poisson", "logistic", "softmax"}
        Mean squared error, mean Poisson deviance, mean binary log-loss summed
        over outputs, or mean multinomial log-loss. Log-losses are computed
        from the logits (no clipping), so they are smooth.
    weights : ndarray of shape (n_samples,)
        Weights of the samples in those means, summing to one.
    """
    _, z = _forward(theta, X, layout, activation)
    if kind == "squared_error":
        per_sample = losses.squared_error(z, y)
    elif kind == "poisson":
        per_sample = losses.poisson_deviance(z, y)
    elif kind == "logistic":
        per_sample = anp.sum(losses.binary_log_loss(z, y), axis=1)
    else:
        per_sample = losses.multinomial_log_loss(z, y)
    return losses.weighted_mean(per_sample, weights)


def _with_tuned(hp, names, h):
    """``hp`` with the entries ``names`` replaced by the items of ``h``."""
    tuned = dict(hp)
    for i, name in enumerate(names):
        tuned[name] = h[i]
    return tuned


def _run_steps(problem, hp, run, state, first, stop, tapes=None):
    """The state after steps ``first..stop-1`` from ``state``, run plainly.

    Steps are numbered across the epochs: step ``g`` is minibatch
    ``g % n_batches`` of epoch ``g // n_batches``. ``tapes``, if a list,
    receives the record of each step (see :func:`_run_epoch`).
    """
    n_batches = len(problem.batches)
    while first < stop:
        epoch, k = divmod(first, n_batches)
        last = min(stop, (epoch + 1) * n_batches)
        steps = range(k, last - epoch * n_batches)
        state = _run_epoch(
            state, hp, problem, epoch, run.divisions[epoch], tapes=tapes, steps=steps
        )
        first = last
    return state


def _step_vjp(problem, tape, state_bar, alpha, on_first_layer=None):
    """Cotangents of one minibatch step of :func:`_run_epoch`, by hand.

    This is the backward pass autograd would run on the traced step, made
    of the same vector-Jacobian products of :mod:`._mlp_layers` called in
    reverse order, without the cost of tracing the step: the optimizer
    update, then the backpropagation that computed the gradient, then the
    forward pass of the network.

    Parameters
    ----------
    tape : _StepTape
    state_bar : ndarray
        Cotangent of the state after the step.
    alpha : float
    on_first_layer : callable or None
        Called as ``on_first_layer(tape, z_bar, coef_bar)`` with the
        cotangents of the first layer's pre-activation and of its
        coefficients' gradient: what the derivative with respect to a scale
        of the input columns needs (see ``_weighted_mlp``).

    Returns
    -------
    state_bar : ndarray
        Cotangent of the state before the step.
    inputs_bar : list
        Cotangents of ``alpha``, of the step sizes (``sizes`` of
        :func:`_step_sizes`) and of the optimizer's decay (``beta_1`` and
        ``beta_2``, or ``momentum``).
    """
    args = (tape.state, tape.grad, *tape.update_arguments)
    if problem.solver == "adam":
        update_vjp, argnums = layers.adam_vjp, (0, 1, 2, 4, 5)
    else:
        update_vjp, argnums = layers.sgd_vjp, (0, 1, 2, 3)
    # The vector-Jacobian products return new arrays: accumulating the
    # cotangent of the state (weights and moments) in place is safe. (The
    # product is not kept: what it holds is freed once it has run.)
    state_bar, grad_bar, *decay_bar = update_vjp(argnums, tape.new_state, args, {})(
        state_bar
    )
    sizes_bar = decay_bar.pop(0)
    alpha_bar = 0.0

    # _loss_gradient, backwards: layer i's gradient used delta_i and
    # hidden[i]; delta_i came from delta_{i+1} through layer i + 1.
    all_layers = problem.layout.layers
    hidden, deltas, activation = tape.hidden, tape.deltas, problem.activation
    hidden_bar = [0.0] * len(all_layers)
    carried = 0.0
    for i, layer in enumerate(all_layers):
        args = (hidden[i], deltas[i], tape.state, alpha, tape.n, layer)
        argnums = (1, 2, 3) if i == 0 else (0, 1, 2, 3)
        part_bar = grad_bar[layer.coef.start : layer.intercept.stop]
        *a_bar, delta_bar, params_bar, step_alpha_bar = layers.layer_gradient_vjp(
            argnums, None, args, {}
        )(part_bar)
        if a_bar:
            hidden_bar[i] = hidden_bar[i] + a_bar[0]
        params_bar.mut_add(state_bar)
        alpha_bar = alpha_bar + step_alpha_bar
        delta_bar = delta_bar + carried
        if i + 1 < len(all_layers):
            args = (
                deltas[i + 1],
                tape.state,
                all_layers[i + 1],
                hidden[i + 1],
                activation,
            )
            carried, params_bar, a_bar = layers.hidden_delta_vjp(
                (0, 1, 3), None, args, {}
            )(delta_bar)
            params_bar.mut_add(state_bar)
            hidden_bar[i + 1] = hidden_bar[i + 1] + a_bar

    # delta = (output - y) * weight, then _forward, backwards.
    if tape.weight is not None:
        delta_bar = delta_bar * tape.weight[:, np.newaxis]
    (z_bar,) = layers.output_activation_vjp(
        None, tape.output, (None, problem.out_activation), {}
    )(delta_bar)
    for i in range(len(all_layers) - 1, -1, -1):
        args = (hidden[i], tape.state, all_layers[i])
        *a_bar, params_bar = layers.affine_vjp(
            (1,) if i == 0 else (0, 1), None, args, {}
        )(z_bar)
        params_bar.mut_add(state_bar)
        if i > 0:
            (z_bar,) = layers.activation_vjp(None, hidden[i], (None, activation), {})(
                hidden_bar[i] + a_bar[0]
            )
    if on_first_layer is not None:
        on_first_layer(tape, z_bar, grad_bar[all_layers[0].coef])
    return state_bar, [alpha_bar, sizes_bar, *decay_bar]


def _sweep_steps(problem, hp, run, first, stop, state, state_bar, inputs_bar, on_step):
    """Cotangent of the state before step ``first``, from that after ``stop - 1``.

    ``state`` is the state before step ``first`` (steps are numbered as in
    :func:`_run_steps`). A stretch whose record fits in ``_TAPE_BYTES``, or
    a single step, is run again recording each step, and its steps are swept
    backwards by :func:`_step_vjp`, each record dropped once swept. A longer
    stretch is cut into ``_FANOUT`` parts: a plain run computes their first
    states, and the parts are swept from the last to the first, each in the
    same way. The memory is a few states per level of cutting; each level
    costs one more plain run of its steps.

    ``inputs_bar`` (a dict, updated) receives, for each epoch, the
    cotangents of its inputs summed over its steps (see :func:`_step_vjp`);
    ``on_step``, if given, is called as ``on_step(epoch, k, tape, z_bar,
    coef_bar)`` for each step ``k`` of ``epoch``, last to first.
    """
    n = stop - first
    if n == 1 or n * problem.step_record_nbytes <= _TAPE_BYTES:
        tapes = []
        _run_steps(problem, hp, run, state, first, stop, tapes)
        while tapes:
            tape = tapes.pop()
            on_first_layer = (
                None if on_step is None else partial(on_step, tape.epoch, tape.step)
            )
            state_bar, step_bar = _step_vjp(
                problem, tape, state_bar, hp["alpha"], on_first_layer
            )
            total = inputs_bar.get(tape.epoch)
            inputs_bar[tape.epoch] = (
                step_bar
                if total is None
                else [t + bar for t, bar in zip(total, step_bar, strict=True)]
            )
        return state_bar
    length = -(-n // _FANOUT)
    starts = list(range(first, stop, length))
    states = [state]
    for start, end in pairwise(starts):
        states.append(_run_steps(problem, hp, run, states[-1], start, end))
    for start in reversed(starts):
        state_bar = _sweep_steps(
            problem,
            hp,
            run,
            start,
            min(start + length, stop),
            states.pop(),
            state_bar,
            inputs_bar,
            on_step,
        )
    return state_bar


def _decays(problem):
    """The optimizer's decay hyperparameters, in the order of its update."""
    shared = ("alpha", "learning_rate_init")
    return [n for n in solver_hyperparameters(problem.solver) if n not in shared]


def hypergradient_reverse(problem, run, hp, names, loss, on_step=None):
    """Derivative of ``loss(run.theta)`` by a backward sweep over the steps.

    The epochs between two checkpoints are swept backwards step by step by
    :func:`_sweep_steps`, from the later checkpoints to the earlier, with
    the states it needs recomputed from the checkpoint. The cotangents of
    each epoch's inputs (``alpha``, its step sizes and the optimizer's
    decays) are collected, and autograd carries them to the hyperparameters
    once at the end, through :func:`_step_sizes`.

    Parameters
    ----------
    problem : TrainingProblem
    run : Trajectory
        From :func:`train` with ``keep_checkpoints=True``. Its checkpoints
        are consumed: each is dropped once the epochs it starts are swept.
    hp : dict of str -> float
        The values ``run`` was trained with.
    names : list of str
        Hyperparameters to differentiate with respect to.
    loss : callable
        ``loss(theta)``, traced.
    on_step : callable or None
        Called for every step swept, as ``on_step(epoch, k, tape, z_bar,
        coef_bar)`` (see :func:`_step_vjp`).

    Returns
    -------
    grad : ndarray of shape (len(names),)
    """
    state_bar = np.concatenate(
        [make_vjp(loss)(run.theta)[0](1.0), np.zeros(problem.n_moments)]
    )
    inputs_bar = {}
    stride = run.checkpoint_stride
    n_batches = len(problem.batches)
    for start in range(stride * ((run.snapshot - 1) // stride), -1, -stride):
        stop = min(start + stride, run.snapshot)
        state = run.checkpoints.pop(start)
        state_bar = _sweep_steps(
            problem,
            hp,
            run,
            start * n_batches,
            stop * n_batches,
            problem.initial_state() if state is None else state,
            state_bar,
            inputs_bar,
            on_step,
        )

    def inputs_dot_bar(h):
        """The inputs of the epochs, dotted with their cotangents (traced)."""
        tuned = _with_tuned(hp, names, h)
        total = 0.0
        for epoch, (alpha_bar, sizes_bar, *decay_bar) in inputs_bar.items():
            sizes = _step_sizes(tuned, problem, epoch, run.divisions[epoch])
            total = total + tuned["alpha"] * alpha_bar + anp.sum(sizes * sizes_bar)
            for name, bar in zip(_decays(problem), decay_bar, strict=True):
                total = total + tuned[name] * bar
        return total

    h = np.array([float(hp[name]) for name in names])
    if not inputs_bar:  # early stopping kept the initial weights
        return np.zeros_like(h)
    return make_vjp(inputs_dot_bar)(h)[0](1.0)


def hypergradient_forward(problem, run, hp, names, loss):
    """Derivative of ``loss(run.theta)`` by forward mode, one pass per name.

    Same parameters and return value as :func:`hypergradient_reverse`; ``run``
    needs no checkpoints.
    """
    h = np.array([float(hp[name]) for name in names])

    def trained_loss(h):
        tuned = _with_tuned(hp, names, h)
        state = problem.initial_state()
        for epoch in range(run.snapshot):
            state = _run_epoch(state, tuned, problem, epoch, run.divisions[epoch])
        return loss(state[: problem.layout.n_params])

    jvp = make_jvp(trained_loss)(h)
    return np.array([jvp(direction)[1] for direction in np.eye(len(h))])
