// TEM-style WBM: upland Stage 2 (spec §13.2–§13.7) — infiltration, linearised implicit Richards
// redistribution (Clapp–Hornberger, finite volume, Thomas solve), adaptive sub-steps, free drainage and
// the mass-conserving projection. Fixed-size arrays only: no heap allocation.
#include "tem_wbm/kernels.hpp"

#include "tem_wbm/vecmath.hpp"

#include <cstring>

namespace couplet::tem_wbm {

namespace {

/// Fluxes q^n and their derivatives A (w.r.t. θ above), B (w.r.t. θ below) of §13.3–13.4 at one θ: everything
/// a sub-step needs except Δt, so a rejected sub-step retried from the same θ reuses it.
/// Index k = 0..N−1 is interface k+½ below layer k; the top interface ½ has q = A = B = 0.
struct Linearisation {
  Layers q{}, A{}, B{};
};

/// The solution x = Δθ of the tridiagonal system of §13.5 for one sub-step.
struct Step {
  Layers x{};
  double DR_sub = 0;  ///< Δt·(q^n_{N+½} + A_{N+½}·x_N) [mm]
  bool ok = true;     ///< false: a zero/non-finite pivot or a non-finite result
};

// All power laws of one linearisation as exp(e·ln s) in single precision, the product e·ln s included
// (vecmath.hpp's pow_inplace, the same bits as richards_day_lanes): one ln ŝ per layer for ψ_i, one ln s̄
// per interface (§13.3), one ln of the bottom layer's clamp(s, 0, 1) for K_N; 12 logs and 12 exps in all.
// Single precision is ample: the flux error (~1e-5 relative at the steepest power laws) is far below the
// time-stepping error (~1e-3), and mass is conserved exactly whatever the flux (one flux per interface).
void linearise(const Layers& th, const Soil& s, const Options& o, const BottomFlux* bottom, Linearisation& L) {
  constexpr int N = kN - 1;  // bottom layer
  constexpr int kBottom = 2 * kN - 1;  // slot of the bottom K_N: layers 0..N, interfaces kN..2N−1, bottom
  std::array<double, 2 * kN> base, inv, pw;
  for (int i = 0; i < kN; ++i) base[i] = clamp(th[i] * s.inv_theta_sat[i], o.s_min, 1.0);  // ŝ_i
  for (int k = 0; k < N; ++k) base[kN + k] = clamp((th[k] + th[k + 1]) * s.inv_theta_sat_if[k], 0.0, 1.0);  // s̄
  const double sN = th[N] * s.inv_theta_sat[N];
  base[kBottom] = clamp(sN, 0.0, 1.0);  // K uses clamp(s,0,1), ψ the s_min-clamped ŝ
  alignas(32) float pack[16] = {}, expo[16] = {};
  for (int j = 0; j < 2 * kN; ++j) {
    pack[j] = static_cast<float>(base[j]);
    expo[j] = s.pow_exp[j];
  }
  for (int j = 2 * kN; j < 16; ++j) pack[j] = 1.0f;
  pow_inplace(pack, expo, 16);
  for (int j = 0; j < 2 * kN; ++j) pw[j] = pack[j];
  // reciprocals for ψ' and ∂K/∂θ
  for (int i = 0; i < kN; ++i) inv[i] = 1.0 / (base[i] * s.theta_sat[i]);
  for (int k = 0; k < N; ++k) inv[kN + k] = 1.0 / (base[kN + k] * s.theta_sat_if[k]);

  // §5: ψ_i = ψ_sat·ŝ^(−b) and ψ'_i = dψ/dθ at θ_i
  Layers psi, dpsi;
  for (int i = 0; i < kN; ++i) {
    psi[i] = s.psi_sat[i] * pw[i];
    if (psi[i] > o.psi_min) {
      dpsi[i] = -s.b[i] * psi[i] * inv[i];
    } else {
      psi[i] = o.psi_min;
      dpsi[i] = 0;
    }
  }
  // §13.3–13.4: interface fluxes and derivatives
  for (int k = 0; k < N; ++k) {
    const double sbar = base[kN + k];
    const double K = sbar > 0 ? s.k_if[k] * pw[kN + k] : 0.0;
    const double dK = sbar > 0 && sbar < 1 ? s.k_exp_if[k] * K * inv[kN + k] : 0.0;
    const double g = 1.0 - (psi[k + 1] - psi[k]) * s.inv_d[k];
    L.q[k] = K * g;
    L.A[k] = dK * g + K * dpsi[k] * s.inv_d[k];
    L.B[k] = dK * g - K * dpsi[k + 1] * s.inv_d[k];
  }
  if (bottom) {
    bottom->flux(th[N], s, o, L.q[N], L.A[N]);
  } else {
    const double KN = base[kBottom] > 0 ? s.k_sat[N] * pw[kBottom] : 0.0;
    const double dKN = sN > 0 && sN < 1 ? s.k_exp[N] * KN / th[N] : 0.0;
    L.q[N] = o.f_drain * KN;
    L.A[N] = o.f_drain * dKN;
  }
  L.B[N] = 0;
}

/// §13.5: a_i x_{i−1} + b_i x_i + c_i x_{i+1} = r_i, Thomas algorithm without pivoting. The pivots
/// den_i = b_i − a_i·c′_{i−1} come from the continuants p_i = den_1·…·den_i
/// (p_i = b_i·p_{i−1} − a_i·c_{i−1}·p_{i−2}) and r′_i = u_i/p_i with u_i = r_i·p_{i−1} − a_i·u_{i−1}: the same
/// factorisation, equal to Thomas' up to round-off, but its recurrences are multiplications only, so the
/// six divisions 1/p_i do not queue one behind another on the sub-step's critical path (measured ~10 % of
/// the lane kernel's time). p_i stays far inside double's range (six pivots of ~Δz/Δt).
Step solve(const Linearisation& L, double dt, const Soil& s) {
  constexpr int N = kN - 1;
  const Layers& q = L.q;
  const Layers& A = L.A;
  const Layers& B = L.B;
  Step st;
  Layers bv, cv, p, u, inv_p, cp, rp;
  const double inv_dt = 1 / dt;
  for (int i = 0; i < kN; ++i) {  // the sub-diagonal a_i = −A_{i−1} enters below with its sign folded in
    bv[i] = s.dz[i] * inv_dt - (i > 0 ? B[i - 1] : 0.0) + A[i];
    cv[i] = i < N ? B[i] : 0.0;
  }
  p[0] = bv[0];
  u[0] = 0.0 - q[0];
  for (int i = 1; i < kN; ++i) {
    const double e = A[i - 1] * cv[i - 1];  // −a_i·c_{i−1}
    p[i] = bv[i] * p[i - 1] + (i > 1 ? e * p[i - 2] : e);
    u[i] = (q[i - 1] - q[i]) * p[i - 1] + A[i - 1] * u[i - 1];
  }
  for (int i = 0; i < kN; ++i) inv_p[i] = 1 / p[i];
  for (int i = 0; i < kN; ++i) {
    const double den = i > 0 ? p[i] * inv_p[i - 1] : p[i];
    if (!(std::fabs(den) >= 1e-30) || !std::isfinite(den)) {
      st.ok = false;
      return st;
    }
    cp[i] = i > 0 ? cv[i] * p[i - 1] * inv_p[i] : cv[i] * inv_p[i];
    rp[i] = u[i] * inv_p[i];
  }
  st.x[N] = rp[N];
  for (int i = N - 1; i >= 0; --i) st.x[i] = rp[i] - cp[i] * st.x[i + 1];
  st.DR_sub = dt * (q[N] + A[N] * st.x[N]);
  for (int i = 0; i < kN; ++i) st.ok = st.ok && std::isfinite(st.x[i]);
  st.ok = st.ok && std::isfinite(st.DR_sub);
  return st;
}

/// §13.7 mass-conserving projection. Returns false on an unresolvable deficit (> 1e-12 mm).
bool project(Layers& th, const Soil& s, double& RO_sat, int& n_proj) {
  // 1. saturation excess, bottom-up; excess of layer 1 leaves at the surface (RO_sat)
  for (int i = kN - 1; i >= 0; --i) {
    if (th[i] > s.theta_sat[i]) {
      const double excess = (th[i] - s.theta_sat[i]) * s.dz[i];
      th[i] = s.theta_sat[i];
      if (i > 0) th[i - 1] += excess / s.dz[i - 1];
      else RO_sat += excess;
      ++n_proj;
    }
  }
  // 2. deficit, top-down: take from layer i+1, then i−1 (only water above their θ_res)
  bool ok = true;
  for (int i = 0; i < kN; ++i) {
    if (th[i] < s.theta_res[i]) {
      double need = (s.theta_res[i] - th[i]) * s.dz[i];
      th[i] = s.theta_res[i];
      ++n_proj;
      for (int j : {i + 1, i - 1}) {
        if (j < 0 || j >= kN || need <= 0) continue;
        const double avail = std::max(0.0, (th[j] - s.theta_res[j]) * s.dz[j]);
        const double take = std::min(avail, need);
        th[j] -= take / s.dz[j];
        need -= take;
      }
      if (need > 1e-12) ok = false;
    }
  }
  return ok;
}

}  // namespace

RichardsDay richards_day(Layers& th, double W_in, const Soil& s, const Options& o, const BottomFlux* bottom) {
  RichardsDay out;
  double t = 0;
  double dt = std::min(o.dt0, o.dt_max);
  int attempts = 0;
  Layers before;
  // The linearisation depends on θ only: a retry that starts from the same θ (no infiltration added, the
  // usual case on rejection) reuses it and only rebuilds the Δt-dependent diagonal (§13.5).
  Linearisation lin;
  Layers lin_theta{};
  bool have_lin = false;
  while (t < kDaySeconds) {
    const double left_time = kDaySeconds - t;
    const bool last = dt >= left_time;
    if (last) dt = left_time;  // never exceed the time left in the day
    if (++attempts > o.max_attempts) {
      out.flags |= kFlagSubstepLimit;
      return out;
    }
    before = th;

    // 1. infiltration (§13.2): remaining input spread evenly, last step takes the rest; fill top-down
    const double left_in = std::max(0.0, W_in - out.IF_acc);
    const double want = last ? left_in : left_in * dt / left_time;
    const double cap = s.k_sat[0] * dt;
    double space = 0;
    for (int i = 0; i < kN; ++i) space += (s.theta_sat[i] - th[i]) * s.dz[i];
    const double add = std::max(0.0, std::min(want, std::min(cap, space)));
    double rem = add;
    for (int i = 0; i < kN && rem > 0; ++i) {
      const double put = std::min(rem, (s.theta_sat[i] - th[i]) * s.dz[i]);
      if (put > 0) {
        th[i] += put / s.dz[i];
        rem -= put;
      }
    }

    // 2. redistribution
    if (!have_lin || std::memcmp(lin_theta.data(), th.data(), sizeof th) != 0) {
      linearise(th, s, o, bottom, lin);
      lin_theta = th;
      have_lin = true;
    }
    const Step st = solve(lin, dt, s);

    // 3. accept / reject (§13.6)
    double max_dx = 0;
    bool bounds = true;
    for (int i = 0; i < kN; ++i) {
      max_dx = std::max(max_dx, std::fabs(st.x[i]));
      const double nt = th[i] + st.x[i];
      if (nt > s.theta_sat[i] + o.tol_theta || nt < s.theta_res[i] - o.tol_theta) bounds = false;
    }
    const bool reject = !st.ok || !(max_dx <= o.dtheta_max) || !bounds || st.DR_sub < -1e-12;
    if (reject && dt > o.dt_min) {
      th = before;
      dt = std::max(dt / 2, o.dt_min);
      ++out.n_rejected;
      continue;
    }
    if (!st.ok) {  // at Δt_min a non-finite solution cannot be accepted
      th = before;
      out.flags |= kFlagNonFinite;
      return out;
    }

    // 4. accept: book infiltration, project, book drainage, advance and adapt Δt
    for (int i = 0; i < kN; ++i) th[i] += st.x[i];
    out.IF_acc += add;
    if (!project(th, s, out.RO_sat, out.n_projections)) out.flags |= kFlagDeficit;
    out.DR_flux += st.DR_sub;
    t = last ? kDaySeconds : t + dt;
    ++out.n_substeps;
    if (max_dx < o.dtheta_max / 4) dt = std::min(2 * dt, o.dt_max);
  }
  return out;
}

}  // namespace couplet::tem_wbm
