"""Butcher tableaus of the explicit Runge-Kutta methods, as data.

A stage is k_i = f(t + c_i h, y + h sum_j a_ij k_j); the step is y1 = y + h sum_i b_i k_i.
`b_error` holds b - b_hat, the difference to the embedded lower-order weights, so the local
error estimate is h sum_i b_error_i k_i. `dense` holds the continuous extension
b_i(theta) = sum_j dense[i][j] theta^(j+1), y(t + theta h) = y + h sum_i b_i(theta) k_i; methods
without one use cubic Hermite interpolation between the step's ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction as F


def _floats(values) -> tuple[float, ...]:
    return tuple(float(F(v)) for v in values)


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method and its embedded pair, dense output and orders."""

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_error: tuple[float, ...] | None = None
    error_order: int | None = None
    dense: tuple[tuple[float, ...], ...] | None = None
    dense_order: int = 3

    @property
    def stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None

    @cached_property
    def fsal(self) -> bool:
        """First same as last: the last stage is f(t + h, y1), the next step's first stage."""
        return self.c[-1] == 1.0 and self.b[-1] == 0.0 and self.a[-1] == self.b[:-1]

    @cached_property
    def solution_stages(self) -> int:
        """Number of leading stages that y1 depends on (the last nonzero b, plus one)."""
        return max(i for i, bi in enumerate(self.b) if bi != 0.0) + 1


def _tableau(name, order, c, a, b, b_hat=None, error_order=None, dense=None, dense_order=3):
    b = _floats(b)
    b_error = None if b_hat is None else tuple(x - y for x, y in zip(b, _floats(b_hat)))
    return ButcherTableau(
        name=name,
        order=order,
        c=_floats(c),
        a=tuple(_floats(row) for row in a),
        b=b,
        b_error=b_error,
        error_order=error_order,
        dense=None if dense is None else tuple(_floats(row) for row in dense),
        dense_order=dense_order,
    )


EULER = _tableau("euler", 1, c=[0], a=[[]], b=[1])

MIDPOINT = _tableau("midpoint", 2, c=[0, "1/2"], a=[[], ["1/2"]], b=[0, 1])

# Classical fourth-order Runge-Kutta (Kutta 1901).
RK4 = _tableau(
    "rk4", 4,
    c=[0, "1/2", "1/2", 1],
    a=[[], ["1/2"], [0, "1/2"], [0, 0, 1]],
    b=["1/6", "1/3", "1/3", "1/6"],
)

# Heun's method with Euler's method embedded: order 2(1).
HEUN_EULER = _tableau(
    "heun_euler", 2,
    c=[0, 1], a=[[], [1]], b=["1/2", "1/2"], b_hat=[1, 0], error_order=1,
)

# Bogacki & Shampine, "A 3(2) pair of Runge-Kutta formulas", Appl. Math. Lett. 2 (1989) 321-325.
BOSH3 = _tableau(
    "bosh3", 3,
    c=[0, "1/2", "3/4", 1],
    a=[[], ["1/2"], [0, "3/4"], ["2/9", "1/3", "4/9"]],
    b=["2/9", "1/3", "4/9", 0],
    b_hat=["7/24", "1/4", "1/3", "1/8"],
    error_order=2,
)

# Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 6 (1980)
# 19-26; dense output of order 4 from Shampine, "Some practical Runge-Kutta formulas",
# Math. Comp. 46 (1986) 135-150, as given in Hairer, Norsett & Wanner, Solving ODEs I, II.6,
# expanded into powers of theta.
DOPRI5 = _tableau(
    "dopri5", 5,
    c=[0, "1/5", "3/10", "4/5", "8/9", 1, 1],
    a=[
        [],
        ["1/5"],
        ["3/40", "9/40"],
        ["44/45", "-56/15", "32/9"],
        ["19372/6561", "-25360/2187", "64448/6561", "-212/729"],
        ["9017/3168", "-355/33", "46732/5247", "49/176", "-5103/18656"],
        ["35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84"],
    ],
    b=["35/384", 0, "500/1113", "125/192", "-2187/6784", "11/84", 0],
    b_hat=["5179/57600", 0, "7571/16695", "393/640", "-92097/339200", "187/2100", "1/40"],
    error_order=4,
    dense=[
        [1, "-8048581381/2820520608", "8663915743/2820520608", "-12715105075/11282082432"],
        [0, 0, 0, 0],
        [0, "131558114200/32700410799", "-68118460800/10900136933", "87487479700/32700410799"],
        [0, "-1754552775/470086768", "14199869525/1410260304", "-10690763975/1880347072"],
        [0, "127303824393/49829197408", "-318862633887/49829197408", "701980252875/199316789632"],
        [0, "-282668133/205662961", "2019193451/616988883", "-1453857185/822651844"],
        [0, "40617522/29380423", "-110615467/29380423", "69997945/29380423"],
    ],
    dense_order=4,
)

# Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying
# assumption", Comput. Math. Appl. 62 (2011) 770-775, with its order-4 continuous extension.
_TSIT5_B = [
    "0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396",
    "0.01",
    "0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509",
    "1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331",
    "-3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677",
    "2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841",
]
TSIT5 = _tableau(
    "tsit5", 5,
    c=[0, "0.161", "0.327", "0.9", "0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604", 1, 1],
    a=[
        [],
        ["0.161"],
        [
            "-0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943",
            "0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569",
        ],
        [
            "2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289",
            "-6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366",
            "4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077",
        ],
        [
            "5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791",
            "-11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589",
            "7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753",
            "-0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635",
        ],
        [
            "5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748",
            "-12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452",
            "8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986",
            "-0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835",
            "-0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206",
        ],
        _TSIT5_B,
    ],
    b=_TSIT5_B + [0],
    b_hat=[
        "0.09468075576583945807478876255758922856117527357724631226139574065785592789071067303271",
        "0.009183565540343253096776363936645313759813746240984095238905939532922955247253608687270",
        "0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813",
        "1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761",
        "-2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702",
        "1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089",
        "1/66",
    ],
    error_order=4,
    dense=[
        [1, "-2.763706197274826", "2.9132554618219126", "-1.0530884977290216"],
        [0, "0.13169999999999998", "-0.2234", "0.1017"],
        [0, "3.9302962368947516", "-5.941033872131505", "2.490627285651253"],
        [0, "-12.411077166933676", "30.33818863028232", "-16.548102889244902"],
        [0, "37.50931341651104", "-88.1789048947664", "47.37952196281928"],
        [0, "-27.896526289197286", "65.09189467479366", "-34.87065786149661"],
        [0, "1.5", "-4", "2.5"],
    ],
    dense_order=4,
)

TABLEAUS: dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, RK4, HEUN_EULER, BOSH3, DOPRI5, TSIT5)
}
