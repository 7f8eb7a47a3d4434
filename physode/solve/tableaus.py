"""Butcher tableaus of the explicit Runge-Kutta methods, as data.

A stage is k_i = f(t + c_i h, y + h sum_j a_ij k_j); the step is y1 = y + h sum_i b_i k_i over its
len(b) stages. `c` and `a` may go on past them with stages that only the continuous extension
evaluates. `b_error` holds b - b_hat, the difference to the embedded lower-order weights, so the
local error estimate is h sum_i b_error_i k_i; `b_error_low`, where given, is a second estimate
from a still lower order (DOP853's), which RungeKutta.error combines with the first.

`dense` is the continuous extension y(t + theta h) = y + h sum_i b_i(theta) k_i, a row for every
stage: b_i(theta) = sum_j dense[i][j] phi_j(theta), in the basis phi_j = theta^(j+1) ("powers") or
phi_j = theta^(floor(j/2)+1) (1 - theta)^ceil(j/2) ("nested": Hairer's form
y0 + theta (F_0 + (1 - theta)(F_1 + theta (F_2 + (1 - theta)(F_3 + ...)))) with F_j = h sum_i
dense[i][j] k_i, exact at both ends of the step). Methods without their own extension use the
cubic Hermite interpolant through (y0, f0) and (y1, f1), with f(t1, y1) as one more stage where
it is not the FSAL stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction as F
from functools import cached_property


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: its stages, weights, embedded error estimates, continuous
    extension and orders (error_order and error_order_low: those of the embedded members)."""

    name: str
    order: int
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    dense: tuple[tuple[float, ...], ...]
    dense_order: int
    dense_basis: str
    b_error: tuple[float, ...] | None = None
    error_order: int | None = None
    b_error_low: tuple[float, ...] | None = None
    error_order_low: int | None = None

    def __post_init__(self):
        if len(self.a) != len(self.c) or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"tableau {self.name}: a must have a row of length i for every stage i")
        if not len(self.b) <= len(self.c) == len(self.dense):
            raise ValueError(f"tableau {self.name}: b must cover the step's stages and dense every stage")
        if self.dense_basis not in ("powers", "nested"):
            raise ValueError(f"tableau {self.name}: dense_basis must be 'powers' or 'nested', got {self.dense_basis!r}")
        for weights in (self.b_error, self.b_error_low):
            if weights is not None and len(weights) != len(self.b):
                raise ValueError(f"tableau {self.name}: error weights must cover the step's stages")

    @property
    def dense_exponents(self) -> tuple[tuple[int, int], ...]:
        """(p, q) of each basis function theta^p (1 - theta)^q that the columns of `dense` weigh."""
        m = len(self.dense[0])
        if self.dense_basis == "powers":
            return tuple((j + 1, 0) for j in range(m))
        return tuple((j // 2 + 1, (j + 1) // 2) for j in range(m))

    @property
    def stages(self) -> int:
        """The step's stages; the continuous extension may evaluate more."""
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        return self.b_error is not None

    @cached_property
    def end_stage(self) -> int | None:
        """The index of the stage f(t1, y1) (c = 1, a = b), if there is one."""
        return _end_stage(self.c, self.a, self.b)

    @property
    def fsal(self) -> bool:
        """First same as last: the step's last stage is f(t1, y1), the next step's first stage."""
        return self.end_stage == self.stages - 1

    @cached_property
    def solution_stages(self) -> int:
        """Number of leading stages that y1 depends on (the last nonzero b, plus one)."""
        return max(i for i, bi in enumerate(self.b) if bi != 0.0) + 1


def _end_stage(c: Sequence, a: Sequence[Sequence], b: Sequence) -> int | None:
    """The first stage evaluated at (t1, y1): c_i = 1 and a_i = b, up to trailing zeros."""
    for i in range(1, len(c)):
        width = max(i, len(b))
        if c[i] == 1 and _padded(a[i], width) == _padded(b, width):
            return i
    return None


def _padded(values: Sequence, width: int) -> tuple:
    return (*values, *[0] * (width - len(values)))


def _tableau(
    name, order, c, a, b, b_hat=None, error_order=None, *, b_error=None, b_hat_low=None, error_order_low=None,
    dense=None, dense_terms=(), dense_order=3,
):
    """A ButcherTableau from exact coefficients (numbers or strings such as "1/3").

    The embedded pair is given by b_hat, or directly by b_error = b - b_hat. `dense` is in powers
    of theta. Without it, the continuous extension is the cubic Hermite interpolant in the nested
    form: F_0 = y1 - y0, F_1 = h f0 - F_0, F_2 = 2 F_0 - h (f0 + f1) (Hairer, Norsett & Wanner,
    Solving ODEs I, II.6), with f1 = f(t1, y1) appended as a stage where no stage is it, followed
    by `dense_terms` F_3, F_4, ... (weight vectors over every stage: DOP853's order-7 extension).
    """
    c, b = [F(x) for x in c], [F(x) for x in b]
    a = [[F(x) for x in row] for row in a]
    dense_basis = "nested" if dense is None else "powers"
    if dense is None:
        end = _end_stage(c, a, b)
        if end is None:
            end = len(c)
            c, a = [*c, F(1)], [*a, list(_padded(b, end))]
        n = len(c)
        f0, f1, increment = _unit(0, n), _unit(end, n), list(_padded(b, n))
        hermite = [increment, [x - y for x, y in zip(f0, increment)],
                   [2 * x - y - z for x, y, z in zip(increment, f0, f1)]]
        dense = list(zip(*hermite, *dense_terms))  # a row per stage
    if b_hat is not None:
        b_error = [x - F(y) for x, y in zip(b, b_hat)]
    b_error_low = None if b_hat_low is None else [x - F(y) for x, y in zip(b, b_hat_low)]
    return ButcherTableau(
        name=name,
        order=order,
        c=_floats(c),
        a=tuple(_floats(row) for row in a),
        b=_floats(b),
        dense=tuple(_floats(row) for row in dense),
        dense_order=dense_order,
        dense_basis=dense_basis,
        b_error=None if b_error is None else _floats(b_error),
        error_order=error_order,
        b_error_low=None if b_error_low is None else _floats(b_error_low),
        error_order_low=error_order_low,
    )


def _floats(values) -> tuple[float, ...]:
    return tuple(float(F(v)) for v in values)


def _unit(i: int, n: int) -> list[F]:
    return [F(int(j == i)) for j in range(n)]


EULER = _tableau("euler", 1, c=[0], a=[[]], b=[1])

MIDPOINT = _tableau("midpoint", 2, c=[0, "1/2"], a=[[], ["1/2"]], b=[0, 1])

# The classical fourth-order Runge-Kutta method (Kutta, "Beitrag zur naeherungsweisen Integration
# totaler Differentialgleichungen", Z. Math. Phys. 46 (1901) 435-453). torchdiffeq's "rk4" is
# Kutta's 3/8 rule instead: here that is rk38.
RK4 = _tableau(
    "rk4", 4,
    c=[0, "1/2", "1/2", 1],
    a=[[], ["1/2"], [0, "1/2"], [0, 0, 1]],
    b=["1/6", "1/3", "1/3", "1/6"],
)

# Heun's second-order method, the explicit trapezoidal rule (Heun, "Neue Methoden zur approximativen
# Integration der Differentialgleichungen einer unabhaengigen Veraenderlichen", Z. Math. Phys. 45
# (1900) 23-38): heun_euler without its error estimate.
HEUN2 = _tableau("heun2", 2, c=[0, 1], a=[[], [1]], b=["1/2", "1/2"])

# Heun's third-order method (Heun 1900, as above).
HEUN3 = _tableau(
    "heun3", 3,
    c=[0, "1/3", "2/3"],
    a=[[], ["1/3"], [0, "2/3"]],
    b=["1/4", 0, "3/4"],
)

# Kutta's 3/8 rule (Kutta 1901, as above): torchdiffeq's "rk4".
RK38 = _tableau(
    "rk38", 4,
    c=[0, "1/3", "2/3", 1],
    a=[[], ["1/3"], ["-1/3", 1], [1, -1, 1]],
    b=["1/8", "3/8", "3/8", "1/8"],
)

# Heun's method with Euler's method embedded: order 2(1). Also registered as "adaptive_heun".
HEUN_EULER = _tableau(
    "heun_euler", 2,
    c=[0, 1], a=[[], [1]], b=["1/2", "1/2"], b_hat=[1, 0], error_order=1,
)

# Fehlberg's RKF 2(1) pair (Fehlberg, "Low-order classical Runge-Kutta formulas with stepsize
# control and their application to some heat transfer problems", NASA TR R-315, 1969, the
# RK1(2) formulas): the second-order weights propagate the solution (local extrapolation), so the
# third stage, f at Fehlberg's first-order solution, is not an FSAL stage.
FEHLBERG2 = _tableau(
    "fehlberg2", 2,
    c=[0, "1/2", 1],
    a=[[], ["1/2"], ["1/256", "255/256"]],
    b=["1/512", "255/256", "1/512"],
    b_hat=["1/256", "255/256", 0],
    error_order=1,
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

# Dormand & Prince's 8(5,3) pair of Hairer's DOP853 code (Hairer, Norsett & Wanner, Solving ODEs I,
# 2nd ed., II.10, with the code's coefficients): order 8 in 12 stages plus the FSAL stage f(t1, y1);
# error estimates from embedded members of orders 5 (b_error, given as the code's differences) and
# 3 (b_hat_low), combined by RungeKutta.error into one ~ h^8; a continuous extension of order 7
# (Hairer, Norsett & Wanner, II.6), the cubic Hermite interpolant plus four terms that take three
# more stages. torchdiffeq's "dopri8" is another method of order 8, the RK8(7)13M pair of Prince &
# Dormand, "High order embedded Runge-Kutta formulae", J. Comput. Appl. Math. 7 (1981) 67-75.
_DOP853_B = [
    "5.42937341165687622380535766363e-2", 0, 0, 0, 0, "4.45031289275240888144113950566",
    "1.89151789931450038304281599044", "-5.8012039600105847814672114227", "3.1116436695781989440891606237e-1",
    "-1.52160949662516078556178806805e-1", "2.01365400804030348374776537501e-1",
    "4.47106157277725905176885569043e-2",
]
DOPRI8 = _tableau(
    "dopri8", 8,
    c=[0, "0.526001519587677318785587544488e-01", "0.789002279381515978178381316732e-01",
       "0.118350341907227396726757197510", "0.281649658092772603273242802490",
       "0.333333333333333333333333333333", "0.25", "0.307692307692307692307692307692",
       "0.651282051282051282051282051282", "0.6", "0.857142857142857142857142857142", 1, 1, "0.1", "0.2",
       "0.777777777777777777777777777778"],
    a=[
        [],
        ["5.26001519587677318785587544488e-2"],
        ["1.97250569845378994544595329183e-2", "5.91751709536136983633785987549e-2"],
        ["2.95875854768068491816892993775e-2", 0, "8.87627564304205475450678981324e-2"],
        ["2.41365134159266685502369798665e-1", 0, "-8.84549479328286085344864962717e-1",
         "9.24834003261792003115737966543e-1"],
        ["3.7037037037037037037037037037e-2", 0, 0, "1.70828608729473871279604482173e-1",
         "1.25467687566822425016691814123e-1"],
        ["3.7109375e-2", 0, 0, "1.70252211019544039314978060272e-1", "6.02165389804559606850219397283e-2",
         "-1.7578125e-2"],
        ["3.70920001185047927108779319836e-2", 0, 0, "1.70383925712239993810214054705e-1",
         "1.07262030446373284651809199168e-1", "-1.53194377486244017527936158236e-2",
         "8.27378916381402288758473766002e-3"],
        ["6.24110958716075717114429577812e-1", 0, 0, "-3.36089262944694129406857109825",
         "-8.68219346841726006818189891453e-1", "2.75920996994467083049415600797e1",
         "2.01540675504778934086186788979e1", "-4.34898841810699588477366255144e1"],
        ["4.77662536438264365890433908527e-1", 0, 0, "-2.48811461997166764192642586468",
         "-5.90290826836842996371446475743e-1", "2.12300514481811942347288949897e1",
         "1.52792336328824235832596922938e1", "-3.32882109689848629194453265587e1",
         "-2.03312017085086261358222928593e-2"],
        ["-9.3714243008598732571704021658e-1", 0, 0, "5.18637242884406370830023853209",
         "1.09143734899672957818500254654", "-8.14978701074692612513997267357",
         "-1.85200656599969598641566180701e1", "2.27394870993505042818970056734e1",
         "2.49360555267965238987089396762", "-3.0467644718982195003823669022"],
        ["2.27331014751653820792359768449", 0, 0, "-1.05344954667372501984066689879e1",
         "-2.00087205822486249909675718444", "-1.79589318631187989172765950534e1",
         "2.79488845294199600508499808837e1", "-2.85899827713502369474065508674",
         "-8.87285693353062954433549289258", "1.23605671757943030647266201528e1",
         "6.43392746015763530355970484046e-1"],
        _DOP853_B,
        ["5.61675022830479523392909219681e-2", 0, 0, 0, 0, 0, "2.53500210216624811088794765333e-1",
         "-2.46239037470802489917441475441e-1", "-1.24191423263816360469010140626e-1",
         "1.5329179827876569731206322685e-1", "8.20105229563468988491666602057e-3",
         "7.56789766054569976138603589584e-3", "-8.298e-3"],
        ["3.18346481635021405060768473261e-2", 0, 0, 0, 0, "2.83009096723667755288322961402e-2",
         "5.35419883074385676223797384372e-2", "-5.49237485713909884646569340306e-2", 0, 0,
         "-1.08347328697249322858509316994e-4", "3.82571090835658412954920192323e-4",
         "-3.40465008687404560802977114492e-4", "1.41312443674632500278074618366e-1"],
        ["-4.28896301583791923408573538692e-1", 0, 0, 0, 0, "-4.69762141536116384314449447206",
         "7.68342119606259904184240953878", "4.06898981839711007970213554331",
         "3.56727187455281109270669543021e-1", 0, 0, 0, "-1.39902416515901462129418009734e-3",
         "2.9475147891527723389556272149", "-9.15095847217987001081870187138"],
    ],
    b=[*_DOP853_B, 0],
    b_error=["0.1312004499419488073250102996e-1", 0, 0, 0, 0, "-0.1225156446376204440720569753e+1",
             "-0.4957589496572501915214079952", "0.1664377182454986536961530415e+1",
             "-0.3503288487499736816886487290", "0.3341791187130174790297318841",
             "0.8192320648511571246570742613e-1", "-0.2235530786388629525884427845e-1", 0],
    error_order=5,
    b_hat_low=["0.244094488188976377952755905512", 0, 0, 0, 0, 0, 0, 0, "0.733846688281611857341361741547", 0,
               0, "0.220588235294117647058823529412e-1", 0],
    error_order_low=3,
    dense_terms=[
        ["-0.84289382761090128651353491142e+1", 0, 0, 0, 0, "0.56671495351937776962531783590",
         "-0.30689499459498916912797304727e+1", "0.23846676565120698287728149680e+1",
         "0.21170345824450282767155149946e+1", "-0.87139158377797299206789907490",
         "0.22404374302607882758541771650e+1", "0.63157877876946881815570249290",
         "-0.88990336451333310820698117400e-1", "0.18148505520854727256656404962e+2",
         "-0.91946323924783554000451984436e+1", "-0.44360363875948939664310572000e+1"],
        ["0.10427508642579134603413151009e+2", 0, 0, 0, 0, "0.24228349177525818288430175319e+3",
         "0.16520045171727028198505394887e+3", "-0.37454675472269020279518312152e+3",
         "-0.22113666853125306036270938578e+2", "0.77334326684722638389603898808e+1",
         "-0.30674084731089398182061213626e+2", "-0.93321305264302278729567221706e+1",
         "0.15697238121770843886131091075e+2", "-0.31139403219565177677282850411e+2",
         "-0.93529243588444783865713862664e+1", "0.35816841486394083752465898540e+2"],
        ["0.19985053242002433820987653617e+2", 0, 0, 0, 0, "-0.38703730874935176555105901742e+3",
         "-0.18917813819516756882830838328e+3", "0.52780815920542364900561016686e+3",
         "-0.11573902539959630126141871134e+2", "0.68812326946963000169666922661e+1",
         "-0.10006050966910838403183860980e+1", "0.77771377980534432092869265740",
         "-0.27782057523535084065932004339e+1", "-0.60196695231264120758267380846e+2",
         "0.84320405506677161018159903784e+2", "0.11992291136182789328035130030e+2"],
        ["-0.25693933462703749003312586129e+2", 0, 0, 0, 0, "-0.15418974869023643374053993627e+3",
         "-0.23152937917604549567536039109e+3", "0.35763911791061412378285349910e+3",
         "0.93405324183624310003907691704e+2", "-0.37458323136451633156875139351e+2",
         "0.10409964950896230045147246184e+3", "0.29840293426660503123344363579e+2",
         "-0.43533456590011143754432175058e+2", "0.96324553959188282948394950600e+2",
         "-0.39177261675615439165231486172e+2", "-0.14972683625798562581422125276e+3"],
    ],
    dense_order=7,
)

TABLEAUS: dict[str, ButcherTableau] = {
    t.name: t for t in (EULER, MIDPOINT, HEUN2, HEUN3, RK4, RK38, HEUN_EULER, FEHLBERG2, BOSH3, DOPRI5, TSIT5, DOPRI8)
}
