//! Forward and backward passes against PyTorch / mambapy (float64 goldens): logits, recorded
//! states, loss terms and every parameter's gradient, for the fused CPU ops and for the
//! composition of candle ops, in f64 and f32.

use crate::common::{golden, rel_err, values, CASES};
use dynsim_nets::DType;

/// (f64 tolerance, f32 tolerance), relative to each array's largest value. mambapy forms A in
/// float32, so its goldens hold to ~1e-7 only (README of the fixtures).
fn tolerance(name: &str) -> (f64, f64) {
    if name.starts_with("mamba") {
        (1e-6, 1e-4)
    } else {
        (1e-9, 1e-4)
    }
}

fn check(name: &str, dtype: DType, fused: bool) {
    let g = golden(name);
    let (tol64, tol32) = tolerance(name);
    let tol = if dtype == DType::F64 { tol64 } else { tol32 };
    let what = format!("{name} {dtype:?} fused={fused}");
    let net = g.network(dtype, fused);
    let out = net.forward(&g.input(), true).unwrap();
    let e = rel_err(&values(&out.logits), &g.logits.data);
    assert!(e <= tol, "{what}: logits differ by {e:e} (tolerance {tol:e})");
    assert_eq!(out.logits.dims(), g.logits.shape.as_slice());
    let states = out.states.expect("states were asked for");
    assert_eq!(states.dims(), g.states.shape.as_slice(), "{what}: state shape");
    let e = rel_err(&values(&states), &g.states.data);
    assert!(e <= tol, "{what}: states differ by {e:e}");

    let (loss, ce, reg) = net.loss(&out.logits, &g.labels(), g.l2).unwrap();
    for (label, got, want) in
        [("cross-entropy", &ce, g.cross_entropy), ("sum of Frobenius norms", &reg, g.l2_sum), ("loss", &loss, g.loss)]
    {
        let got = values(got)[0];
        assert!((got - want).abs() <= tol * want.abs(), "{what}: {label} {got} vs {want}");
    }
    let grads = loss.backward().unwrap();
    assert_eq!(net.params().len(), g.grads.len(), "{what}: one gradient per parameter");
    for (pname, var) in net.params() {
        let want = g.grads.get(pname).unwrap_or_else(|| panic!("{what}: golden has no gradient for {pname}"));
        let got = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{what}: no gradient for {pname}"));
        assert_eq!(got.dims(), want.shape.as_slice(), "{what}: gradient shape of {pname}");
        let e = rel_err(&values(got), &want.data);
        assert!(e <= tol, "{what}: gradient of {pname} differs by {e:e} (tolerance {tol:e})");
    }
}

#[test]
fn fused_f64_matches_pytorch() {
    for name in CASES {
        check(name, DType::F64, true);
    }
}

#[test]
fn composed_f64_matches_pytorch() {
    for name in CASES {
        check(name, DType::F64, false);
    }
}

#[test]
fn fused_f32_matches_pytorch() {
    for name in CASES {
        check(name, DType::F32, true);
    }
}

#[test]
fn composed_f32_matches_pytorch() {
    for name in CASES {
        check(name, DType::F32, false);
    }
}

/// The golden inputs and labels are real PDM-like data: the checks above are not vacuous.
#[test]
fn goldens_exercise_every_class_and_nonzero_gradients() {
    for name in CASES {
        let g = golden(name);
        for class in 0..3 {
            assert!(g.labels.data.iter().any(|&l| l as u32 == class), "{name}: label {class} present");
        }
        for (p, a) in &g.grads {
            // The GRU's reset-gate rows get gradient only from the L2 term; every tensor as a
            // whole moves.
            assert!(a.data.iter().any(|x| x.abs() > 1e-8), "{name}: gradient of {p} is zero");
        }
    }
}
