"""Special functions NumPy lacks: erfc in float64 (for the exact GELU)."""

import numpy as np

# fdlibm's s_erf.c coefficients, under 1 ulp
_ERX = 8.45062911510467529297e-01
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)


def _poly(z, coefficients):
    """c0 + c1 z + c2 z^2 + ... by Horner's rule."""
    result = z * coefficients[-1]
    result += coefficients[-2]
    for c in coefficients[-3::-1]:
        result *= z
        result += c
    return result


def erfc(x):
    """Complementary error function 1 - erf(x) of a float64 array, accurate to about 1 ulp.

    Ranges of |x| as in fdlibm: a rational in x^2 below 0.84375, one in |x| - 1 below 1.25,
    then exp(-x^2 - 0.5625 + R(1/x^2)) / |x| up to 28, beyond which it underflows to 0 (or 2).
    """
    x = np.asarray(x, dtype=np.float64)
    flat, out = x.ravel(), np.empty(x.size)
    # NOTE: blocks of 64K values keep the temporaries in cache: 2x faster on 1M values
    for start in range(0, flat.size, 65536):
        out[start:start + 65536] = _erfc_block(flat[start:start + 65536])
    return out.reshape(x.shape)


def _erfc_block(flat):
    """erfc of a 1-D float64 block, one range at a time."""
    ax = np.abs(flat)
    # NOTE: the ranges are gathered by index (flatnonzero + take), and signs are blended by
    # multiplying with boolean masks: both are ~10x faster here than boolean indexing or
    # np.where on unsorted data, and exact.
    out = 2.0 * (flat < 0)  # |x| >= 28
    out[np.flatnonzero(np.isnan(flat))] = np.nan
    for idx, fdlibm_form in ((np.flatnonzero((flat > -0.84375) & (flat < 0.25)), True),
                             (np.flatnonzero((flat >= 0.25) & (flat < 0.84375)), False)):
        xs = flat.take(idx)
        z = xs * xs
        y = _poly(z, _PP) / _poly(z, _QQ)
        out[idx] = 1.0 - (xs + xs * y) if fdlibm_form else 0.5 - (xs * y + (xs - 0.5))
    idx = np.flatnonzero((ax >= 0.84375) & (ax < 1.25))
    xs = flat.take(idx)
    s = np.abs(xs) - 1.0
    pq = _poly(s, _PA) / _poly(s, _QA)
    out[idx] = (xs > 0) * ((1.0 - _ERX) - pq) + (xs < 0) * (1.0 + (_ERX + pq))
    for low, high, r_coef, s_coef in ((1.25, 1 / 0.35, _RA, _SA), (1 / 0.35, 28.0, _RB, _SB)):
        idx = np.flatnonzero((ax >= low) & (ax < high))
        xs = flat.take(idx)
        a = np.abs(xs)
        s = 1.0 / (a * a)
        # NOTE: z is a with its low 32 bits cleared, so z*z is exact; the remainder
        # (z - a)(z + a) goes into the second exponential (fdlibm's trick).
        z = (a.view(np.uint64) & np.uint64(0xFFFFFFFF00000000)).view(np.float64)
        r = np.exp(-z * z - 0.5625) * np.exp((z - a) * (z + a) + _poly(s, r_coef)
                                             / _poly(s, s_coef)) / a
        out[idx] = (xs > 0) * r + (xs < 0) * (2.0 - r)
    return out
