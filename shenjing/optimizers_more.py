"""More of Keras 3's optimizers: Nadam, Adamax, Adadelta, Lion (names, defaults, formulas).

They share the Optimizer base in shenjing.optimizers (clipping, weight decay, schedules, slots
saved as ``"<variable name>/<slot>"``, config); slot names are Keras's. g is the clipped
gradient, t = iterations + 1 the step being taken, lr the rate of this step.
"""

from __future__ import annotations

import numpy as np

from .optimizers import Optimizer


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2016), Keras form, with u_s = beta_1 (1 - 0.96^s / 2):

    m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); P_t = u_1 ... u_t;
    m_hat = u_{t+1} m / (1 - P_t u_{t+1}) + (1 - u_t) g / (1 - P_t); v_hat = v / (1 - beta_2^t);
    var -= lr * m_hat / (sqrt(v_hat) + epsilon). P_t (Keras's u_product) follows from the step
    count, so a restored state recomputes it rather than storing it.
    """

    elementwise = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = self._arg("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = self._arg("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = self._arg("epsilon", epsilon, low=0)
        self._slot_names = ("momentum", "velocity")
        self._u_product = 1.0  # P_{iterations}

    def _u(self, step) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96**step)

    def apply(self, variables, grads=None) -> None:
        step = self.iterations + 1
        self._step_u_product = self._u_product * self._u(step)  # P_t, read by _update
        super().apply(variables, grads)
        self._u_product = self._step_u_product  # only once the step went through

    def _update(self, var, g, slots, lr):
        step = self.iterations + 1
        u_t, u_next, p_t = self._u(step), self._u(step + 1), self._step_u_product
        m, v = slots["momentum"], slots["velocity"]
        m += (g - m) * (1.0 - self.beta_1)
        v += (g * g - v) * (1.0 - self.beta_2)
        m_hat = m * (u_next / (1.0 - p_t * u_next)) + g * ((1.0 - u_t) / (1.0 - p_t))
        v_hat = v / (1.0 - self.beta_2**step)
        var -= m_hat * lr / (np.sqrt(v_hat) + self.epsilon)

    def set_state(self, state, variables) -> None:
        super().set_state(state, variables)
        product = 1.0
        for step in range(1, self.iterations + 1):  # the same products, in order, as apply's
            product *= self._u(step)
            if product == 0.0:
                break
        self._u_product = product

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm, Keras form: m += (g - m)(1 - beta_1);
    u = max(beta_2 u, |g|); var -= lr * m / ((1 - beta_1^t)(u + epsilon)). Slots momentum, norm.
    """

    elementwise = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = self._arg("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = self._arg("beta_2", beta_2, low=0, high=1)
        self.epsilon = self._arg("epsilon", epsilon, low=0)
        self._slot_names = ("momentum", "norm")

    def _update(self, var, g, slots, lr):
        step = self.iterations + 1
        m, u = slots["momentum"], slots["norm"]
        m += (g - m) * (1.0 - self.beta_1)
        np.maximum(u * self.beta_2, np.abs(g), out=u)
        var -= m * lr / ((u + self.epsilon) * (1.0 - self.beta_1**step))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), Keras form, rms(a) = sqrt(a + epsilon):
    G = rho G + (1 - rho) g^2; d = -rms(D) g / rms(G); D = rho D + (1 - rho) d^2; var += lr d.
    Slots accumulated_grad (G), accumulated_delta_var (D). Keras's default lr is 0.001.
    """

    elementwise = True

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = self._arg("rho", rho, low=0, high=1)
        self.epsilon = self._arg("epsilon", epsilon, low=0)
        self._slot_names = ("accumulated_grad", "accumulated_delta_var")

    def _update(self, var, g, slots, lr):
        acc_g, acc_d = slots["accumulated_grad"], slots["accumulated_delta_var"]
        acc_g *= self.rho
        acc_g += g * g * (1.0 - self.rho)
        delta = -np.sqrt(acc_d + self.epsilon) * g / np.sqrt(acc_g + self.epsilon)
        acc_d *= self.rho
        acc_d += delta * delta * (1.0 - self.rho)
        var += delta * lr

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion (Chen et al. 2023), Keras form: var -= lr * sign(beta_1 m + (1 - beta_1) g), then
    m = beta_2 m + (1 - beta_2) g. Slot momentum. Its steps are +-lr per entry: use a learning
    rate 3-10x smaller than AdamW's."""

    elementwise = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = self._arg("beta_1", beta_1, low=0, high=1, low_open=True)
        self.beta_2 = self._arg("beta_2", beta_2, low=0, high=1)
        self._slot_names = ("momentum",)

    def _update(self, var, g, slots, lr):
        m = slots["momentum"]
        var -= np.sign(m * self.beta_1 + g * (1.0 - self.beta_1)) * lr
        m *= self.beta_2
        m += g * (1.0 - self.beta_2)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


__all__ = ["Adadelta", "Adamax", "Lion", "Nadam"]
