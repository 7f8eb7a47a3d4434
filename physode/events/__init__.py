"""Events: the times where a guard g(t, y) crosses zero along a solution, located on the dense
output and differentiable by the implicit function theorem (Chen, Amos & Nickel, ICLR 2021).

`odeint_event` and `odeint_until_event` are torchdiffeq's interface (one terminal event function);
`solve_hybrid` runs hybrid systems: several `Event`s, each with a direction, recorded, terminal or
with a reset map after which the integration restarts.
"""

from .guard import Event
from .hybrid import HybridSolution, solve_hybrid
from .terminal import odeint_event, odeint_until_event

__all__ = ["Event", "HybridSolution", "odeint_event", "odeint_until_event", "solve_hybrid"]
