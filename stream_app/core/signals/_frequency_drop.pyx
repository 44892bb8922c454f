# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""FREQUENCY_DROP's two hot questions, compiled: is there a drop at ``now``,
and at which bucket boundary does the next one appear?

The same arithmetic as :func:`stream_app.core.signals.frequency_drop._judge`
and ``_scan``, step for step and in the same order, on the state's typed
columns instead of Python objects.  Only the yes/no of a drop is answered
here: a drop found is described by the Python code, which also stays the
reference a test compares this with.
"""

import sys

from libc.math cimport copysign, exp, fabs, floor, fmod, isfinite

cdef double DAY = 86400.0
#: Python 3.12's sum() of floats compensates its rounding (Neumaier); 3.11's adds plainly.
cdef bint COMPENSATED_SUM = sys.version_info >= (3, 12)


cdef inline double _floordiv(double vx, double wx) noexcept:
    # CPython's float floor division (Objects/floatobject.c, _float_div_mod),
    # not floor(vx / wx), which rounds differently just below a multiple.
    cdef double mod = fmod(vx, wx)
    cdef double div = (vx - mod) / wx
    cdef double result
    if mod:
        if (wx < 0) != (mod < 0):
            div -= 1.0
    if div:
        result = floor(div)
        if div - result > 0.5:
            result += 1.0
        return result
    return copysign(0.0, vx / wx)


cdef double _sum(const double[:] xs, Py_ssize_t start, Py_ssize_t stop) noexcept:
    # Python's sum() over xs[start:stop], as this Python computes it.
    cdef double total = 0.0, c = 0.0, t, x
    cdef Py_ssize_t i
    if not COMPENSATED_SUM:
        for i in range(start, stop):
            total += xs[i]
        return total
    for i in range(start, stop):
        x = xs[i]
        t = total + x
        if fabs(total) >= fabs(x):
            c += (total - t) + x
        else:
            c += (x - t) + total
        total = t
    if c and isfinite(c):
        total += c
    return total


cdef inline Py_ssize_t _bisect_left(const long long[:] a, long long x) noexcept:
    cdef Py_ssize_t lo = 0, hi = a.shape[0], mid
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _bisect_right(const long long[:] a, long long x) noexcept:
    cdef Py_ssize_t lo = 0, hi = a.shape[0], mid
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef double _poisson_cdf(long long k, double mean) noexcept:
    # As signals.base.poisson_cdf.
    if mean <= 0:
        return 1.0
    cdef double term = exp(-mean)
    cdef double total = term
    cdef long long i
    for i in range(1, k + 1):
        term *= mean / i
        total += term
    return 1.0 if total > 1.0 else total


cdef class Kernel:
    """The policy's numbers, read once; one per ``[frequency_drop]`` and ``[history]``."""

    cdef long long recent_buckets, baseline_buckets
    cdef double min_baseline_purchases, min_baseline_days, max_ratio, max_probability
    cdef double min_expected_for_spend, width

    def __init__(self, fd, history):
        self.recent_buckets = fd.recent_buckets
        self.baseline_buckets = fd.baseline_buckets
        self.min_baseline_purchases = fd.min_baseline_purchases
        self.min_baseline_days = fd.min_baseline_days
        self.max_ratio = fd.max_ratio
        self.max_probability = fd.max_probability
        self.min_expected_for_spend = fd.min_expected_for_spend
        self.width = history.bucket_days * DAY

    cpdef bint drops(self, state, double now) except -1:
        """Whether ``_judge(state, now, policy)`` finds a drop."""
        first = state.first_purchase_ts
        if first is None or state.purchases < self.min_baseline_purchases:
            return False
        cdef double width = self.width
        cdef long long current = <long long>_floordiv(now, width)
        cdef long long recent_from = current - self.recent_buckets + 1
        cdef long long baseline_from = recent_from - self.baseline_buckets
        cdef double recent_start = recent_from * width
        cdef double first_bucket_start = <double>(<long long>_floordiv(first, width)) * width
        cdef double baseline_start = baseline_from * width
        if first_bucket_start > baseline_start:
            baseline_start = first_bucket_start
        cdef double baseline_days = (recent_start - baseline_start) / DAY
        cdef double recent_days = (now - recent_start) / DAY
        if baseline_days < self.min_baseline_days or recent_days <= 0:
            return False
        cdef const long long[:] idxs = state.bucket_idx
        cdef const long long[:] counts = state.bucket_count
        cdef Py_ssize_t base = _bisect_left(idxs, baseline_from)
        cdef Py_ssize_t recent = _bisect_left(idxs, recent_from)
        cdef Py_ssize_t end = _bisect_right(idxs, current)
        cdef Py_ssize_t i
        cdef long long base_count = 0, recent_count = 0
        for i in range(base, recent):
            base_count += counts[i]
        for i in range(recent, end):
            recent_count += counts[i]
        cdef double base_n = <double>base_count
        cdef double recent_n = <double>recent_count
        if base_n < self.min_baseline_purchases:
            return False
        cdef double expected = base_n / baseline_days * recent_days
        if (recent_n / expected <= self.max_ratio
                and _poisson_cdf(recent_count, expected) <= self.max_probability):
            return True
        if not (expected >= self.min_expected_for_spend and 1 <= recent_n <= expected):
            return False
        cdef const double[:] spends = state.bucket_spend
        cdef double base_spend = _sum(spends, base, recent)
        cdef double recent_spend = _sum(spends, recent, end)
        cdef double expected_spend = base_spend / baseline_days * recent_days
        cdef double spend_ratio = recent_spend / expected_spend if expected_spend > 0 else 1.0
        return spend_ratio <= self.max_ratio

    cpdef object first_drop(self, state, long long start):
        """``_scan(state, start, policy)``: the first boundary index from ``start``
        on at which a drop shows, or None."""
        cdef const long long[:] idxs = state.bucket_idx
        first = state.first_purchase_ts
        if idxs.shape[0] == 0 or first is None:
            return None
        if self.recent_buckets - 1 <= 0:
            return None
        if len(state.bucket_count) != len(state.bucket_spend):
            raise ValueError("the bucket count and spend columns differ in length")
        cdef double width = self.width
        cdef long long newest = idxs[idxs.shape[0] - 1]
        cdef double first_bucket_start = <double>(<long long>_floordiv(first, width)) * width
        cdef long long c, recent_from
        cdef double baseline_start
        for c in range(start, newest + self.recent_buckets + self.baseline_buckets):
            recent_from = c - self.recent_buckets + 1
            baseline_start = (recent_from - self.baseline_buckets) * width
            if first_bucket_start > baseline_start:
                baseline_start = first_bucket_start
            if (recent_from * width - baseline_start) / DAY < self.min_baseline_days:
                continue
            if self.drops(state, c * width):
                return c
            if recent_from > newest:
                return None
        return None
